"""deploy/README.md's /setup walk, for real: `twill-bridge serve` with the Compose
and the Kubernetes environment, the setup token from the command the README
runs, the App registered through the pages against the fake GitHub, and a
labelled issue answered with the Twill task's link.

The environments are read from the deploy files (tests/unit/test_deploy.py
holds them against the code); only what a container or a cluster would
differ in is changed: loopback addresses, a temporary folder for each
volume, and the fakes' URLs.
"""

from __future__ import annotations

import html
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.signature import sign
from tests import payloads
from tests.live import BridgeProcess, wait_until
from tests.unit.test_deploy import (
    compose_environment,
    configmap,
    container,
    secret_commands_in_readme,
    shell_lines,
)

pytestmark = pytest.mark.slow

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("twill-bridge"))
DEPLOY_README = Path(__file__).resolve().parents[2] / "deploy" / "README.md"
# Test pacing only: a worker that polls often, and no spacing of GitHub writes.
FAST = {
    "BRIDGE_WORKER_POLL_SECONDS": "0.1",
    "BRIDGE_GITHUB_WRITE_INTERVAL_SECONDS": "0",
}


def peers(live: dict[str, Any]) -> dict[str, str]:
    """Where the fakes answer: Twill's API, GitHub's API and its web host."""
    github = live["env"]["GITHUB_API_URL"]
    return {
        "TWILL_API_URL": live["env"]["TWILL_API_URL"],
        "GITHUB_API_URL": github,
        "GITHUB_WEB_URL": github,
    }


def exec_setup_token(
    env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """The README's `... exec ... twill-bridge setup-token`, in the container's environment."""
    [compose_line, kubectl_line] = [
        line
        for line in shell_lines(DEPLOY_README)
        if line.endswith("twill-bridge setup-token")
    ]
    argv = kubectl_line.split(" -- ", 1)[1].split()
    assert compose_line.endswith(" ".join(argv)) and argv[0] == "twill-bridge"
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILL_", "GITHUB_", "BRIDGE_", "DATABASE_URL"))
    }
    return subprocess.run(
        [CONSOLE_SCRIPT, *argv[1:]],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def register(
    browser: httpx.Client, token: str, first: str, second: str
) -> httpx.Response:
    """The person at the browser: the token to `first`, the form from `second`,
    GitHub's page, and back to BRIDGE_PUBLIC_URL."""
    proved = browser.post(
        f"{first}/setup", data={"token": token}, follow_redirects=True
    )
    assert proved.status_code == 200 and "App name" in proved.text, proved.text
    page = browser.get(f"{second}/setup/manifest", params={"name": "Twill bridge"})
    assert page.status_code == 200, page.text
    action = html.unescape(
        re.search(r'<form method="post" action="([^"]+)"', page.text)[1]  # type: ignore[index]
    )
    manifest = html.unescape(
        re.search(r'name="manifest" value="([^"]+)"', page.text)[1]
    )  # type: ignore[index]
    # GitHub's "Create GitHub App" (the fake creates at once and redirects).
    created = httpx.post(action, data={"manifest": manifest})
    assert created.status_code == 302
    return browser.get(created.headers["location"])


def label_an_issue(bridge_url: str, webhook_secret: str) -> httpx.Response:
    raw = json.dumps(payloads.issues_labeled("twill-plan")).encode()
    return httpx.post(
        f"{bridge_url}/api/github/webhooks",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(webhook_secret, raw),
            "User-Agent": "GitHub-Hookshot/abc123",
        },
    )


def commented_with_the_task(live: dict[str, Any]) -> bool:
    comments = live["github"].issue_comments(payloads.REPO, 12)
    return any("twill.ai/tasks/" in c["body"] for c in comments)


def no_app_missing(bridge_url: str) -> bool:
    """/readyz names no missing App credential: the App's id and key are in use."""
    warnings = httpx.get(f"{bridge_url}/readyz", timeout=5).json()["warnings"]
    return not any("GITHUB_APP" in warning for warning in warnings)


