"""`twill-bridge doctor` as a process, against fakes served on 127.0.0.1.

GitHub is served under /api/v3, as GitHub Enterprise Server is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, Response
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
    # path -> the answer played instead of the fake's (GitHub's or Twill's).
    odd: dict[str, Response] = field(default_factory=dict)


def answering_oddly(app: Any, odd: dict[str, Response]) -> Any:
    """`app`, except that a path in `odd` gets that answer."""

    async def serve(scope: Any, receive: Any, send: Any) -> None:
        answer = odd.get(scope.get("path", "")) if scope["type"] == "http" else None
        await (answer or app)(scope, receive, send)

    return serve


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
    odd: dict[str, Response] = {}
    with (
        serve_in_thread(answering_oddly(github.app("/api/v3"), odd)) as github_url,
        serve_in_thread(answering_oddly(twill.app(), odd)) as twill_url,
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
            odd,
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


GOOD_APP = {
    "id": APP_ID,
    "slug": "twill-bridge-test",
    "owner": {"login": "octo-org"},
    "html_url": "https://github.com/apps/twill-bridge-test",
    "permissions": {"issues": "write"},
    "events": ["issues"],
}
# Deeper than Python's JSON parser follows: RecursionError, not ValueError.
NESTED = Response("[" * 100_000 + "]" * 100_000, media_type="application/json")
ODD_ANSWERS = [
    # (path, answer, the check, the reason it must give)
    (
        "/api/v3/app",
        HTMLResponse("<html>Sign in to your proxy</html>"),
        "github app",
        "GET /app answered with something other than its JSON",
    ),
    (
        "/api/v3/app",
        JSONResponse({**GOOD_APP, "owner": "octo-org"}),
        "github app",
        "GET /app answered oddly: `owner` is a string",
    ),
    (
        "/api/v3/app",
        JSONResponse({**GOOD_APP, "permissions": ["issues"]}),
        "github app",
        "GET /app answered oddly: `permissions` is a list",
    ),
    (
        "/api/v3/app",
        JSONResponse({**GOOD_APP, "events": "issues"}),
        "github app",
        "GET /app answered oddly: `events` is a string",
    ),
    (
        "/api/v3/app/installations",
        JSONResponse({"total_count": 1, "installations": []}),
        "installations",
        "GET /app/installations answered something other than a list of installations",
    ),
    (
        "/api/v3/app/installations",
        JSONResponse(["octo-org"]),
        "installations",
        "GET /app/installations answered something other than a list of installations",
    ),
    (
        "/api/v3/app/hook/config",
        JSONResponse([1]),
        "webhook url",
        "GET /app/hook/config answered with something other than its JSON",
    ),
    (
        "/api/v3/app/hook/config",
        JSONResponse({"url": 5}),
        "webhook url",
        "GET /app/hook/config: `url` is not a string",
    ),
    (
        "/api/v3/app/hook/deliveries",
        JSONResponse({"deliveries": []}),
        "deliveries",
        "GET /app/hook/deliveries answered something other than a list of deliveries",
    ),
    (
        "/api/v1/auth/me",
        JSONResponse([1, 2]),
        "twill",
        "/api/v1: Twill's answer was not a JSON object",
    ),
    (
        "/api/v3/app",
        NESTED,
        "github app",
        "GET /app answered with something other than its JSON",
    ),
    (
        "/api/v3/app/installations",
        NESTED,
        "installations",
        "GET /app/installations answered with something other than its JSON",
    ),
    (
        "/api/v3/app/hook/config",
        NESTED,
        "webhook url",
        "GET /app/hook/config answered with something other than its JSON",
    ),
    (
        "/api/v3/app/hook/deliveries",
        NESTED,
        "deliveries",
        "GET /app/hook/deliveries answered with something other than its JSON",
    ),
    (
        "/api/v1/auth/me",
        NESTED,
        "twill",
        "GET /auth/me answered with something other than its JSON",
    ),
]


@pytest.mark.parametrize(
    ("path", "answer", "check", "reason"),
    ODD_ANSWERS,
    ids=[
        "app-html",
        "app-owner-string",
        "app-permissions-list",
        "app-events-string",
        "installations-object",
        "installations-strings",
        "hook-config-list",
        "hook-url-number",
        "deliveries-object",
        "twill-list",
        "app-nested",
        "installations-nested",
        "hook-config-nested",
        "deliveries-nested",
        "twill-nested",
    ],
)
def test_an_odd_answer_fails_its_own_check_in_one_line(
    peers: Peers, tmp_path: Path, path: str, answer: Response, check: str, reason: str
) -> None:
    peers.odd[path] = answer

    result = run("doctor", env=peers.env, cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr == ""
    status, given = lines(result.stdout)[check]
    assert status == "FAIL"
    assert given.endswith(reason), given
    # Every other check still reports (the webhook's need GET /app).
    assert {"settings", "database", "twill", "public url"} <= set(lines(result.stdout))


def test_terminal_escapes_and_line_breaks_from_a_peer_are_not_printed(
    peers: Peers, tmp_path: Path
) -> None:
    peers.odd["/api/v3/app"] = JSONResponse(
        {
            **GOOD_APP,
            "slug": "twill\x1b[2J\x1b[31mFAKE ok everything\x1b[0m\x1b]0;title\x07",
            "owner": {"login": "octo\nok    twill            forged line\u202e"},
        }
    )

    result = run("doctor", env=peers.env, cwd=tmp_path)

    assert not [c for c in result.stdout if c != "\n" and not c.isprintable()]
    status, reason = lines(result.stdout)["github app"]
    assert status == "ok"
    assert reason == (
        f"twillFAKE ok everything (id {APP_ID}) owned by octo ok twill forged line"
    )
    assert not [line for line in result.stdout.splitlines() if "forged" in line[:30]]


def test_no_secret_a_peer_echoes_is_printed(peers: Peers, tmp_path: Path) -> None:
    secret = "whsec-doctor-must-hide-this"
    # Twill echoing the key it was sent, without "Bearer" before it.
    peers.odd["/api/v1/auth/me"] = JSONResponse(
        {"error": {"code": "bad_request", "message": f"key {TWILL_KEY}: malformed"}},
        status_code=400,
    )
    # GitHub echoing the webhook secret and the key's body in its message.
    key_line = peers.env["GITHUB_APP_PRIVATE_KEY"].splitlines()[1]
    peers.odd["/api/v3/app/hook/config"] = JSONResponse(
        {"message": f"cannot use {secret} with {key_line}"}, status_code=422
    )
    env = {**peers.env, "GITHUB_WEBHOOK_SECRET": secret}

    result = run("doctor", env=env, cwd=tmp_path)

    report = lines(result.stdout)
    assert report["twill"] == (
        "FAIL",
        f"{peers.env['TWILL_API_URL']}: Twill refused the request: key ***: malformed",
    )
    assert report["webhook url"][1].endswith(
        "GitHub answered HTTP 422: cannot use *** with ***"
    )
    for shown in (TWILL_KEY, secret, key_line):
        assert shown not in result.stdout + result.stderr


def test_a_database_without_its_schema_is_one_line_per_check(tmp_path: Path) -> None:
    (tmp_path / "twill-bridge.db").touch()  # there, but never migrated

    result = run("doctor", cwd=tmp_path)

    report = lines(result.stdout)  # a second line of SQL would not parse
    assert report["migrations"][0] == "FAIL"
    assert report["github app keys"][0] == "FAIL"
    assert "no such table: github_app" in report["github app keys"][1]
    assert "SELECT" not in result.stdout
