"""The files in deploy/ parse, and agree with the code: settings, ports, paths, commands.

No image can be built here (no registry is reachable), so these read the
files as Docker, Compose, Kubernetes and systemd would, and hold each name
and number in them against the bridge itself. tests/e2e/test_deploy_commands.py
runs the commands they name.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from bridge.app import create_app
from bridge.cli import EXIT_USAGE, main
from bridge.credentials import SETUP_FILE as PROOF_FILE
from bridge.credentials import storage_of
from bridge.health import READY_TIMEOUT_SECONDS
from bridge.settings import Settings, load_settings
from tests.unit.test_docs_agree import read_by_code

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
SETTINGS = read_by_code()
DEFAULTS = Settings()
# Names in deploy files that are not the bridge's settings: the image's
# runtime, and PostgreSQL's own container.
NOT_SETTINGS = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
# What an App registered by hand is configured with; on the /setup path the
# bridge keeps these itself, and any of them set would win over (or close) it.
APP_SETTINGS = {
    "GITHUB_APP_ID",
    "GITHUB_APP_PRIVATE_KEY",
    "GITHUB_APP_PRIVATE_KEY_PATH",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_CLIENT_ID",
    "GITHUB_CLIENT_SECRET",
}


# Reading the files.


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (NAME, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, rest = line.partition(" ")
            instructions.append((name.upper(), rest.strip()))
    return instructions


def last_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    start = max(i for i, (name, _) in enumerate(steps) if name == "FROM")
    return steps[start:]


def docker_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, rest in last_stage():
        if name == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
    return env


def one(name: str) -> str:
    [value] = [rest for n, rest in last_stage() if n == name]
    return value


def compose(*names: str) -> dict[str, Any]:
    """docker-compose.yml, with the files in `names` merged on top as Compose does
    (mappings merge, lists of secrets add up)."""
    merged: dict[str, Any] = {}
    for name in ("docker-compose.yml", *names):
        merged = _merge(merged, yaml.safe_load((DEPLOY / name).read_text()))
    return merged


def _merge(base: Any, extra: Any) -> Any:
    if isinstance(base, dict) and isinstance(extra, dict):
        out = dict(base)
        for key, value in extra.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    if isinstance(base, list) and isinstance(extra, list):
        return base + [item for item in extra if item not in base]
    return extra


def k8s() -> dict[str, dict[str, Any]]:
    """The Kubernetes objects by kind."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            objects[document["kind"]] = document
    return objects


