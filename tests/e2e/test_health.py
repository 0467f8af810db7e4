"""GET /healthz and GET /readyz through the real app, with the database in every state."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bridge import health
from bridge.db import create_engine, head_revision
from tests.conftest import Harness


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
