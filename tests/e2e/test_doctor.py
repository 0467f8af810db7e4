"""`twill-bridge doctor` as a process, against fakes served on 127.0.0.1.

GitHub is served under /api/v3, as GitHub Enterprise Server is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import APP_ID, TWILL_KEY
from tests.e2e.test_cli import run
from tests.fakes.github import FakeGitHub
from tests.fakes.twill import FakeTwill
from tests.live import serve_in_thread
from tests.payloads import INSTALLATION, REPO

pytestmark = pytest.mark.slow


@dataclass
class Peers:
    github: FakeGitHub
    twill: FakeTwill
    env: dict[str, str]


def healthz_app() -> Starlette:
    async def healthz(request: object) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/healthz", healthz)])


@pytest.fixture
def peers(database_url: str, app_keys: tuple[str, str]) -> Iterator[Peers]:
    github = FakeGitHub(
        app_id=APP_ID, public_key=app_keys[1], installations={REPO: INSTALLATION}
    )
    twill = FakeTwill(api_key=TWILL_KEY)
    with (
        serve_in_thread(github.app("/api/v3")) as github_url,
        serve_in_thread(twill.app()) as twill_url,
        serve_in_thread(healthz_app()) as public_url,
    ):
        github.hook_url = f"{public_url}/api/github/webhooks"
        yield Peers(
            github,
            twill,
            {
                "DATABASE_URL": database_url,
                "TWILL_API_KEY": TWILL_KEY,
                "TWILL_API_URL": f"{twill_url}/api/v1",
                "GITHUB_APP_ID": str(APP_ID),
                "GITHUB_APP_PRIVATE_KEY": app_keys[0],
                "GITHUB_API_URL": f"{github_url}/api/v3",
                "GITHUB_WEB_URL": github_url,
                "BRIDGE_PUBLIC_URL": public_url,
            },
        )
    assert github.problems == []


def lines(out: str) -> dict[str, tuple[str, str]]:
    """name -> (status, reason) of each report line."""
    found = {}
    for line in out.splitlines():
        status, rest = line.split(None, 1)
        name, reason = rest[:16].strip(), rest[16:].strip()
        found[name] = (status, reason)
    return found


def test_doctor_passes_when_everything_answers(peers: Peers, tmp_path: Path) -> None:
    result = run("doctor", env=peers.env, cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    report = lines(result.stdout)
    assert {status for status, _ in report.values()} == {"ok"}, result.stdout
    assert set(report) >= {
        "settings",
        "database",
        "migrations",
        "github app keys",
        "github app",
        "app permissions",
        "installations",
        "twill",
        "public url",
        "webhook url",
        "deliveries",
    }
    assert "twill-bridge-test" in report["github app"][1]
    assert report["installations"][1] == "1: octo-org"
    assert peers.twill.me_requests == 1
    # The JWT calls went under the Enterprise base path.
    assert ("GET", "/api/v3/app") in peers.github.calls
    for secret in (TWILL_KEY, peers.env["GITHUB_APP_PRIVATE_KEY"].splitlines()[1]):
        assert secret not in result.stdout + result.stderr


def test_doctor_names_each_failure_and_exits_1(peers: Peers, tmp_path: Path) -> None:
    peers.github.app_permissions = {"issues": "read", "metadata": "read"}
    peers.github.hook_url = "https://old-host.example.com/hook"
    peers.github.record_delivery("lost-1", "issues", {"action": "labeled"}, 502)
    env = {**peers.env, "TWILL_API_KEY": "not-the-key"}

    result = run("doctor", env=env, cwd=tmp_path)

    assert result.returncode == 1
    report = lines(result.stdout)
    assert (
        report["twill"][0] == "FAIL" and "refused TWILL_API_KEY" in report["twill"][1]
    )
    assert report["app permissions"][0] == "FAIL"
    assert "issues: write" in report["app permissions"][1]
    assert "contents: read" in report["app permissions"][1]
    assert report["webhook url"] == (
        "FAIL",
        f"the App's webhook goes to https://old-host.example.com/hook, not "
        f"{peers.env['BRIDGE_PUBLIC_URL']}/api/github/webhooks",
    )
    assert (
        report["deliveries"][0] == "warn"
        and "1 of the last 1 failed" in report["deliveries"][1]
    )
    assert report["database"][0] == "ok"
    assert "not-the-key" not in result.stdout


def test_doctor_without_an_app_points_to_setup(peers: Peers, tmp_path: Path) -> None:
    env = {k: v for k, v in peers.env.items() if not k.startswith("GITHUB_APP_")}
    result = run("doctor", env=env, cwd=tmp_path)

    assert result.returncode == 1
    report = lines(result.stdout)
    assert report["github app keys"][0] == "FAIL"
    assert "/setup" in report["github app keys"][1]
    assert report["twill"][0] == "ok"


def test_doctor_with_a_refused_jwt(peers: Peers, tmp_path: Path) -> None:
    result = run("doctor", env={**peers.env, "GITHUB_APP_ID": "999"}, cwd=tmp_path)
    assert result.returncode == 1
    assert "refused the App's JWT" in lines(result.stdout)["github app"][1]
    # The fake noted the foreign JWT; that is what this test is about.
    assert peers.github.problems == ["JWT iss is not the app id as a string"]
    peers.github.problems.clear()


def test_doctor_reports_bad_settings_and_a_missing_database(tmp_path: Path) -> None:
    bad = run("doctor", env={"BRIDGE_PORT": "huge"}, cwd=tmp_path)
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAIL  settings")

    missing = run("doctor", cwd=tmp_path)
    assert missing.returncode == 1
    report = lines(missing.stdout)
    assert (
        report["database"][0] == "FAIL"
        and "run `twill-bridge migrate`" in report["database"][1]
    )
    assert list(tmp_path.iterdir()) == []  # no empty database file made
