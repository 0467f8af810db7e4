"""Asking GitHub to send again the deliveries that never reached the bridge.

GitHub does not retry a failed delivery on its own (docs.github.com, "Handling
failed webhook deliveries"); while the bridge is down or unreachable, every
label and command is lost unless someone asks for it again. GitHub keeps each
attempt in the App's delivery list (`GET /app/hook/deliveries`, newest first,
paged by cursor); a redelivery is a new attempt with the same `guid`, which
is the `X-GitHub-Delivery` we record. So a pass lists the attempts of a time
window, groups them by guid, and asks for another attempt
(`POST /app/hook/deliveries/{id}/attempts`) of each guid that has no 2xx
attempt and that our deliveries table does not hold. Our unique delivery id
and trigger key make a redelivery that does arrive twice harmless.

`plan` is the pure part; `redeliver_failed` does the calls; `ScheduledJobs`
gives the periodic pass to one replica at a time through a lease row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bridge import log
from bridge.github import GitHubClient, GitHubError, GitHubRateLimited
from bridge.models import Delivery, Redelivery, ScheduledJob, utcnow
from bridge.store import insert_ignoring_conflict

JOB = "redeliver"
# A guid is asked for at most this many times, and not again within MIN_GAP
# (GitHub's new attempt may still be on its way, or show in the list late).
MAX_ATTEMPTS = 3
MIN_GAP = timedelta(minutes=10)
# A pass reads at most this many pages of 100 attempts.
MAX_PAGES = 50
# The periodic pass looks back to its previous run, plus this much.
OVERLAP = timedelta(minutes=15)


@dataclass(frozen=True)
class HookDelivery:
    """One attempt of one delivery, as GitHub's delivery list shows it."""

    id: int
    guid: str
    delivered_at: datetime
    status_code: int | None
    event: str
    action: str | None
    redelivery: bool

    @property
    def succeeded(self) -> bool:
        """True when our endpoint answered 2xx to this attempt."""
        return self.status_code is not None and 200 <= self.status_code < 300

    @classmethod
    def parse(cls, item: object) -> HookDelivery | None:
        """An item of the list, or None when it lacks what a redelivery needs."""
        if not isinstance(item, dict):
            return None
        hook_id, guid, at = item.get("id"), item.get("guid"), item.get("delivered_at")
        if not isinstance(hook_id, int) or not isinstance(guid, str) or not guid:
            return None
        try:
            delivered = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
        except ValueError:
            return None
        if delivered.tzinfo is None:
            return None
        code = item.get("status_code")
        action = item.get("action")
        return cls(
            id=hook_id,
            guid=guid[:100],
            delivered_at=delivered,
            status_code=code if isinstance(code, int) else None,
            event=str(item.get("event") or "")[:64],
            action=action[:64] if isinstance(action, str) else None,
            redelivery=bool(item.get("redelivery")),
        )


@dataclass(frozen=True)
class Asked:
    """What we asked GitHub about one guid before."""

    attempts: int
    last_requested_at: datetime


@dataclass
class Plan:
    """The guids to ask for again, and why each other one was left alone."""

    redeliver: list[HookDelivery] = field(default_factory=list)
    succeeded: int = 0
    received: int = 0
    asked_before: int = 0


def plan(
    attempts: Iterable[HookDelivery],
    received: set[str],
    asked: dict[str, Asked],
    now: datetime,
) -> Plan:
    """Which failed deliveries to redeliver: one attempt (the newest) per guid.

    A guid is left alone when one of its attempts succeeded, when our
    deliveries table holds it (we recorded it, and only GitHub's view of the
    answer failed), or when we asked for it MAX_ATTEMPTS times or within MIN_GAP.
    """
    by_guid: dict[str, list[HookDelivery]] = {}
    for attempt in attempts:
        by_guid.setdefault(attempt.guid, []).append(attempt)
    result = Plan()
    for guid, group in by_guid.items():
        before = asked.get(guid)
        if any(attempt.succeeded for attempt in group):
            result.succeeded += 1
        elif guid in received:
            result.received += 1
        elif before is not None and (
            before.attempts >= MAX_ATTEMPTS or now - before.last_requested_at < MIN_GAP
        ):
            result.asked_before += 1
        else:
            result.redeliver.append(max(group, key=lambda a: a.delivered_at))
    result.redeliver.sort(key=lambda a: a.delivered_at)
    return result


