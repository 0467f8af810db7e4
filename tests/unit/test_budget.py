"""The shared rate budget, on a real database with a clock the test moves."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from bridge.budget import HOURLY_SPARE, SAFETY, RateBudget
from bridge.db import create_engine, sessionmaker

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    yield sessionmaker(engine)
    await engine.dispose()


async def test_slots_are_spaced_evenly_under_the_minute_limit(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    budget = RateBudget(sessions, per_minute=100, per_hour=10_000, clock=clock)
    slots = [await budget.reserve() for _ in range(100)]
    gaps = {
        round((b.at - a.at).total_seconds(), 4) for a, b in itertools.pairwise(slots)
    }
    assert gaps == {round(60 / (100 * SAFETY), 4)}
    # Any 60-second window holds fewer than 100 of them.
    in_first_minute = [s for s in slots if s.at < T0 + timedelta(seconds=60)]
    assert len(in_first_minute) == 98
    assert slots[0].wait == 0 and slots[-1].wait > 60


async def test_two_replicas_share_one_pace(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    one = RateBudget(sessions, per_minute=60, per_hour=10_000, clock=clock)
    two = RateBudget(sessions, per_minute=60, per_hour=10_000, clock=clock)
    times = [(await budget.reserve()).at for budget in (one, two, one, two)]
    assert times == sorted(times) and len(set(times)) == 4


async def test_the_hourly_limit_pushes_slots_out(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    budget = RateBudget(sessions, per_minute=6000, per_hour=100, clock=clock)
    allowed = 100 - HOURLY_SPARE
    slots = [await budget.reserve() for _ in range(allowed + 1)]
    assert slots[allowed - 1].at < T0 + timedelta(seconds=60)
    # The next one waits until the first leaves the hour.
    assert slots[allowed].at >= slots[0].at + timedelta(hours=1)


async def test_a_pause_stops_everyone_until_it_ends(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    budget = RateBudget(sessions, per_minute=100, per_hour=1000, clock=clock)
    other = RateBudget(sessions, per_minute=100, per_hour=1000, clock=clock)
    await budget.pause(30)
    assert await other.paused_for() == 30
    slot = await other.reserve()
    assert slot.at == T0 + timedelta(seconds=30)
    await budget.pause(5)  # a shorter pause never cuts a longer one short
    assert await other.paused_for() == 30
    clock.advance(31)
    assert await other.paused_for() == 0


async def test_old_events_are_pruned(sessions) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from bridge.models import RateEvent

    clock = Clock()
    budget = RateBudget(sessions, per_minute=6000, per_hour=100_000, clock=clock)
    for _ in range(5):
        await budget.reserve()
    clock.advance(3700)
    await budget.reserve()
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(RateEvent)) == 1


async def test_reads_take_only_a_slot_that_is_free_now(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    budget = RateBudget(sessions, per_minute=100, per_hour=10_000, clock=clock)
    await budget.reserve()  # a create holds the next slot
    await budget.reserve()
    assert not await budget.reserve_spare(0.25)
    clock.advance(2)
    assert await budget.reserve_spare(0.25)
    # The read took a slot like any call: the next create comes after it.
    slot = await budget.reserve()
    assert slot.at == clock.now + budget.interval


async def test_reads_keep_to_their_share_of_the_minute_and_hour(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    budget = RateBudget(sessions, per_minute=100, per_hour=80, clock=clock)
    taken = 0
    for _ in range(600):  # ten minutes of trying every second
        taken += await budget.reserve_spare(0.25)
        clock.advance(1)
    # Spaced 60 / (98 * 0.25) ≈ 2.45 s apart, until a quarter of the hour's
    # 78 calls are reads.
    assert taken == int((80 - HOURLY_SPARE) * 0.25)
    clock.advance(3600)
    assert await budget.reserve_spare(0.25)


async def test_a_pause_stops_reads_too(sessions) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    budget = RateBudget(sessions, per_minute=100, per_hour=1000, clock=clock)
    await budget.pause(30)
    assert not await budget.reserve_spare(1.0)
    clock.advance(31)
    assert await budget.reserve_spare(1.0)
