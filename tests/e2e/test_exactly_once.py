"""One trigger, one task: racing deliveries, several workers, a rate-limited burst."""

from __future__ import annotations

import asyncio
import time

from tests import payloads
from tests.conftest import Harness


async def test_the_same_delivery_id_racing_itself_is_one_row_and_one_dispatch(
    bridge: Harness,
) -> None:
    payload = payloads.issues_labeled("twill")
    answers = await asyncio.gather(
        *[bridge.deliver("issues", payload, delivery_id="race") for _ in range(20)]
    )
    assert sorted(a.status_code for a in answers) == [200] * 19 + [202]
    [delivery] = await bridge.deliveries()
    assert delivery.repeats == 19
    assert len(await bridge.dispatches()) == 1


async def test_one_trigger_racing_under_many_delivery_ids_is_one_dispatch(
    bridge: Harness,
) -> None:
    payload = payloads.issues_labeled("twill")
    answers = await asyncio.gather(
        *[bridge.deliver("issues", payload, delivery_id=f"hook-{n}") for n in range(20)]
    )
    outcomes = sorted(a.json()["outcome"] for a in answers)
    assert outcomes == ["duplicate"] * 19 + ["queued"]
    assert len(await bridge.deliveries()) == 20
    [dispatch] = await bridge.dispatches()
    duplicates = [d for d in await bridge.deliveries() if d.outcome == "duplicate"]
    assert {d.dispatch_id for d in duplicates} == {dispatch.id}


async def test_many_workers_on_one_queue_send_each_dispatch_once(
    bridge: Harness,
) -> None:
    for number in range(1, 61):
        await bridge.deliver("issues", payloads.issues_labeled("twill", number=number))
    workers = [bridge.new_worker(f"w{n}") for n in range(4)]
    await asyncio.gather(*[bridge.drain(w) for w in workers])
    await bridge.drain()
    titles = [r["title"] for r in bridge.twill.requests]
    assert len(titles) == len(set(titles)) == 60
    assert {d.status for d in await bridge.dispatches()} == {"reported"}


async def test_a_burst_is_paced_under_an_enforced_limit_with_no_429(
    make_harness,
) -> None:  # type: ignore[no-untyped-def]
    # Twill's limits scaled down 50 times: 100 requests per 1.2 s, 1,000 per 72 s.
    scale = 0.02
    harness: Harness = await make_harness(
        twill_rate_per_minute=int(100 / scale), twill_rate_per_hour=int(1000 / scale)
    )
    harness.twill.per_minute, harness.twill.per_hour, harness.twill.window_scale = (
        100,
        1000,
        scale,
    )
    for number in range(1, 301):
        await harness.deliver("issues", payloads.issues_labeled("twill", number=number))

    workers = [harness.new_worker(f"replica-{n}") for n in range(3)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    started = time.monotonic()
    # The fake has no event to wait on, so poll it.
    while len(harness.twill.tasks) < 300 and time.monotonic() - started < 60:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    for worker in workers:
        worker.stop()
    await asyncio.gather(*tasks)

    assert len(harness.twill.tasks) == 300
    assert harness.twill.rejected_429 == 0
    window = 60 * scale
    times = harness.twill.accepted_at
    busiest = max(
        sum(1 for t in times if start <= t < start + window) for start in times
    )
    assert busiest <= 100
    # Smooth, not bursty: no tenth of a window holds more than a fifth of the limit.
    tenth = window / 10
    assert max(sum(1 for t in times if s <= t < s + tenth) for s in times) <= 20