def pod(kind: str = "Deployment") -> dict[str, Any]:
    return k8s()[kind]["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(kind: str = "Deployment") -> dict[str, Any]:
    [only] = pod(kind)["containers"]
    return only  # type: ignore[no-any-return]


def configmap() -> dict[str, str]:
    return k8s()["ConfigMap"]["data"]  # type: ignore[no-any-return]


def unit() -> dict[str, list[str]]:
    """The systemd unit's `Key=value` lines (keys may repeat), sections merged."""
    entries: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / "twill-bridge.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            entries.setdefault(key.strip(), []).append(value.strip())
    return entries


def subcommand_exists(name: str, capsys: pytest.CaptureFixture[str]) -> bool:
    try:
        main([name, "--help"])
    except SystemExit as exit:
        capsys.readouterr()
        return exit.code == 0
    return False


def secret_commands_in_readme() -> list[set[str]]:
    """The keys of each `kubectl create secret generic twill-bridge` in the README,
    in order: the /setup path's, then the by-hand variant's."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "README.md").read_text())
    return [
        set(re.findall(r"--from-(?:literal|file)=([A-Za-z0-9_.-]+)=", line))
        for line in text.splitlines()
        if "create secret generic twill-bridge" in line
    ]


def secret_refs() -> list[dict[str, Any]]:
    return [
        item["valueFrom"]["secretKeyRef"]
        for kind in ("Deployment", "Job")
        for item in container(kind)["env"]
        if "valueFrom" in item
    ]


def shell_lines(path: Path) -> list[str]:
    """Every line of the shell blocks in a Markdown file, `\\` continuations joined."""
    blocks = re.findall(r"```sh\n(.*?)```", path.read_text(), re.S)
    text = re.sub(r"\\\n\s*", " ", "".join(blocks))
    return [line.split("  #")[0].strip() for line in text.splitlines() if line.strip()]


# Every file.


def test_every_yaml_file_parses() -> None:
    files = [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    assert len(files) == 8
    for path in files:
        assert [doc for doc in yaml.safe_load_all(path.read_text()) if doc], path


def test_every_setting_a_deploy_file_names_is_a_real_one() -> None:
    named = set()
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            named |= set(
                re.findall(
                    r"\b((?:TWILL|GITHUB|BRIDGE|DATABASE)_[A-Z0-9_]+)", path.read_text()
                )
            )
    assert named - SETTINGS == set()
    assert len(named) > 15


def test_the_readme_names_every_file_here() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.name != "README.md":
            assert (
                f"`{path.name}`" in readme or f"`{path.relative_to(DEPLOY)}`" in readme
            ), path


def test_every_command_the_readme_runs_exists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (DEPLOY / "README.md").read_text()
    # The command itself, not the namespace or the objects that share its name.
    pattern = r"(?:^|bin/|exec bridge |-- |`)twill-bridge ([a-z][a-z-]*)"
    commands = set(re.findall(pattern, text, re.M))
    assert {"serve", "dispatches", "setup-token", "doctor"} <= commands
    for name in {"migrate", *commands}:
        assert subcommand_exists(name, capsys), name


# Dockerfile.


def test_the_image_runs_as_an_unprivileged_numeric_user() -> None:
    user = one("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000  # numeric: runAsNonRoot can check it
    assert pod()["securityContext"]["runAsUser"] == int(uid)
    assert pod("Job")["securityContext"]["runAsUser"] == int(uid)


def test_the_image_serves_with_the_console_script(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert json.loads(one("ENTRYPOINT")) == ["twill-bridge"]
    assert 'twill-bridge = "bridge.cli:main"' in pyproject
    assert json.loads(one("CMD")) == ["serve"]
    assert subcommand_exists("serve", capsys)


def test_the_image_listens_on_every_address_of_its_port() -> None:
    env = docker_env()
    assert set(env) - NOT_SETTINGS <= SETTINGS
    assert env["BRIDGE_HOST"] == "0.0.0.0"  # noqa: S104 (a container's, on purpose)
    assert one("EXPOSE") == env["BRIDGE_PORT"] == str(DEFAULTS.port)
    # The data folder is the declared volume and the working directory.
    assert json.loads(one("VOLUME")) == [env["BRIDGE_DATA_DIR"]] == [one("WORKDIR")]


def test_the_health_check_asks_healthz_on_the_configured_port() -> None:
    check = one("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--timeout=5s" in options and "--interval=" in options
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2] and "BRIDGE_PORT" in argv[2]


def test_the_image_copies_what_the_package_needs_and_the_context_allows_it() -> None:
    copied = [
        source
        for name, rest in dockerfile()
        if name == "COPY" and "--from" not in rest
        for source in rest.split()[:-1]
    ]
    assert set(copied) == {"pyproject.toml", "README.md", "bridge", "migrations"}
    allowed = (DEPLOY / "Dockerfile.dockerignore").read_text()
    for source in copied:
        assert (ROOT / source).exists()
        assert f"!{source}" in allowed


# docker-compose.yml.


def compose_environment(*files: str) -> dict[str, str]:
    """What the bridge's container sees: .env.example, then Compose's own lines."""
    bridge = compose(*files)["services"]["bridge"]
    values = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}
    for name, value in bridge["environment"].items():
        values[name] = str(value).replace("${POSTGRES_PASSWORD}", "s3cret")
    return values


def by_hand_compose_file() -> str:
    """The override the README's COMPOSE_FILE line adds to docker-compose.yml."""
    [line] = [
        line
        for line in shell_lines(DEPLOY / "README.md")
        if line.startswith('echo "COMPOSE_FILE=')
    ]
    files = re.fullmatch(r'echo "COMPOSE_FILE=([^"]+)" >> \.env', line)[1]  # type: ignore[index]
    first, override = files.split(":")
    assert first == "docker-compose.yml" and (DEPLOY / override).is_file()
    return override


def test_compose_runs_the_image_on_postgresql_with_volumes() -> None:
    services = compose()["services"]
    bridge, postgres = services["bridge"], services["postgres"]
    assert (
        DEPLOY / bridge["build"]["context"] / bridge["build"]["dockerfile"]
    ).resolve() == (DEPLOY / "Dockerfile")
    assert bridge["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volumes = compose()["volumes"]
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert (
        f"bridge-data:{bridge['environment']['BRIDGE_DATA_DIR']}" in bridge["volumes"]
    )
    assert set(volumes) == {"postgres-data", "bridge-data"}
    [port] = bridge["ports"]
    assert (
        port.rsplit(":", 1)[1]
        == str(bridge["environment"]["BRIDGE_PORT"])
        == one("EXPOSE")
    )
    assert set(bridge["environment"]) <= SETTINGS
    assert set(postgres["environment"]) == {
        "POSTGRES_USER",
        "POSTGRES_DB",
        "POSTGRES_PASSWORD",
    }


def test_compose_starts_for_setup_without_a_key_file_and_keeps_it_in_the_volume() -> (
    None
):
    # Nothing the user must have made first: no Compose secret, no bind mount.
    bridge = compose()["services"]["bridge"]
    assert "secrets" not in compose() and "secrets" not in bridge
    assert all(not volume.startswith((".", "/")) for volume in bridge["volumes"])
    assert not APP_SETTINGS & set(bridge["environment"])
    environ = compose_environment()
    environ.update(TWILL_API_KEY="k", BRIDGE_PUBLIC_URL="https://bridge.example.com")

    settings = load_settings(environ, env_file=None)

    assert (
        settings.database_url
        == "postgresql+asyncpg://bridge:s3cret@postgres:5432/bridge"
    )
    assert settings.host == "0.0.0.0"  # noqa: S104 (a container's, on purpose)
    assert settings.port == 8000
    # No App yet: /setup is open, and what it stores lands in the data volume,
    # beside the setup token the README's `cat` reads.
    assert settings.github_app_id is None and settings.github_private_key is None
    assert storage_of(settings) == "file"
    data = f"bridge-data:{settings.credentials_file.parent}"
    assert data in bridge["volumes"] and settings.data_dir == Path("/data")
    # With BRIDGE_SECRETS_KEY in .env, sealed in PostgreSQL instead.
    environ["BRIDGE_SECRETS_KEY"] = "x" * 64
    assert storage_of(load_settings(environ, env_file=None)) == "database"


def test_compose_by_hand_mounts_the_key_where_its_setting_points(
    tmp_path: Path, app_keys: tuple[str, str]
) -> None:
    override = by_hand_compose_file()
    merged = compose(override)
    environ = compose_environment(override)
    [secret] = merged["services"]["bridge"]["secrets"]
    assert environ["GITHUB_APP_PRIVATE_KEY_PATH"] == f"/run/secrets/{secret}"
    assert merged["secrets"][secret]["file"] == "./github-app.pem"
    # The rest of the service is docker-compose.yml's.
    assert merged["services"]["bridge"]["volumes"] == ["bridge-data:/data"]
    assert environ["DATABASE_URL"].endswith("@postgres:5432/bridge")

    key = tmp_path / "github-app.pem"
    key.write_text(app_keys[0])
    environ.update(
        TWILL_API_KEY="k",
        GITHUB_APP_ID="1",
        GITHUB_WEBHOOK_SECRET="w",
        GITHUB_APP_PRIVATE_KEY_PATH=str(key),
    )
    assert load_settings(environ, env_file=None).dry_run is False


def test_compose_waits_longer_than_the_shutdown_grace() -> None:
    grace = compose()["services"]["bridge"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > DEFAULTS.shutdown_grace_seconds


# Kubernetes.


def test_kustomize_applies_every_manifest_here() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    [image] = kustomization["images"]
    assert image["name"] == container()["image"] == container("Job")["image"]


def test_kustomize_renders_the_manifests() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed; the YAML checks above still ran")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=True
    ).stdout
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(rendered))
    assert kinds == ["ConfigMap", "Deployment", "Ingress", "Job", "Service"]
    assert "registry.example.com/twill-github-bridge:0.1.0" in rendered


def test_two_replicas_that_serve_and_a_job_that_migrates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert k8s()["Deployment"]["spec"]["replicas"] == 2
    assert container()["args"] == ["serve"]
    assert container("Job")["args"] == ["migrate"]
    assert pod("Job")["restartPolicy"] == "Never"
    assert subcommand_exists("migrate", capsys)


def test_probes_ask_healthz_and_readyz_on_the_port_the_bridge_listens_on() -> None:
    [port] = container()["ports"]
    assert (
        port["containerPort"] == int(configmap()["BRIDGE_PORT"]) == int(one("EXPOSE"))
    )
    live, ready = container()["livenessProbe"], container()["readinessProbe"]
    assert live["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert ready["httpGet"] == {"path": "/readyz", "port": port["name"]}
    assert container()["startupProbe"]["httpGet"]["path"] == "/healthz"
    # /readyz answers before the probe gives up on it.
    assert ready["timeoutSeconds"] > READY_TIMEOUT_SECONDS
    annotations = k8s()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_resources_are_requested_and_limited() -> None:
    for kind in ("Deployment", "Job"):
        resources = container(kind)["resources"]
        assert (
            set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
        )


def test_pods_run_locked_down_with_somewhere_to_write() -> None:
    for kind in ("Deployment", "Job"):
        assert pod(kind)["securityContext"]["runAsNonRoot"] is True
        hardening = container(kind)["securityContext"]
        assert hardening["readOnlyRootFilesystem"] is True
        assert hardening["allowPrivilegeEscalation"] is False
        assert hardening["capabilities"]["drop"] == ["ALL"]
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    assert {configmap()["BRIDGE_DATA_DIR"], "/tmp"} <= mounts  # noqa: S108 (the pod's own)


def test_the_settings_of_the_manifests_are_real_and_load(
    tmp_path: Path, app_keys: tuple[str, str]
) -> None:
    env = container()["env"]
    names = {item["name"] for item in env} | set(configmap())
    assert names <= SETTINGS

    # The /setup path: the ConfigMap and the Secret's required keys only.
    required = {
        item["name"]
        for item in env
        if not item["valueFrom"]["secretKeyRef"].get("optional")
    }
    environ = {**configmap(), **{name: "x" * 40 for name in required}}
    environ["DATABASE_URL"] = "postgresql://u:p@db:5432/bridge"
    settings = load_settings(environ, env_file=None)
    assert settings.port == port_of_container()
    assert settings.github_app_id is None  # /setup is open
    assert storage_of(settings) == "database"  # and seals what it gets

    # By hand: the optional App keys as `kubectl create secret` makes them
    # (--from-file keeps the PEM's line breaks).
    environ.update(
        GITHUB_APP_ID="123456",
        GITHUB_APP_PRIVATE_KEY=app_keys[0],
        GITHUB_WEBHOOK_SECRET="w" * 40,
    )
    assert load_settings(environ, env_file=None).dry_run is False


def port_of_container() -> int:
    [port] = container()["ports"]
    return int(port["containerPort"])


def test_secrets_come_from_the_secret_the_readme_creates() -> None:
    refs = secret_refs()
    assert {ref["name"] for ref in refs} == {"twill-bridge"}
    required = {ref["key"] for ref in refs if not ref.get("optional")}
    optional = {ref["key"] for ref in refs if ref.get("optional")}
    for_setup, by_hand = secret_commands_in_readme()
    # The /setup path's Secret is exactly what the pods cannot start without.
    assert for_setup == required
    # Replicas must agree on these; a generated one would differ per pod.
    assert {
        "BRIDGE_SESSION_SECRET",
        "BRIDGE_SECRETS_KEY",
        "DATABASE_URL",
    } <= required
    # No App setting is needed for /setup; by hand they are optional keys.
    assert not APP_SETTINGS & required
    assert by_hand - required <= optional
    assert by_hand >= required | (APP_SETTINGS - {"GITHUB_APP_PRIVATE_KEY_PATH"})
    readme = (DEPLOY / "README.md").read_text()
    assert all(f"`{key}`" in readme for key in optional)


def test_no_app_setting_is_fixed_in_the_manifests() -> None:
    # A GITHUB_APP_ID in the ConfigMap would close /setup; a key file mounted
    # from the Secret would stop every pod whose Secret has none.
    assert not APP_SETTINGS & set(configmap())
    named = {item["name"]: item for item in container()["env"]}
    assert "GITHUB_APP_PRIVATE_KEY_PATH" not in named
    for name in APP_SETTINGS & set(named):
        assert named[name]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert not any("secret" in volume for volume in pod()["volumes"])
    # What replicas share cannot live in /data, each pod's own emptyDir.
    [data] = [v for v in pod()["volumes"] if v["name"] == "data"]
    assert data == {"name": "data", "emptyDir": {}}


def test_the_readme_gets_the_setup_token_where_the_bridge_keeps_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = shell_lines(DEPLOY / "README.md")
    namespace = yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    deployment = k8s()["Deployment"]["metadata"]["name"]
    ask = [line for line in lines if line.endswith("twill-bridge setup-token")]
    assert ask == [
        "docker compose exec bridge twill-bridge setup-token",
        f"kubectl -n {namespace} exec deployment/{deployment} -- "
        "twill-bridge setup-token",
    ]
    assert "bridge" in compose()["services"]
    assert subcommand_exists("setup-token", capsys)
    # systemd: the file `serve` writes, in the unit's data folder.
    [read] = [line for line in lines if line.endswith(f"/{PROOF_FILE}")]
    data_dir = dict(line.split("=", 1) for line in unit()["Environment"])
    assert read == f"sudo cat {Path(data_dir['BRIDGE_DATA_DIR'], PROOF_FILE)}"


def test_a_pod_stops_within_its_grace_period() -> None:
    grace = float(configmap()["BRIDGE_SHUTDOWN_GRACE_SECONDS"])
    assert pod()["terminationGracePeriodSeconds"] > grace


def test_the_service_and_ingress_reach_the_pods() -> None:
    service, ingress = k8s()["Service"], k8s()["Ingress"]
    labels = k8s()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == container()["ports"][0]["name"]
    [rule] = ingress["spec"]["rules"]
    for path in rule["http"]["paths"]:
        backend = path["backend"]["service"]
        assert backend == {
            "name": service["metadata"]["name"],
            "port": {"name": port["name"]},
        }
    # The public URL the bridge signs attachment links with is the Ingress's host.
    assert configmap()["BRIDGE_PUBLIC_URL"] == f"https://{rule['host']}"
    assert ingress["spec"]["tls"][0]["hosts"] == [rule["host"]]


def test_the_ingress_exposes_real_routes_and_keeps_probes_and_metrics_inside() -> None:
    app = create_app(Settings())
    routes = [route.path for route in app.routes]  # type: ignore[attr-defined]
    [rule] = k8s()["Ingress"]["spec"]["rules"]
    exposed = {p["path"]: p["pathType"] for p in rule["http"]["paths"]}
    for path, kind in exposed.items():
        if kind == "Exact":
            assert path in routes, path
        else:
            assert any(r == path or r.startswith(path + "/") for r in routes), path
    assert "/api/github/webhooks" in exposed
    for internal in ("/healthz", "/readyz", "/metrics"):
        assert not any(internal.startswith(path) for path in exposed), internal


# systemd.


def test_the_unit_serves_as_its_own_user_and_outwaits_the_grace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    entries = unit()
    [start] = entries["ExecStart"]
    binary, command = start.split()
    assert binary.endswith("/bin/twill-bridge") and subcommand_exists(command, capsys)
    assert command == "serve"
    assert entries["User"] != ["root"] and entries["User"]
    [stop] = entries["TimeoutStopSec"]
    assert int(stop) > DEFAULTS.shutdown_grace_seconds
    assert entries["RestartPreventExitStatus"] == [str(EXIT_USAGE)]
    assert entries["KillSignal"] == ["SIGTERM"]


def test_the_units_settings_are_real_and_its_data_is_its_state_directory() -> None:
    entries = unit()
    environment = dict(line.split("=", 1) for line in entries["Environment"])
    assert set(environment) <= SETTINGS
    [state] = entries["StateDirectory"]
    [workdir] = entries["WorkingDirectory"]
    assert environment["BRIDGE_DATA_DIR"] == workdir == f"/var/lib/{state}"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the checks above still ran")
    binary = shutil.which("twill-bridge") or str(
        Path(ROOT, ".venv", "bin", "twill-bridge")
    )
    text = (DEPLOY / "systemd" / "twill-bridge.service").read_text()
    copy = tmp_path / "twill-bridge.service"
    copy.write_text(text.replace("/opt/twill-bridge/bin/twill-bridge", binary))
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