@dataclass
class Summary:
    """What one pass saw and did."""

    since: datetime
    listed: int = 0
    guids: int = 0
    truncated: bool = False
    plan: Plan = field(default_factory=Plan)
    redelivered: list[HookDelivery] = field(default_factory=list)
    refused: list[tuple[HookDelivery, str]] = field(default_factory=list)
    stopped: str | None = None  # why the pass stopped early

    def line(self) -> str:
        """One sentence for a log line or the CLI."""
        text = (
            f"{self.listed} attempts of {self.guids} deliveries since "
            f"{self.since:%Y-%m-%d %H:%M} UTC; redelivered {len(self.redelivered)}; "
            f"left alone: {self.plan.succeeded} succeeded, {self.plan.received} "
            f"already received, {self.plan.asked_before} asked for before"
        )
        if self.refused:
            text += f"; GitHub refused {len(self.refused)}"
        if self.truncated:
            text += f"; only the newest {MAX_PAGES * 100} attempts were read"
        if self.stopped:
            text += f"; stopped early: {self.stopped}"
        return text


async def redeliver_failed(
    sessions: async_sessionmaker[AsyncSession],
    github: GitHubClient,
    since: datetime,
    pace: Callable[[], Awaitable[None]] | None = None,
    dry_run: bool = False,
) -> Summary:
    """One pass over the attempts since `since`; records what it asked for.

    Raises GitHubError when the list cannot be read; a refused redelivery is
    recorded and the pass goes on, a rate limit ends it.
    """
    summary = Summary(since=since)
    attempts = await _attempts_since(github, since, summary)
    summary.listed = len(attempts)
    guids = sorted({a.guid for a in attempts})
    summary.guids = len(guids)
    received, asked = await _what_we_know(sessions, guids)
    summary.plan = plan(attempts, received, asked, utcnow())
    for attempt in summary.plan.redeliver:
        if dry_run:
            summary.redelivered.append(attempt)
            continue
        if pace is not None:
            await pace()
        try:
            await github.redeliver(attempt.id)
        except GitHubRateLimited as error:
            summary.stopped = error.message
            break
        except GitHubError as error:
            summary.refused.append((attempt, error.message))
            await _record(sessions, attempt, "failed", error.message)
            continue
        summary.redelivered.append(attempt)
        await _record(sessions, attempt, "requested", None)
        log.info(
            "redelivery requested",
            delivery_id=attempt.guid,
            event=f"{attempt.event}.{attempt.action}"
            if attempt.action
            else attempt.event,
            status=attempt.status_code,
        )
    return summary


async def _attempts_since(
    github: GitHubClient, since: datetime, summary: Summary
) -> list[HookDelivery]:
    found: list[HookDelivery] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        items, cursor = await github.hook_deliveries(cursor)
        page = [a for a in map(HookDelivery.parse, items) if a is not None]
        found.extend(a for a in page if a.delivered_at >= since)
        # Newest first: once a page reaches past `since`, the rest is older.
        if not cursor or any(a.delivered_at < since for a in page):
            return found
    summary.truncated = True
    return found


async def _what_we_know(
    sessions: async_sessionmaker[AsyncSession], guids: Sequence[str]
) -> tuple[set[str], dict[str, Asked]]:
    received: set[str] = set()
    asked: dict[str, Asked] = {}
    async with sessions() as session:
        for start in range(0, len(guids), 500):
            chunk = guids[start : start + 500]
            received.update(
                (
                    await session.scalars(
                        select(Delivery.delivery_id).where(
                            Delivery.delivery_id.in_(chunk)
                        )
                    )
                ).all()
            )
            rows = await session.execute(
                select(
                    Redelivery.guid, Redelivery.attempts, Redelivery.last_requested_at
                ).where(Redelivery.guid.in_(chunk))
            )
            for guid, count, last in rows:
                asked[guid] = Asked(count, last)
    return received, asked


