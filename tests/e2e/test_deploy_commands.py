"""The commands deploy/ names, run for real: the image's, the migration Job's, the
health check's and the probes', against fake Twill and GitHub on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live import free_port, wait_until
from tests.unit.test_deploy import compose, container, docker_env, k8s, one, pod

pytestmark = pytest.mark.slow

CONSOLE_SCRIPT = str(Path(sys.executable).with_name("twill-bridge"))


def health_check(port: int) -> int:
    """The Dockerfile's HEALTHCHECK command, as Docker would run it; its exit status."""
    argv = json.loads(one("HEALTHCHECK").partition("CMD ")[2])
    assert argv[0] == "python"
    environ = {**os.environ, "BRIDGE_PORT": str(port)}
    return subprocess.run(
        [sys.executable, *argv[1:]], env=environ, capture_output=True, timeout=30
    ).returncode


def test_the_migration_jobs_command_migrates(live: dict, tmp_path: Path) -> None:  # type: ignore[type-arg]
    fresh = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    for url in (fresh, live["env"]["DATABASE_URL"]):  # an empty one, and one at head
        result = subprocess.run(
            [CONSOLE_SCRIPT, *container("Job")["args"]],
            env={**os.environ, "DATABASE_URL": url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "is up to date" in result.stdout


def test_the_images_command_serves_answers_its_checks_and_stops_cleanly(
    live: dict,  # type: ignore[type-arg]
    tmp_path: Path,
) -> None:
    port = free_port()
    # The image's environment, on loopback rather than every address.
    environ = {**os.environ, **docker_env(), **live["env"]}
    environ.pop("PATH")
    environ.update(
        PATH=os.environ["PATH"],
        BRIDGE_HOST="127.0.0.1",
        BRIDGE_PORT=str(port),
        BRIDGE_DATA_DIR=str(tmp_path),
        BRIDGE_LOG_FORMAT="json",
    )
    command = [CONSOLE_SCRIPT, *json.loads(one("CMD"))]
    assert json.loads(one("ENTRYPOINT")) == ["twill-bridge"]
    log = (tmp_path / "bridge.log").open("wb")
    process = subprocess.Popen(
        command, env=environ, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_until(lambda: health_check(port) == 0, timeout=60, interval=0.2)

        base = f"http://127.0.0.1:{port}"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = container()[probe]["httpGet"]["path"]
            assert httpx.get(base + path, timeout=5).status_code == 200, probe
        # Where the Deployment tells Prometheus to scrape.
        template = k8s()["Deployment"]["spec"]["template"]
        scrape_path = template["metadata"]["annotations"]["prometheus.io/path"]
        metrics = httpx.get(base + scrape_path, timeout=5)
        assert "twill_bridge_worker_loops 4.0" in metrics.text

        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=60)
        took = time.monotonic() - began
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()
    output = (tmp_path / "bridge.log").read_text()
    assert status == 0, output
    # Within the grace Kubernetes and Compose give it before they kill.
    assert took < pod()["terminationGracePeriodSeconds"]
    assert took < int(compose()["services"]["bridge"]["stop_grace_period"].rstrip("s"))
    assert health_check(port) != 0
    lines = [json.loads(line) for line in output.splitlines()]
    assert {"worker started", "worker stopped"} <= {line["msg"] for line in lines}
