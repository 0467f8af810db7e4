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
