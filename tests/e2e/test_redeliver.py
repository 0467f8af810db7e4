"""Redelivering what GitHub failed to hand us: the pass, its lease, the job, the CLI."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bridge.app import app_write_pacer
from bridge.models import RateEvent, Redelivery, utcnow
from bridge.redeliver import RedeliverJob, redeliver_failed
from tests import payloads
from tests.conftest import APP_ID, Harness
from tests.e2e.test_cli import run
from tests.live import serve_in_thread


def wire(bridge: Harness) -> None:
    """GitHub's redeliveries go to the bridge, as real ones would."""

    async def target(guid: str, event: str, payload: Any) -> int:
        answer = await bridge.deliver(event, payload, delivery_id=guid)
        return answer.status_code

    bridge.github.hook_target = target


def issue_payload(number: int) -> dict[str, Any]:
    return payloads.issues_labeled("twill", number=number)


async def test_a_lost_delivery_is_redelivered_once_and_becomes_a_task(
    bridge: Harness,
) -> None:
    wire(bridge)
    github = bridge.github
    lost = github.record_delivery("lost", "issues", issue_payload(12), 502, 600)
    github.record_delivery("flaky", "issues", issue_payload(13), 503, 500)
    github.record_delivery(
        "flaky", "issues", issue_payload(13), 200, 400, redelivery=True
    )
    # Recorded here, though GitHub saw our answer fail (it timed out, say).
    await bridge.deliver("issues", issue_payload(14), delivery_id="seen")
    github.record_delivery("seen", "issues", issue_payload(14), 504, 300)
    github.record_delivery("too-old", "issues", issue_payload(15), 502, 3 * 3600)

    summary = await redeliver_failed(
        bridge.sessions, bridge.app.state.github, utcnow() - timedelta(hours=2)
    )

    assert github.redelivery_requests == [lost]
    assert [a.guid for a in summary.redelivered] == ["lost"]
    assert (summary.plan.succeeded, summary.plan.received) == (1, 1)
    await bridge.drain()
    numbers = sorted(d.issue_number for d in await bridge.dispatches())
    assert numbers == [12, 14]  # the lost one is a task now; 15 is outside the window
    async with bridge.sessions() as session:
        [row] = (await session.scalars(select(Redelivery))).all()
    assert (row.guid, row.hook_delivery_id, row.attempts, row.outcome) == (
        "lost",
        lost,
        1,
        "requested",
    )

    again = await redeliver_failed(
        bridge.sessions, bridge.app.state.github, utcnow() - timedelta(hours=2)
    )
    assert again.redelivered == [] and github.redelivery_requests == [lost]


async def test_a_guid_whose_redelivery_failed_too_is_asked_again_later_at_most_3_times(
    bridge: Harness,
) -> None:
    github = bridge.github  # no target: every redelivery fails again (bridge down)
    github.record_delivery("down", "issues", issue_payload(12), 502, 600)
    since = utcnow() - timedelta(hours=2)

    for _ in range(5):
        await redeliver_failed(bridge.sessions, bridge.app.state.github, since)
        async with bridge.sessions() as session:
            # Ten minutes pass between two asks.
            for row in (await session.scalars(select(Redelivery))).all():
                row.last_requested_at -= timedelta(minutes=11)
            await session.commit()

    assert len(github.redelivery_requests) == 3


async def test_the_list_is_read_page_by_page_until_the_window_ends(
    bridge: Harness,
) -> None:
    github = bridge.github  # attempts are recorded oldest first, as they happen
    github.record_delivery("older", "issues", issue_payload(13), 502, 9000)
    github.record_delivery("lost", "issues", issue_payload(12), 502, 1000)
    for n in range(250):
        github.record_delivery(f"ok-{n}", "issues", {"action": "opened"}, 200, 310 - n)

    summary = await redeliver_failed(
        bridge.sessions, bridge.app.state.github, utcnow() - timedelta(hours=1)
    )

    pages = [c for c in github.calls if c == ("GET", "/app/hook/deliveries")]
    assert len(pages) == 3
    assert summary.listed == 251 and [a.guid for a in summary.redelivered] == ["lost"]


