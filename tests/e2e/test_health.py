"""GET /healthz and GET /readyz through the real app, with the database in every state."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge import health
from bridge.db import create_engine, head_revision
from tests import payloads
from tests.conftest import WEBHOOK_SECRET, Harness, read_only_database
from tests.live import ROOT


@contextlib.asynccontextmanager
async def revision_set_to(bridge: Harness, revision: str) -> AsyncIterator[None]:
    """The test database's alembic_version at `revision`, put back afterwards."""
    engine = bridge.app.state.engine
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE alembic_version SET version_num = :v"), {"v": revision}
        )
    try:
        yield
    finally:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE alembic_version SET version_num = :v"),
                {"v": head_revision()},
            )


@contextlib.asynccontextmanager
async def database_swapped(bridge: Harness, url: str) -> AsyncIterator[None]:
    """The app's engine pointing at `url` (the database going away after start-up)."""
    original = bridge.app.state.engine
    engine = create_engine(url)
    bridge.app.state.engine = engine
    try:
        yield
    finally:
        bridge.app.state.engine = original
        await engine.dispose()


async def test_healthz_answers_without_asking_anything_else(bridge: Harness) -> None:
    async with database_swapped(bridge, "postgresql+asyncpg://u:p@127.0.0.1:1/none"):
        answer = await bridge.client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "dry_run": False}


async def test_ready_when_the_database_answers_at_the_head_migration(
    bridge: Harness,
) -> None:
    answer = await bridge.client.get("/readyz")

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready"
    assert body["database"]["reachable"] is True
    assert body["database"]["revision"] == body["database"]["head"] == head_revision()
    assert body["database"]["backend"] in ("sqlite", "postgresql")
    assert (body["dry_run"], body["problems"], body["warnings"]) == (False, [], [])
    assert answer.headers["cache-control"] == "no-store"


async def test_dry_run_is_ready_with_a_warning_that_says_why(make_harness) -> None:  # type: ignore[no-untyped-def]
    bridge: Harness = await make_harness(twill_api_key=None, force_dry_run=True)

    answer = await bridge.client.get("/readyz")

    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready" and body["dry_run"] is True
    assert body["warnings"] == [
        "dry run: BRIDGE_DRY_RUN is set",
        "dry run: TWILL_API_KEY is not set",
    ]
    assert body["worker"] == "off (dry run)"


async def test_an_unreachable_database_is_not_ready_and_its_address_is_not_told(
    bridge: Harness,
) -> None:
    url = "postgresql+asyncpg://bridge:hunter2-password@127.0.0.1:1/bridge"
    async with database_swapped(bridge, url):
        answer = await bridge.client.get("/readyz")

    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "not_ready"
    assert body["database"]["reachable"] is False
    [problem] = body["problems"]
    assert problem.startswith("the database cannot be reached")
    for leaked in ("hunter2-password", "127.0.0.1", ":1/", "bridge:"):
        assert leaked not in answer.text