def test_compose_walk_setup_then_a_task(live: dict[str, Any], tmp_path: Path) -> None:
    volume = tmp_path / "bridge-data"  # the named volume, mounted at /data
    volume.mkdir(mode=0o700)
    env = compose_environment()
    # What the README has the user put in .env, and the container's stand-ins.
    env.update(
        TWILL_API_KEY=live["env"]["TWILL_API_KEY"],
        BRIDGE_ADMIN_LOGINS="maintainer",
        DATABASE_URL=live["env"]["DATABASE_URL"],
        BRIDGE_DATA_DIR=str(volume),
        BRIDGE_HOST="127.0.0.1",
        **peers(live),
        **FAST,
    )
    bridge = BridgeProcess(env, volume)
    env["BRIDGE_PUBLIC_URL"] = bridge.env["BRIDGE_PUBLIC_URL"] = bridge.url
    bridge.start()
    try:
        given = exec_setup_token(env, volume)
        assert given.returncode == 0, given.stderr
        token = given.stdout.strip()
        # A token of its own, beside the one `serve` wrote: both are accepted.
        assert (volume / "setup-token").read_text().strip() != token

        with httpx.Client() as browser:
            done = register(browser, token, bridge.url, bridge.url)
        assert done.status_code == 200 and "is registered" in done.text, done.text
        [made] = live["github"].registered
        answer = made["answer"]
        assert made["manifest"]["hook_attributes"]["url"] == (
            f"{bridge.url}/api/github/webhooks"
        )

        # In the volume, owner-only; the token is spent.
        kept = volume / "github-app.env"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert f'GITHUB_APP_ID="{answer["id"]}"' in kept.read_text()
        closed = exec_setup_token(env, volume)
        assert closed.returncode == 1 and "setup is closed" in closed.stderr

        assert label_an_issue(bridge.url, answer["webhook_secret"]).status_code == 202
        wait_until(lambda: commented_with_the_task(live), timeout=30)
        assert bridge.terminate() == 0

        # `docker compose up -d` after a reboot: the same volume, the same App.
        again = BridgeProcess(env, volume)
        again.env["BRIDGE_PUBLIC_URL"] = bridge.url
        again.start()
        try:
            assert no_app_missing(again.url)
            assert httpx.get(f"{again.url}/setup").status_code == 410
            # The App's secret still opens deliveries (200: the same label
            # event again is recorded, and makes no second task).
            relabelled = label_an_issue(again.url, answer["webhook_secret"])
            assert relabelled.status_code == 200
            assert len(live["twill"].tasks) == 1
        finally:
            assert again.terminate() == 0
    finally:
        bridge.stop_quietly()
    output = bridge.output() + again.output()
    for secret in (token, answer["webhook_secret"], answer["client_secret"]):
        assert secret not in output
    assert answer["pem"].splitlines()[1] not in output


def test_kubernetes_walk_two_replicas_share_setup_through_the_database(
    live: dict[str, Any], tmp_path: Path
) -> None:
    # The Secret as the README's /setup command makes it, and the ConfigMap.
    for_setup, _ = secret_commands_in_readme()
    values = {
        "DATABASE_URL": live["env"]["DATABASE_URL"],
        "TWILL_API_KEY": live["env"]["TWILL_API_KEY"],
        "BRIDGE_SESSION_SECRET": secrets.token_hex(32),
        "BRIDGE_SECRETS_KEY": secrets.token_hex(32),
    }
    assert set(values) == for_setup
    env = {**configmap(), **values, "BRIDGE_HOST": "127.0.0.1", **peers(live), **FAST}
    env["BRIDGE_ADMIN_LOGINS"] = "maintainer"
    assert {item["name"] for item in container()["env"]} >= for_setup

    def pod(name: str) -> tuple[BridgeProcess, Path]:
        data = tmp_path / name  # the pod's own emptyDir
        data.mkdir()
        return BridgeProcess({**env, "BRIDGE_DATA_DIR": str(data)}, data), data

    (first, first_data), (second, second_data) = pod("pod-a"), pod("pod-b")
    # One public address (the Ingress) in front of both.
    public = first.url
    for replica in (first, second):
        replica.env["BRIDGE_PUBLIC_URL"] = public
    first.start()
    second.start()
    third = None
    try:
        given = exec_setup_token({**env, "BRIDGE_PUBLIC_URL": public}, second_data)
        assert given.returncode == 0, given.stderr
        token = given.stdout.strip()
        # Each pod wrote a token of its own; the command's is a third, and the
        # database (which keeps only digests) lets every pod accept all three.
        files = {
            (data / "setup-token").read_text().strip()
            for data in (first_data, second_data)
        }
        assert token not in files and len(files) == 2

        # The token and the form from one replica, GitHub's answer to the other
        # (the Ingress's choice): the shared session secret carries the proof.
        with httpx.Client() as browser:
            done = register(browser, token, second.url, second.url)
        assert done.status_code == 200 and "is registered" in done.text, done.text
        answer = live["github"].registered[0]["answer"]
        assert not (first_data / "github-app.env").exists()  # sealed, not a file

        # The other replica closes /setup at once and takes the App up within
        # its 5 s look; a delivery there is checked with the App's secret.
        assert httpx.get(f"{second.url}/setup").status_code == 410
        wait_until(lambda: no_app_missing(second.url), timeout=20)
        assert label_an_issue(second.url, answer["webhook_secret"]).status_code == 202
        wait_until(lambda: commented_with_the_task(live), timeout=30)

        # A pod replaced (a rollout): an empty /data, and the App from the database.
        assert second.terminate() == 0
        third, _ = pod("pod-c")
        third.env["BRIDGE_PUBLIC_URL"] = public
        third.start()
        assert no_app_missing(third.url)
        assert httpx.get(f"{third.url}/setup").status_code == 410
        assert "no GitHub App yet" not in third.output()
    finally:
        for replica in (first, second, third):
            if replica is not None:
                replica.stop_quietly()
    output = first.output() + second.output() + (third.output() if third else "")
    for secret in (
        token,
        answer["webhook_secret"],
        answer["client_secret"],
        values["BRIDGE_SECRETS_KEY"],
    ):
        assert secret not in output
    assert answer["pem"].splitlines()[1] not in output