async def test_redeliveries_are_spaced_like_writes(
    make_harness: Callable[..., Any],
) -> None:
    bridge: Harness = await make_harness(github_write_interval_seconds=0.2)
    for n in range(3):
        bridge.github.record_delivery(
            f"lost-{n}", "issues", issue_payload(20 + n), 502, 60
        )
    job = RedeliverJob(
        bridge.sessions,
        bridge.app.state.github,
        "job",
        300,
        3600,
        app_write_pacer(bridge.settings, bridge.sessions),
    )

    # The fake stamps arrivals with the monotonic clock, the slots are wall time.
    wall_minus_monotonic = time.time() - time.monotonic()
    await job.run_once()

    async with bridge.sessions() as session:
        slots = list(
            await session.scalars(
                select(RateEvent.at)
                .where(RateEvent.key == "github-writes:app")
                .order_by(RateEvent.at)
            )
        )
    arrivals = [t + wall_minus_monotonic for t in bridge.github.write_times]
    assert len(slots) == len(arrivals) == 3
    # What the pacer promises: the slots start 0.2 s apart (across replicas,
    # through the database), and no write leaves before its slot. How long a
    # write then takes (a signed JWT, a request) depends on the machine's load,
    # so the gaps between arrivals are not what it promises.
    starts = [slot.timestamp() for slot in slots]
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.2
    for start, arrival in zip(starts, arrivals, strict=True):
        assert arrival >= start - 0.005  # the two clocks, read a moment apart


async def test_one_replica_at_a_time_runs_the_pass(bridge: Harness) -> None:
    bridge.github.record_delivery("lost", "issues", issue_payload(12), 502, 60)
    jobs = [
        RedeliverJob(
            bridge.sessions, bridge.app.state.github, f"replica-{n}", 300, 3600
        )
        for n in range(3)
    ]

    results = await asyncio.gather(*(job.run_once() for job in jobs))

    assert sum(result is not None for result in results) == 1
    assert len(bridge.github.redelivery_requests) == 1
    # The pass just ran: no replica runs it again before the period is over.
    assert await jobs[0].run_once() is None


async def test_the_service_runs_the_job_by_itself(
    make_harness: Callable[..., Any],
) -> None:
    bridge: Harness = await make_harness(
        worker_enabled=True, redeliver_interval_seconds=0.1
    )
    lost = bridge.github.record_delivery("lost", "issues", issue_payload(12), 502, 60)
    for _ in range(100):
        if bridge.github.redelivery_requests:
            break
        await asyncio.sleep(0.05)
    assert bridge.github.redelivery_requests == [lost]


async def test_the_job_is_off_with_a_zero_interval(
    make_harness: Callable[..., Any],
) -> None:
    bridge: Harness = await make_harness(
        worker_enabled=True, redeliver_interval_seconds=0
    )
    assert bridge.app.state.redeliver_job is None


@pytest.mark.slow
def test_the_command_redelivers_and_says_what(
    database_url: str,
    fake_github: Any,
    app_keys: tuple[str, str],
    tmp_path: Path,
) -> None:
    lost = fake_github.record_delivery(
        "lost-guid", "issues", issue_payload(12), 502, 600
    )
    fake_github.record_delivery("fine", "issue_comment", {"action": "created"}, 200, 60)
    with serve_in_thread(fake_github.app()) as github_url:
        env = {
            "DATABASE_URL": database_url,
            "GITHUB_APP_ID": str(APP_ID),
            "GITHUB_APP_PRIVATE_KEY": app_keys[0],
            "GITHUB_API_URL": github_url,
            "BRIDGE_GITHUB_WRITE_INTERVAL_SECONDS": "0",
        }
        looked = run("redeliver", "--since", "2h", "--dry-run", env=env, cwd=tmp_path)
        assert looked.returncode == 0, looked.stderr
        assert "would redeliver lost-guid  issues.labeled" in looked.stdout
        assert fake_github.redelivery_requests == []

        done = run("redeliver", "--since", "2h", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "redelivered lost-guid  issues.labeled  (HTTP 502" in done.stdout
        assert "redelivered 1; left alone: 1 succeeded" in done.stdout
        assert fake_github.redelivery_requests == [lost]

    bad = run("redeliver", "--since", "soon", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "not a duration" in bad.stderr