async def _record(
    sessions: async_sessionmaker[AsyncSession],
    attempt: HookDelivery,
    outcome: str,
    error: str | None,
) -> None:
    now = utcnow()
    values: dict[str, Any] = {
        "hook_delivery_id": attempt.id,
        "event": attempt.event,
        "action": attempt.action,
        "status_code": attempt.status_code,
        "outcome": outcome,
        "last_error": error,
        "last_requested_at": now,
    }
    async with sessions() as session:
        inserted = await insert_ignoring_conflict(
            session,
            Redelivery,
            "guid",
            {"guid": attempt.guid, "attempts": 1, "first_requested_at": now, **values},
        )
        if inserted is None:
            await session.execute(
                update(Redelivery)
                .where(Redelivery.guid == attempt.guid)
                .values(attempts=Redelivery.attempts + 1, **values)
            )
        await session.commit()


# One replica at a time.


async def claim_job(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    owner: str,
    lease: timedelta,
    every: timedelta,
) -> tuple[bool, datetime | None]:
    """Take the job's lease if it is free and the last run is `every` old.

    Returns whether it was taken, and when the job last ran (before now).
    """
    now = utcnow()
    async with sessions() as session:
        await insert_ignoring_conflict(session, ScheduledJob, "name", {"name": name})
        last = await session.scalar(
            select(ScheduledJob.last_run_at).where(ScheduledJob.name == name)
        )
        taken = await session.execute(
            update(ScheduledJob)
            .where(
                ScheduledJob.name == name,
                or_(
                    ScheduledJob.lease_expires_at.is_(None),
                    ScheduledJob.lease_expires_at < now,
                ),
                or_(
                    ScheduledJob.last_run_at.is_(None),
                    ScheduledJob.last_run_at <= now - every,
                ),
            )
            .values(lease_owner=owner, lease_expires_at=now + lease)
        )
        await session.commit()
    return taken.rowcount == 1, last  # type: ignore[attr-defined]


async def finish_job(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    owner: str,
    result: str,
) -> None:
    """Give the lease back and note the run."""
    async with sessions() as session:
        await session.execute(
            update(ScheduledJob)
            .where(ScheduledJob.name == name, ScheduledJob.lease_owner == owner)
            .values(
                lease_owner=None,
                lease_expires_at=None,
                last_run_at=utcnow(),
                last_result=result[:2000],
            )
        )
        await session.commit()


def lookback_since(
    now: datetime, last_run: datetime | None, window: timedelta
) -> datetime:
    """Where a periodic pass starts: its last run (less OVERLAP), at most `window` back."""
    if last_run is None:
        return now - window
    return max(now - window, last_run - OVERLAP)


class RedeliverJob:
    """The periodic pass, run by every replica's loop and done by one at a time."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        github: GitHubClient,
        owner: str,
        every_seconds: float,
        window_seconds: float,
        pace: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.github = github
        self.owner = owner
        self.every = timedelta(seconds=every_seconds)
        self.window = timedelta(seconds=window_seconds)
        self.pace = pace
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Return from `run` at the next wait."""
        self._stopping.set()

    async def run_once(self) -> Summary | None:
        """One pass if this replica gets the lease; None when it does not."""
        # The lease outlives a slow pass (50 pages, a second between writes).
        lease = max(self.every, timedelta(minutes=10))
        taken, last = await claim_job(self.sessions, JOB, self.owner, lease, self.every)
        if not taken:
            return None
        result = "failed"
        try:
            since = lookback_since(utcnow(), last, self.window)
            summary = await redeliver_failed(
                self.sessions, self.github, since, self.pace
            )
            result = summary.line()
            log.info(
                "redelivery pass",
                redelivered=len(summary.redelivered),
                listed=summary.listed,
                summary=result,
            )
            return summary
        finally:
            await finish_job(self.sessions, JOB, self.owner, result)

    async def run(self) -> None:
        """Pass, wait, pass again, until stopped; a failing pass is logged."""
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except GitHubError as error:
                log.warning(
                    "redelivery pass failed",
                    error=type(error).__name__,
                    reason=str(error),
                )
            except Exception as error:  # a database blip must not end the loop
                log.error(
                    "redelivery pass failed", error=type(error).__name__, exc_info=True
                )
            try:
                await asyncio.wait_for(
                    self._stopping.wait(), self.every.total_seconds()
                )
            except TimeoutError:
                pass
