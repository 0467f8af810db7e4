"""Crashes and restarts of a served process: one task and one comment whatever happens."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bridge.db import create_engine, sessionmaker
from bridge.models import Dispatch, RateLimit, utcnow
from tests import payloads
from tests.e2e.test_serve import post
from tests.fakes.github import FakeGitHub, GitHubFault
from tests.fakes.twill import FakeTwill, Fault
from tests.live import BridgeProcess, wait_until

pytestmark = pytest.mark.slow

FAST = {
    "BRIDGE_LEASE_SECONDS": "2",
    "BRIDGE_WORKER_POLL_SECONDS": "0.1",
    "BRIDGE_TWILL_RATE_PER_MINUTE": "100000",
    "BRIDGE_TWILL_RATE_PER_HOUR": "1000000",
}


def db(url: str, work: Any) -> Any:
    """Run `work(session)` against the database, from a synchronous test."""

    async def run() -> Any:
        engine = create_engine(url)
        try:
            async with sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def dispatches(url: str) -> list[Dispatch]:
    async def read(session: Any) -> list[Dispatch]:
        return list(
            (await session.scalars(select(Dispatch).order_by(Dispatch.id))).all()
        )

    return db(url, read)


def hold_next_slot(url: str, seconds: float) -> None:
    """Make the next Twill slot lie `seconds` ahead, as a busy budget would."""

    async def hold(session: Any) -> None:
        now = utcnow()
        session.add(
            RateLimit(
                key="twill",
                next_slot_at=now + timedelta(seconds=seconds),
                updated_at=now,
            )
        )
        await session.commit()

    db(url, hold)


def test_kill_between_ack_and_twill_call_gives_one_task(
    live: dict, database_url: str
) -> None:  # type: ignore[type-arg]
    twill: FakeTwill = live["twill"]
    github: FakeGitHub = live["github"]
    env = {**live["env"], **FAST}
    hold_next_slot(database_url, 3)
    first = BridgeProcess(env, live["cwd"]).start()
    try:
        assert (
            post(first, "issues", payloads.issues_labeled("twill")).status_code == 202
        )
        wait_until(lambda: dispatches(database_url)[0].lease_owner is not None)
        first.kill()  # claimed, waiting for its slot, not yet sent
    finally:
        first.stop_quietly()
    assert twill.requests == []
    [row] = dispatches(database_url)
    assert row.status == "queued"

    second = BridgeProcess(env, live["cwd"]).start()
    try:
        wait_until(
            lambda: len(github.issue_comments(payloads.REPO, 12)) == 1, timeout=30
        )
        time.sleep(1.0)  # time enough for a duplicate to show up, if there were one
    finally:
        assert second.terminate() == 0
    assert len(twill.tasks) == 1
    assert len(github.issue_comments(payloads.REPO, 12)) == 1


def test_kill_after_twill_call_before_comment_gives_one_task_one_comment(
    live: dict, database_url: str
) -> None:  # type: ignore[type-arg]
    twill: FakeTwill = live["twill"]
    github: FakeGitHub = live["github"]
    env = {**live["env"], **FAST}
    github.fail(GitHubFault("POST", "/comments", 502, delay=30))  # hangs, never writes
    first = BridgeProcess(env, live["cwd"]).start()
    try:
        assert (
            post(first, "issues", payloads.issues_labeled("twill")).status_code == 202
        )
        wait_until(
            lambda: (
                len(twill.tasks) == 1
                and dispatches(database_url)[0].status == "created"
            )
        )
        wait_until(
            lambda: any(
                m == "POST" and p.endswith("/comments") for m, p in github.calls
            )
        )
        first.kill()
    finally:
        first.stop_quietly()

    second = BridgeProcess(env, live["cwd"]).start()
    try:
        wait_until(lambda: dispatches(database_url)[0].status == "reported", timeout=30)
        time.sleep(1.0)
    finally:
        assert second.terminate() == 0
    assert len(twill.tasks) == 1
    [comment] = github.issue_comments(payloads.REPO, 12)
    assert "https://twill.ai/tasks/task-1" in comment["body"]


def test_kill_while_sending_makes_the_dispatch_uncertain_not_resent(
    live: dict, database_url: str
) -> None:  # type: ignore[type-arg]
    twill: FakeTwill = live["twill"]
    env = {**live["env"], **FAST}
    twill.fail(Fault(delay=30))
    first = BridgeProcess(env, live["cwd"]).start()
    try:
        post(first, "issues", payloads.issues_labeled("twill"))
        wait_until(lambda: len(twill.requests) == 1)  # Twill is working on it
        first.kill()
    finally:
        first.stop_quietly()
    second = BridgeProcess(env, live["cwd"]).start()
    try:
        wait_until(
            lambda: dispatches(database_url)[0].status == "uncertain", timeout=30
        )
    finally:
        assert second.terminate() == 0
    assert len(twill.requests) == 1


def test_sigterm_finishes_in_flight_work_exits_0_and_a_restart_resumes(
    live: dict, database_url: str
) -> None:  # type: ignore[type-arg]
    twill: FakeTwill = live["twill"]
    github: FakeGitHub = live["github"]
    env = {**live["env"], **FAST, "BRIDGE_WORKER_CONCURRENCY": "1"}
    twill.fail(Fault(delay=1.5))
    first = BridgeProcess(env, live["cwd"]).start()
    try:
        for number in range(1, 6):
            assert (
                post(
                    first, "issues", payloads.issues_labeled("twill", number=number)
                ).status_code
                == 202
            )
        wait_until(lambda: any(d.status == "sending" for d in dispatches(database_url)))
        started = time.monotonic()
        assert first.terminate() == 0
        assert time.monotonic() - started < 10
    finally:
        first.stop_quietly()
    rows = dispatches(database_url)
    assert "sending" not in {d.status for d in rows}
    assert all(d.lease_owner is None for d in rows if d.status == "queued")

    second = BridgeProcess(env, live["cwd"]).start()
    try:
        wait_until(
            lambda: {d.status for d in dispatches(database_url)} == {"reported"},
            timeout=30,
        )
    finally:
        assert second.terminate() == 0
    assert sorted(t["request"]["title"] for t in twill.tasks) == sorted(
        {t["request"]["title"] for t in twill.tasks}
    )
    assert len(twill.tasks) == 5
    assert all(len(github.issue_comments(payloads.REPO, n)) == 1 for n in range(1, 6))


def test_a_second_process_on_one_sqlite_file_only_receives(
    live: dict, database_url: str
) -> None:  # type: ignore[type-arg]
    if not database_url.startswith("sqlite"):
        pytest.skip("the one-worker rule is SQLite's")
    env = {**live["env"], **FAST}
    first = BridgeProcess(env, live["cwd"]).start()
    second = BridgeProcess(env, live["cwd"]).start()
    try:
        assert "only receives deliveries" in second.output()
        assert (
            post(second, "issues", payloads.issues_labeled("twill")).status_code == 202
        )
        wait_until(
            lambda: len(live["twill"].tasks) == 1
        )  # the first process's worker sends it
    finally:
        assert second.terminate() == 0
        assert first.terminate() == 0


def test_a_real_timeout_after_sending_is_uncertain_and_not_resent(
    live: dict, database_url: str
) -> None:  # type: ignore[type-arg]
    twill: FakeTwill = live["twill"]
    twill.fail(Fault(delay=3))
    bridge = BridgeProcess(
        {**live["env"], **FAST, "BRIDGE_TWILL_TIMEOUT_SECONDS": "0.5"}, live["cwd"]
    ).start()
    try:
        post(bridge, "issues", payloads.issues_labeled("twill"))
        wait_until(lambda: dispatches(database_url)[0].status == "uncertain")
        time.sleep(1.0)
    finally:
        assert bridge.terminate() == 0
    assert len(twill.requests) == 1
    assert "ReadTimeout" in (dispatches(database_url)[0].last_error or "")
