"""The `twill-bridge` command as a user runs it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

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


async def stored_tokens(database_url: str) -> list[str]:
    """The setup-token rows' values (digests) in the database."""
    from sqlalchemy import select

    from bridge.credentials import SETUP_ROW
    from bridge.db import create_engine
    from bridge.models import BridgeSecret

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalars(
                select(BridgeSecret.value).where(
                    BridgeSecret.name.like(f"{SETUP_ROW}%")
                )
            )
            return list(rows)
    finally:
        await engine.dispose()


async def accepted(database_url: str, token: str) -> bool:
    from bridge.credentials import setup_token_row
    from bridge.db import create_engine, sessionmaker

    engine = create_engine(database_url)
    try:
        return await setup_token_row(sessionmaker(engine), token) is not None
    finally:
        await engine.dispose()


async def test_setup_token_prints_a_token_every_replica_accepts(
    tmp_path: Path, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url, "BRIDGE_PUBLIC_URL": "https://b.example"}
    workdir = tmp_path / "data"
    workdir.mkdir()
    first = run("setup-token", env=env, cwd=workdir)
    again = run("setup-token", env=env, cwd=workdir)

    assert first.returncode == 0, first.stderr
    [token] = first.stdout.splitlines()
    [other] = again.stdout.splitlines()
    assert len(token) >= 32 and other != token
    # Both work, on whichever replica /setup is opened: the database holds them.
    assert await accepted(database_url, token) and await accepted(database_url, other)
    # Only digests are kept: the token cannot be read back from the database.
    assert token not in await stored_tokens(database_url)
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
    assert await stored_tokens(database_url) == []  # and it made none


def test_setup_token_where_there_is_no_database_says_so(tmp_path: Path) -> None:
    result = run("setup-token", cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot read the setup token: there is no database" in result.stderr
    assert "Traceback" not in result.stderr


REFUSED = {
    "require": "rejected SSL upgrade",
    # No root certificate in HOME: a driver error from before connecting.
    "verify-full": "root certificate file",
}


@pytest.mark.parametrize("mode", ["disable", "prefer", "require", "verify-full"])
def test_a_libpq_url_with_sslmode_connects_or_says_why_in_one_line(
    postgres_url: str, tmp_path: Path, mode: str
) -> None:
    # The form hosted PostgreSQL hands out; the local server has no TLS.
    url = make_url(postgres_url).set(
        drivername="postgres", password="pw-never-shown", query={"sslmode": mode}
    )
    env = {
        "DATABASE_URL": url.render_as_string(hide_password=False),
        "HOME": str(tmp_path),
    }

    listing = run("dispatches", "list", cwd=tmp_path, env=env)
    doctor = run("doctor", cwd=tmp_path, env=env)

    for result in (listing, doctor):
        assert "Traceback" not in result.stderr
        assert "pw-never-shown" not in result.stdout + result.stderr
    database = next(
        line for line in doctor.stdout.splitlines() if line[6:].startswith("database")
    )
    if mode in REFUSED:
        assert listing.returncode == 1
        assert listing.stderr.count("\n") == 1
        assert listing.stderr.startswith("twill-bridge: cannot read dispatches at ")
        assert REFUSED[mode] in listing.stderr
        assert database.startswith("FAIL") and REFUSED[mode] in database
    else:
        assert listing.returncode == 0, listing.stderr
        assert database.startswith("ok") and f"ssl={mode}" in database


SOCKET_DIR = Path("/var/run/postgresql")


@pytest.mark.skipif(
    not SOCKET_DIR.joinpath(".s.PGSQL.5432").exists(),
    reason="no PostgreSQL Unix socket in /var/run/postgresql",
)
def test_a_postgresql_url_through_the_unix_socket_connects(
    postgres_url: str, tmp_path: Path
) -> None:
    # libpq's form: no host in the authority, the socket's folder as `host`.
    given = make_url(postgres_url)
    url = f"postgresql://{given.username}@/{given.database}?host={SOCKET_DIR}&port=5432"

    listing = run("dispatches", "list", cwd=tmp_path, env={"DATABASE_URL": url})
    doctor = run("doctor", cwd=tmp_path, env={"DATABASE_URL": url})

    assert listing.returncode == 0, listing.stderr
    assert "Traceback" not in listing.stderr + doctor.stderr
    database = next(
        line for line in doctor.stdout.splitlines() if line[6:].startswith("database")
    )
    assert database.startswith("ok"), doctor.stdout


def test_libpq_options_asyncpg_lacks_are_refused_with_one_settings_line(
    tmp_path: Path,
) -> None:
    url = "postgres://bob:pw-never-shown@127.0.0.1:1/db?sslmode=require&sslrootcert=/ca"

    result = run("serve", cwd=tmp_path, env={"DATABASE_URL": url})

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "twill-bridge: DATABASE_URL option 'sslrootcert' is not one the bridge's "
        "PostgreSQL driver (asyncpg) understands: set PGSSLROOTCERT in the "
        "environment instead"
    ]
    assert not (tmp_path / "twill-bridge.db").exists()


def test_migrate_makes_the_sqlite_file_owner_only(tmp_path: Path) -> None:
    umask = os.umask(0o022)  # the usual one, which makes files 0644
    try:
        result = run("migrate", cwd=tmp_path)
    finally:
        os.umask(umask)

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE((tmp_path / "twill-bridge.db").stat().st_mode) == 0o600
    assert "owner-only" not in result.stderr  # nothing to tighten in a new file


def test_a_database_others_can_read_is_made_owner_only_and_said(
    tmp_path: Path,
) -> None:
    assert run("migrate", cwd=tmp_path).returncode == 0
    database = tmp_path / "twill-bridge.db"
    database.chmod(0o644)
    wal = tmp_path / "twill-bridge.db-wal"  # as a crash leaves it
    wal.write_bytes(b"")
    wal.chmod(0o640)

    result = run("dispatches", "list", cwd=tmp_path, env={"BRIDGE_LOG_FORMAT": "json"})

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    # SQLite removes the -wal file when the last connection closes.
    assert not wal.exists() or stat.S_IMODE(wal.stat().st_mode) == 0o600
    said = [json.loads(line) for line in result.stderr.splitlines()]
    assert {(line["msg"], line["path"], line["mode_was"]) for line in said} == {
        (
            "database file was readable by others; made it owner-only",
            "twill-bridge.db",
            "0644",
        ),
        (
            "database file was readable by others; made it owner-only",
            "twill-bridge.db-wal",
            "0640",
        ),
    }
