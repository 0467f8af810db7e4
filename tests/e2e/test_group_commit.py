"""Group commit: deliveries that arrive together share one transaction, and a
2xx still means the delivery is committed.

To make a batch form deterministically, a second connection holds the
database's write lock while the deliveries arrive: the recorder's first
transaction waits for it, and everything that arrives meanwhile queues for the
next one.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from bridge.db import create_engine
from tests import payloads
from tests.conftest import Harness


@asynccontextmanager
async def write_lock(database_url: str) -> AsyncIterator[None]:
    """Hold the write lock on the deliveries from another connection."""
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    engine = create_engine(database_url)
    async with engine.connect() as other:
        await other.execute(text("LOCK TABLE deliveries IN EXCLUSIVE MODE"))
        try:
            yield
        finally:
            await other.rollback()
    await engine.dispose()


async def run_sql(bridge: Harness, *statements: str) -> None:
    engine = create_engine(bridge.settings.database_url)
    async with engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))
    await engine.dispose()


async def batched(
    bridge: Harness, deliveries: list[Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """Send the first delivery, queue the others behind it, then let them through."""
    recorder = bridge.app.state.recorder
    async with write_lock(bridge.settings.database_url):
        tasks = [asyncio.ensure_future(deliveries[0])]
        await asyncio.sleep(0.2)  # the recorder takes it, and meets the lock
        assert recorder.waiting == 0
        tasks += [asyncio.ensure_future(one) for one in deliveries[1:]]
        for _ in range(500):
            if recorder.waiting == len(tasks) - 1:
                break
            await asyncio.sleep(0.01)
        assert recorder.waiting == len(tasks) - 1
    return list(await asyncio.gather(*tasks))


def labeled(number: int) -> dict[str, Any]:
    return payloads.issues_labeled("twill", number=number)


async def test_concurrent_deliveries_share_a_commit_and_each_gets_its_answer(
    bridge: Harness,
) -> None:
    commits = bridge.app.state.recorder.commits
    answers = await batched(
        bridge, [bridge.deliver("issues", labeled(n)) for n in range(1, 22)]
    )

    assert [a.status_code for a in answers] == [202] * 21
    # The first alone (it met the lock), the twenty behind it in one commit.
    assert bridge.app.state.recorder.commits - commits == 2
    dispatches = await bridge.dispatches()
    assert sorted(d.issue_number for d in dispatches) == list(range(1, 22))
    by_delivery = {d.delivery_id: d for d in await bridge.deliveries()}
    for answer in answers:
        body = answer.json()
        row = by_delivery[body["delivery"]]
        assert (row.outcome, row.dispatch_id) == ("queued", body["dispatch"])
    for dispatch in dispatches:
        [event] = await bridge.events(dispatch.id)
        assert event.status == "queued"


async def test_one_batch_answers_repeats_duplicates_and_replies_as_alone(
    bridge: Harness,
) -> None:
    assert (await bridge.deliver("issues", labeled(1), "seen")).status_code == 202
    usage = payloads.comment_created("/twill plna", comment_id=900)
    answers = await batched(
        bridge,
        [
            bridge.deliver("issues", labeled(2), "first"),
            bridge.deliver("issues", labeled(1), "seen"),  # a redelivery
            bridge.deliver("issues", labeled(3), "twice"),
            bridge.deliver("issues", labeled(3), "twice"),  # the same id in the batch
            bridge.deliver("issues", labeled(4), "hook-a"),
            bridge.deliver("issues", labeled(4), "hook-b"),  # the same trigger
            bridge.deliver("issues", labeled(1), "hook-c"),  # a trigger recorded before
            bridge.deliver("issue_comment", usage, "usage-a"),
            bridge.deliver("issue_comment", usage, "usage-b"),
        ],
    )

    outcomes = [(a.status_code, a.json()["outcome"]) for a in answers]
    assert outcomes == [
        (202, "queued"),
        (200, "duplicate"),
        (202, "queued"),
        (200, "duplicate"),
        (202, "queued"),
        (200, "duplicate"),
        (200, "duplicate"),
        (200, "replied"),
        (200, "duplicate"),
    ]
    rows = {d.delivery_id: d for d in await bridge.deliveries()}
    assert (rows["seen"].repeats, rows["twice"].repeats) == (1, 1)
    dispatches = {d.issue_number: d.id for d in await bridge.dispatches()}
    assert sorted(dispatches) == [1, 2, 3, 4]
    assert rows["hook-b"].dispatch_id == dispatches[4]
    assert rows["hook-c"].dispatch_id == dispatches[1]
    assert answers[6].json()["reason"] == (
        f"this trigger was already dispatched (dispatch {dispatches[1]})"
    )
    assert len(await bridge.replies()) == 1


REFUSE_ONE = {
    "sqlite": [
        "CREATE TRIGGER refuse_one BEFORE INSERT ON deliveries "
        "WHEN NEW.delivery_id = 'refused' "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN IF NEW.delivery_id = 'refused' THEN "
        "RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_one BEFORE INSERT ON deliveries "
        "FOR EACH ROW EXECUTE FUNCTION refuse_one()",
    ],
}
UNDO_REFUSE_ONE = {
    "sqlite": ["DROP TRIGGER refuse_one"],
    "postgresql": [
        "DROP TRIGGER refuse_one ON deliveries",
        "DROP FUNCTION refuse_one()",
    ],
}

# A row that breaks a deferred foreign key: the database refuses the COMMIT,
# after every statement of the batch succeeded.
BLOCK_COMMIT = {
    "sqlite": [
        "CREATE TABLE commit_blocker (ref INTEGER "
        "REFERENCES dispatches(id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER block_commit AFTER INSERT ON deliveries "
        "BEGIN INSERT INTO commit_blocker VALUES (-1); END",
    ],
    "postgresql": [
        "CREATE TABLE commit_blocker (ref INTEGER "
        "REFERENCES dispatches(id) DEFERRABLE INITIALLY DEFERRED)",
        "CREATE FUNCTION block_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN INSERT INTO commit_blocker VALUES (-1); RETURN NEW; END $$",
        "CREATE TRIGGER block_commit AFTER INSERT ON deliveries "
        "FOR EACH ROW EXECUTE FUNCTION block_commit()",
    ],
}
UNDO_BLOCK_COMMIT = {
    "sqlite": ["DROP TRIGGER block_commit", "DROP TABLE commit_blocker"],
    "postgresql": [
        "DROP TRIGGER block_commit ON deliveries",
        "DROP FUNCTION block_commit()",
        "DROP TABLE commit_blocker",
    ],
}


def dialect(bridge: Harness) -> str:
    return (
        "sqlite" if bridge.settings.database_url.startswith("sqlite") else "postgresql"
    )


async def test_a_row_the_database_refuses_fails_only_its_own_delivery(
    bridge: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await run_sql(bridge, *REFUSE_ONE[dialect(bridge)])
    try:
        ids = ["before", "a", "b", "refused", "c", "d"]
        answers = await batched(
            bridge,
            [bridge.deliver("issues", labeled(n), i) for n, i in enumerate(ids, 1)],
        )
    finally:
        await run_sql(bridge, *UNDO_REFUSE_ONE[dialect(bridge)])

    statuses = {i: a.status_code for i, a in zip(ids, answers, strict=True)}
    assert statuses == {i: 503 if i == "refused" else 202 for i in ids}
    assert answers[3].json()["error"]["code"] == "not_recorded"
    assert sorted(d.delivery_id for d in await bridge.deliveries()) == sorted(
        set(ids) - {"refused"}
    )
    assert len(await bridge.dispatches()) == 5
    assert "recording them one by one" in caplog.text
    # GitHub's redelivery of the refused one, once the database takes it.
    again = await bridge.deliver("issues", labeled(4), "refused")
    assert (again.status_code, again.json()["outcome"]) == (202, "queued")


async def test_a_failed_commit_answers_no_delivery_of_its_batch_with_a_2xx(
    bridge: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await run_sql(bridge, *BLOCK_COMMIT[dialect(bridge)])
    try:
        answers = await batched(
            bridge, [bridge.deliver("issues", labeled(n), f"d{n}") for n in range(1, 7)]
        )
    finally:
        await run_sql(bridge, *UNDO_BLOCK_COMMIT[dialect(bridge)])

    assert [a.status_code for a in answers] == [503] * 6
    assert {a.json()["error"]["code"] for a in answers} == {"not_recorded"}
    assert await bridge.deliveries() == []
    assert await bridge.dispatches() == []
    assert "deliveries not recorded" in caplog.text
    assert "recording them one by one" not in caplog.text  # never retried blindly
    # The recorder carries on; GitHub's redeliveries are recorded as new.
    again = [await bridge.deliver("issues", labeled(n), f"d{n}") for n in range(1, 7)]
    assert [a.status_code for a in again] == [202] * 6


@pytest.mark.parametrize("mode, value", [("full", 2), ("normal", 1)])
async def test_sqlite_synchronous_follows_the_setting(
    database_url: str, mode: str, value: int
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("an SQLite setting")
    engine = create_engine(database_url, mode)
    async with engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA synchronous"))).scalar() == value
    await engine.dispose()
