"""The `twill-bridge` command as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import payloads


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILL_", "GITHUB_", "BRIDGE_", "DATABASE_URL"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def test_invalid_settings_exit_2_with_one_line_each_and_no_traceback(
    tmp_path: Path,
) -> None:
    result = run(
        "migrate",
        env={
            "GITHUB_APP_ID": "twelve",
            "GITHUB_APP_PRIVATE_KEY": "-----BEGIN nonsense",
            "TWILL_API_URL": "not a url",
        },
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("twill-bridge: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_migrate_creates_the_sqlite_file_in_the_working_directory(
    tmp_path: Path,
) -> None:
    result = run("migrate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "twill-bridge.db").is_file()
    again = run("migrate", cwd=tmp_path)
    assert again.returncode == 0


def test_simulate_prints_the_decision_and_exact_request(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text(
        json.dumps(payloads.comment_created("/twill plan keep the API stable"))
    )
    result = run(
        "simulate",
        str(path),
        "--event",
        "issue_comment",
        cwd=tmp_path,
        env={"BRIDGE_DEFAULT_AGENT": "claude-code/sonnet"},
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["decision"] == "dispatch"
    assert out["create_task_request"]["userIntent"] == "PLAN"
    assert out["create_task_request"]["agent"] == "claude-code/sonnet"
    assert "keep the API stable" in out["create_task_request"]["command"]
    assert not (tmp_path / "twill-bridge.db").exists()  # no database, no network


def test_simulate_explains_an_ignored_payload(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payloads.issues_labeled("bug")))
    out = json.loads(
        run("simulate", str(path), "--event", "issues", cwd=tmp_path).stdout
    )
    assert out == {"decision": "ignore", "reason": "label 'bug' is not a trigger label"}


def test_simulate_with_an_unreadable_file_is_exit_2(tmp_path: Path) -> None:
    result = run(
        "simulate", str(tmp_path / "missing.json"), "--event", "issues", cwd=tmp_path
    )
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_dispatches_retry_refuses_unknown_ids(tmp_path: Path) -> None:
    assert run("migrate", cwd=tmp_path).returncode == 0
    result = run("dispatches", "retry", "99", cwd=tmp_path)
    assert result.returncode == 1 and "there is no dispatch 99" in result.stderr
    listing = run("dispatches", "list", cwd=tmp_path)
    assert listing.returncode == 0 and listing.stdout == ""


def test_reading_where_there_is_no_database_says_so_and_creates_nothing(
    tmp_path: Path,
) -> None:
    result = run("dispatches", "list", cwd=tmp_path)
    assert result.returncode == 1
    assert "there is no database at twill-bridge.db" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = run(
        "migrate",
        cwd=tmp_path,
        env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("twill-bridge: cannot migrate the database at")
    assert "Traceback" not in result.stderr


# `twill-bridge setup-token`: what `docker compose exec` and `kubectl exec` run.


async def stored_token(database_url: str) -> str | None:
    from sqlalchemy import select

    from bridge.credentials import SETUP_ROW
    from bridge.db import create_engine
    from bridge.models import BridgeSecret

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.scalar(
                select(BridgeSecret.value).where(BridgeSecret.name == SETUP_ROW)
            )
    finally:
        await engine.dispose()


async def test_setup_token_prints_the_databases_token_alone_on_stdout(
    tmp_path: Path, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url, "BRIDGE_PUBLIC_URL": "https://b.example"}
    workdir = tmp_path / "data"
    workdir.mkdir()
    first = run("setup-token", env=env, cwd=workdir)
    again = run("setup-token", env=env, cwd=workdir)

    assert first.returncode == 0, first.stderr
    [token] = first.stdout.splitlines()
    assert len(token) >= 32 and token == await stored_token(database_url)
    assert again.stdout == first.stdout  # one token, whichever pod is asked
    assert first.stderr == "twill-bridge: enter it at https://b.example/setup\n"
    assert list(workdir.iterdir()) == []  # nothing written: a read-only pod works


def test_setup_token_without_a_public_url_says_what_setup_needs(
    tmp_path: Path, database_url: str
) -> None:
    result = run("setup-token", env={"DATABASE_URL": database_url}, cwd=tmp_path)
    assert result.returncode == 0
    assert "set BRIDGE_PUBLIC_URL first" in result.stderr


async def test_setup_token_is_refused_once_an_app_is_configured(
    tmp_path: Path, database_url: str
) -> None:
    from bridge.db import create_engine
    from bridge.models import GitHubApp, utcnow

    by_hand = run(
        "setup-token",
        env={"DATABASE_URL": database_url, "GITHUB_APP_ID": "42"},
        cwd=tmp_path,
    )
    assert by_hand.returncode == 1 and by_hand.stdout == ""
    assert by_hand.stderr == "twill-bridge: setup is closed: GITHUB_APP_ID is set\n"

    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            GitHubApp.__table__.insert().values(
                id=1,
                app_id=7,
                slug="twill-bridge-octo",
                html_url="https://github.com/apps/twill-bridge-octo",
                storage="database",
                created_at=utcnow(),
            )
        )
    await engine.dispose()
    registered = run("setup-token", env={"DATABASE_URL": database_url}, cwd=tmp_path)
    assert registered.returncode == 1 and registered.stdout == ""
    assert "the App twill-bridge-octo was registered there" in registered.stderr
    assert await stored_token(database_url) is None  # and it made none


def test_setup_token_where_there_is_no_database_says_so(tmp_path: Path) -> None:
    result = run("setup-token", cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot read the setup token: there is no database" in result.stderr
    assert "Traceback" not in result.stderr