async def test_a_database_that_hangs_is_not_ready_within_the_deadline(
    bridge: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def silent(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await asyncio.sleep(30)  # accepts the connection, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(health, "READY_TIMEOUT_SECONDS", 0.5)
    loop = asyncio.get_running_loop()
    try:
        async with database_swapped(
            bridge, f"postgresql+asyncpg://u@127.0.0.1:{port}/x"
        ):
            began = loop.time()
            answer = await bridge.client.get("/readyz")
            took = loop.time() - began
    finally:
        server.close()

    assert answer.status_code == 503
    assert answer.json()["problems"] == [
        "the database cannot be reached (TimeoutError)"
    ]
    assert took < 2


async def test_a_database_without_the_schema_is_not_ready(
    bridge: Harness, tmp_path: Path
) -> None:
    async with database_swapped(bridge, f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"):
        answer = await bridge.client.get("/readyz")

    assert answer.status_code == 503
    body = answer.json()
    assert body["database"]["reachable"] is True
    assert body["problems"] == [
        "the database has no schema; run `twill-bridge migrate`"
    ]


async def test_a_database_behind_this_version_is_not_ready_until_migrated(
    bridge: Harness,
) -> None:
    async with revision_set_to(bridge, "0006"):
        behind = await bridge.client.get("/readyz")
    after = await bridge.client.get("/readyz")

    assert behind.status_code == 503
    assert behind.json()["problems"] == [
        f"the database is at migration 0006, this version needs {head_revision()}; "
        "run `twill-bridge migrate`"
    ]
    assert after.status_code == 200


async def test_a_database_migrated_by_a_newer_version_stays_ready_with_a_warning(
    bridge: Harness,
) -> None:
    # A rolling update: the new version's migration Job ran, this replica still serves.
    async with revision_set_to(bridge, "0999"):
        answer = await bridge.client.get("/readyz")

    assert answer.status_code == 200
    assert answer.json()["warnings"] == [
        f"the database is at migration 0999, newer than this version's {head_revision()}"
    ]


async def test_a_read_only_postgresql_is_not_ready_and_says_why(
    bridge: Harness,
) -> None:
    if bridge.app.state.engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL setting (SQLite: the next test)")
    async with read_only_database(bridge):
        ready = await bridge.client.get("/readyz")
        refused = await bridge.deliver("issues", payloads.issues_labeled())
        metrics = (await bridge.client.get("/metrics")).text

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "not_recorded"
    assert ready.status_code == 503
    body = ready.json()
    assert body["database"]["reachable"] is True
    assert body["database"]["writable"] is False
    assert body["problems"] == [
        "the database refuses writes (read-only), so no delivery can be recorded"
    ]
    assert "twill_bridge_database_up 0.0" in metrics
    # Writable again: ready, and deliveries are recorded.
    assert (await bridge.client.get("/readyz")).status_code == 200
    accepted = await bridge.deliver("issues", payloads.issues_labeled())
    assert accepted.status_code == 202


# Run as its own process, as the SQLite file's owner: it starts the app, then
# takes its own write permission away and drops its connection, as a file
# system remounted read-only leaves it (every new connection may only read).
READ_ONLY_PROBE = """
import asyncio, json, os, sys
import httpx
from bridge.app import create_app
from bridge.settings import load_settings
from bridge.signature import sign

async def main():
    path, data_dir, secret = sys.argv[1:4]
    settings = load_settings(
        {"DATABASE_URL": "sqlite+aiosqlite:///" + path, "BRIDGE_DATA_DIR": data_dir,
         "GITHUB_WEBHOOK_SECRET": secret, "BRIDGE_DRY_RUN": "true"},
        env_file=None,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as c:
            before = await c.get("/readyz")
            os.chmod(path, 0o400)
            await app.state.engine.dispose()
            ready = await c.get("/readyz")
            body = b'{"zen": "Design for failure."}'
            delivery = await c.post("/api/github/webhooks", content=body, headers={
                "Content-Type": "application/json", "X-GitHub-Event": "ping",
                "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": sign(secret, body),
            })
            metrics = await c.get("/metrics")
    print(json.dumps({
        "before": before.status_code, "ready": ready.status_code,
        "body": ready.json(), "delivery": delivery.status_code,
        "database_up": "twill_bridge_database_up 1.0" in metrics.text,
    }))

asyncio.run(main())
"""


def test_an_sqlite_file_the_bridge_cannot_write_is_not_ready(
    sqlite_template: Path,
) -> None:
    # Root writes whatever the mode says, so as root the probe runs as nobody.
    folder = Path(tempfile.mkdtemp(prefix="bridge-ro-"))
    try:
        database = folder / "bridge.db"
        shutil.copy(sqlite_template, database)
        command = [sys.executable, "-c", READ_ONLY_PROBE]
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in (folder, *folder.iterdir()):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            command = [
                "setpriv",
                f"--reuid={nobody.pw_uid}",
                f"--regid={nobody.pw_gid}",
                "--clear-groups",
                *command,
            ]
        done = subprocess.run(
            [*command, str(database), str(folder), WEBHOOK_SECRET],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    assert seen["before"] == 200
    assert seen["delivery"] == 503  # not_recorded: SQLite refuses the write
    assert seen["ready"] == 503
    assert seen["body"]["database"]["writable"] is False
    assert seen["body"]["problems"] == [
        "the database refuses writes (read-only), so no delivery can be recorded"
    ]
    assert seen["database_up"] is False
