"""Twill's rate limits, kept by all replicas together through the database.

Twill allows 100 requests a minute and 1,000 an hour per API key, shared by
every endpoint, and answers 429 with Retry-After beyond that. Each replica
reserves a slot before a call, in one short transaction on the `rate_limits`
row (locked with FOR UPDATE on PostgreSQL; SQLite has one writer at a time):

- slots are spaced evenly, `60 / per_minute` seconds apart, so a burst leaves
  at a steady pace instead of tripping the limit and backing off;
- reserved slots are kept an hour in `rate_events`, and a slot is pushed out
  when the hour before it already holds `per_hour` of them;
- a 429 sets `paused_until`, which every replica's next reservation honours;
- status reads (polls) take only spare slots (`reserve_spare`): a slot that
  is free at once, within their own share of the minute and of the hour, so
  reading the status of many tasks never pushes a create back.

The figures are a hair under Twill's (98 % of the minute's, two fewer than
the hour's), because our clock and Twill's count requests at slightly
different moments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bridge.models import RateEvent, RateLimit, utcnow
from bridge.store import insert_ignoring_conflict

SAFETY = 0.98
HOURLY_SPARE = 2
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Slot:
    """A reserved moment to make one call."""

    at: datetime
    wait: float  # seconds from the reservation to `at`


class RateBudget:
    """Reserves call slots for one rate-limited key (e.g. one Twill API key)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        per_minute: int,
        per_hour: int,
        key: str = "twill",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.key = key
        self.clock = clock
        self.interval = MINUTE / (per_minute * SAFETY)
        self.per_hour = max(1, per_hour - HOURLY_SPARE)

    async def reserve(self) -> Slot:
        """Take the next free slot; the caller waits until `slot.at`, then calls."""
        now = self.clock()
        async with self.sessions() as session:
            row = await self._lock_row(session, now)
            start = max(now, row.next_slot_at, row.paused_until or now)
            start = await self._within_hourly(session, start)
            await session.execute(
                update(RateLimit)
                .where(RateLimit.key == self.key)
                .values(next_slot_at=start + self.interval, updated_at=now)
            )
            session.add(RateEvent(key=self.key, at=start, kind="call"))
            await self._forget_old(session, now)
            await session.commit()
        return Slot(start, max(0.0, (start - now).total_seconds()))

    async def reserve_spare(self, share: float) -> bool:
        """Take a slot for a status read if one is free now; False if none is.

        A read may go only when no call is waiting for the slot (the next one is
        free now), when reads have used less than `share` of the last minute's
        and the last hour's calls, and when the hour keeps room for calls.
        The worker also checks that no create is due before asking.
        """
        now = self.clock()
        async with self.sessions() as session:
            row = await self._lock_row(session, now)
            if row.next_slot_at > now or (row.paused_until and row.paused_until > now):
                await session.rollback()
                return False
            hourly = dict(
                (
                    await session.execute(
                        select(RateEvent.kind, func.count())
                        .where(RateEvent.key == self.key, RateEvent.at > now - HOUR)
                        .group_by(RateEvent.kind)
                    )
                ).all()
            )
            last_read = await session.scalar(
                select(func.max(RateEvent.at)).where(
                    RateEvent.key == self.key,
                    RateEvent.kind == "poll",
                    RateEvent.at > now - MINUTE,
                )
            )
            # Reads are spaced `interval / share` apart: their share of every
            # minute, however short the window Twill counts in.
            spaced = last_read is None or now - last_read >= self.interval / share
            if (
                not spaced
                or hourly.get("poll", 0) >= max(1, int(self.per_hour * share))
                or sum(hourly.values()) >= self.per_hour
            ):
                await session.rollback()
                return False
            await session.execute(
                update(RateLimit)
                .where(RateLimit.key == self.key)
                .values(next_slot_at=now + self.interval, updated_at=now)
            )
            session.add(RateEvent(key=self.key, at=now, kind="poll"))
            await self._forget_old(session, now)
            await session.commit()
        return True

    async def _forget_old(self, session: AsyncSession, now: datetime) -> None:
        await session.execute(
            delete(RateEvent).where(
                RateEvent.key == self.key, RateEvent.at < now - HOUR
            )
        )

    async def pause(self, seconds: float) -> None:
        """Stop every replica's calls for `seconds` (after a 429's Retry-After)."""
        now = self.clock()
        until = now + timedelta(seconds=seconds)
        async with self.sessions() as session:
            row = await self._lock_row(session, now)
            if row.paused_until is None or row.paused_until < until:
                await session.execute(
                    update(RateLimit)
                    .where(RateLimit.key == self.key)
                    .values(paused_until=until, updated_at=now)
                )
            await session.commit()

    async def paused_for(self) -> float:
        """Seconds left of a pause, 0 when calls may go out."""
        now = self.clock()
        async with self.sessions() as session:
            until = await session.scalar(
                select(RateLimit.paused_until).where(RateLimit.key == self.key)
            )
        return max(0.0, (until - now).total_seconds()) if until else 0.0

    async def _lock_row(self, session: AsyncSession, now: datetime) -> RateLimit:
        await insert_ignoring_conflict(
            session,
            RateLimit,
            "key",
            {"key": self.key, "next_slot_at": now, "updated_at": now},
        )
        # On SQLite the insert above already holds the write lock; on PostgreSQL
        # the row lock serialises replicas until commit.
        query = select(RateLimit).where(RateLimit.key == self.key)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()
        row = (
            await session.scalars(query.execution_options(populate_existing=True))
        ).one()
        return row

    async def _within_hourly(self, session: AsyncSession, start: datetime) -> datetime:
        """`start`, or later if the hour before it is already full."""
        in_window = await session.scalar(
            select(func.count())
            .select_from(RateEvent)
            .where(RateEvent.key == self.key, RateEvent.at > start - HOUR)
        )
        if (in_window or 0) < self.per_hour:
            return start
        # The slot frees when enough of the oldest calls leave the window.
        excess = int(in_window or 0) - self.per_hour
        oldest = await session.scalar(
            select(RateEvent.at)
            .where(RateEvent.key == self.key, RateEvent.at > start - HOUR)
            .order_by(RateEvent.at)
            .offset(excess)
            .limit(1)
        )
        return max(start, oldest + HOUR) if oldest else start
