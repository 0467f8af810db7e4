"""The dashboard's reads: filtered, keyset-paginated lists, counts and the chart's data.

Lists are ordered newest first on (created_at, id) and paged by a cursor that
names the last row seen, never by OFFSET: a deep page costs what the first
does, and rows arriving meanwhile do not shift the pages. The indexes that
serve these queries are declared on the models (see bridge/models.py).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from bridge.models import (
    Delivery,
    Dispatch,
    DispatchEvent,
    RefusedSignature,
    UTCDateTime,
    utcnow,
)
from bridge.settings import INTENTS
from bridge.triggers import fits

STATUSES = (
    "queued",
    "sending",
    "created",
    "reported",
    "failed",
    "uncertain",
    "not_sent",
    "denied",
    "skipped",
    "dismissed",
)
TRIGGER_KINDS = ("label", "comment")
OUTCOMES = ("queued", "duplicate", "ignored", "denied", "replied", "not_sent")
PAGE_SIZE = 50
COUNT_CAP = 10_000
MAX_PAGE_SIZE = 200


class BadQuery(Exception):
    """A filter or cursor the dashboard cannot use; the message says which."""


@dataclass(frozen=True)
class DispatchFilter:
    """What the dispatch list is narrowed to; None means no narrowing."""

    repository: str | None = None
    status: str | None = None
    intent: str | None = None
    trigger_kind: str | None = None
    requester: str | None = None
    since: date | None = None
    until: date | None = None
    search: str | None = None

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters, for links that keep it."""
        params = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                params[item.name] = (
                    value.isoformat() if isinstance(value, date) else value
                )
        return params


def _text(params: Mapping[str, str], name: str, limit: int) -> str | None:
    """A text parameter, trimmed and cut to `limit`; None when empty."""
    value = (params.get(name) or "").strip()[:limit]
    if "\x00" in value:
        # PostgreSQL text cannot hold NUL: asked, it fails rather than finds nothing.
        raise BadQuery(f"{name} must not contain a NUL character")
    return value or None


def parse_filter(params: Mapping[str, str]) -> DispatchFilter:
    """A DispatchFilter from query parameters; BadQuery for a value out of range."""

    def text(name: str, limit: int = 200) -> str | None:
        return _text(params, name, limit)

    def one_of(name: str, allowed: Sequence[str]) -> str | None:
        value = text(name)
        if value is not None and value not in allowed:
            raise BadQuery(f"{name} must be one of {', '.join(allowed)}")
        return value

    def day(name: str) -> date | None:
        value = text(name)
        if value is None:
            return None
        try:
            found = date.fromisoformat(value)
        except ValueError as error:
            raise BadQuery(f"{name} must be a date, YYYY-MM-DD") from error
        if found == date.max:
            # `until` reaches the end of its day: the next day would be past year 9999.
            raise BadQuery(f"{name} must be a date before {date.max.isoformat()}")
        return found

    return DispatchFilter(
        repository=text("repository"),
        status=one_of("status", STATUSES),
        intent=one_of("intent", INTENTS),
        trigger_kind=one_of("trigger_kind", TRIGGER_KINDS),
        requester=text("requester", 100),
        since=day("since"),
        until=day("until"),
        search=text("search"),
    )


def page_size(params: Mapping[str, str]) -> int:
    """The `limit` parameter, between 1 and MAX_PAGE_SIZE; PAGE_SIZE when absent."""
    raw = params.get("limit")
    if not raw:
        return PAGE_SIZE
    # isdigit() alone takes "²", which int() refuses; int() also refuses more
    # than 4,300 digits.
    digits = raw.isascii() and raw.isdigit() and len(raw) <= 6
    if not digits or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise BadQuery(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


# Cursors: the last row's (created_at, id), opaque to the client.


def encode_cursor(at: datetime, row_id: int) -> str:
    """An opaque cursor naming one row's place in the newest-first order."""
    raw = f"{at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The (created_at, id) a cursor names; BadQuery when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, _, row_id = base64.urlsafe_b64decode(padded).decode().partition("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("naive")
        number = int(row_id)
        if not fits(number, 63):  # beyond the id columns: not one of ours
            raise ValueError("id")
        # Year 1 at +05:00 is before year 1 in UTC: OverflowError.
        return moment.astimezone(UTC), number
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as error:
        raise BadQuery("the cursor is not valid") from error


def _before(column: Any, id_column: Any, cursor: str) -> Any:
    at, row_id = decode_cursor(cursor)
    # A row-value comparison lets both databases walk the (…, created_at, id)
    # index from the cursor on; the typed bind keeps SQLite's UTC storage.
    return tuple_(column, id_column) < tuple_(
        bindparam(None, at, type_=UTCDateTime), bindparam(None, row_id)
    )


@dataclass(frozen=True)
class Page:
    """One page of rows and the cursor of the next, None on the last page."""

    rows: Sequence[Any]
    next_cursor: str | None


def _filtered(query: Select[Any], where: DispatchFilter) -> Select[Any]:
    d = Dispatch
    conditions = [
        column == value
        for column, value in (
            (d.repository, where.repository),
            (d.status, where.status),
            (d.intent, where.intent),
            (d.trigger_kind, where.trigger_kind),
            (d.requester, where.requester),
        )
        if value is not None
    ]
    if where.since is not None:
        conditions.append(d.created_at >= _midnight(where.since))
    if where.until is not None:
        conditions.append(d.created_at < _midnight(where.until + timedelta(days=1)))
    if where.search:
        conditions.append(_search(where.search))
    return query.where(*conditions) if conditions else query


def _search(term: str) -> Any:
    # A number (or #number) means the issue; anything else is part of a title.
    # Title search reads every row the other filters leave (see docs/benchmarks.md).
    number = term.removeprefix("#")
    if number.isdigit() and len(number) < 10:
        return Dispatch.issue_number == int(number)
    return func.lower(Dispatch.issue_title).contains(term.lower(), autoescape=True)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


async def dispatch_page(
    session: AsyncSession,
    where: DispatchFilter,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> Page:
    """Dispatches matching `where`, newest first, after `cursor`."""
    query = _filtered(select(Dispatch), where)
    if cursor:
        query = query.where(_before(Dispatch.created_at, Dispatch.id, cursor))
    query = query.order_by(Dispatch.created_at.desc(), Dispatch.id.desc())
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return Page(rows, encode_cursor(last.created_at, last.id) if last else None)


def counts_shown(where: DispatchFilter) -> bool:
    """False under a title search, which would read the whole table once per status."""
    term = (where.search or "").removeprefix("#")
    return not where.search or term.isdigit()


async def status_counts(session: AsyncSession, where: DispatchFilter) -> dict[str, int]:
    """Dispatches per status under every filter but the status one.

    Each status is counted up to COUNT_CAP + 1 rows, so that the counts cost
    a bounded walk of the (status, created_at, id) index instead of a scan of
    the table: a figure over COUNT_CAP means "more than COUNT_CAP".
    """
    others = replace(where, status=None)
    columns = []
    for status in STATUSES:
        matching = _filtered(
            select(literal(1)).where(Dispatch.status == status), others
        )
        capped = matching.limit(COUNT_CAP + 1).subquery()
        columns.append(
            select(func.count()).select_from(capped).scalar_subquery().label(status)
        )
    counted = (await session.execute(select(*columns))).one()
    return dict(zip(STATUSES, counted, strict=True))


@dataclass(frozen=True)
class Detail:
    """One dispatch with its timeline and the deliveries that named it."""

    dispatch: Dispatch
    events: Sequence[DispatchEvent]
    deliveries: Sequence[Delivery]


async def dispatch_detail(session: AsyncSession, dispatch_id: int) -> Detail | None:
    """The dispatch, its timeline oldest first, and its deliveries; None if missing."""
    if not fits(dispatch_id, 31):  # beyond the id column: no such row
        return None
    dispatch = await session.get(Dispatch, dispatch_id)
    if dispatch is None:
        return None
    events = await session.scalars(
        select(DispatchEvent)
        .where(DispatchEvent.dispatch_id == dispatch_id)
        .order_by(DispatchEvent.at, DispatchEvent.id)
    )
    deliveries = await session.scalars(
        select(Delivery)
        .where(
            or_(
                Delivery.delivery_id == dispatch.delivery_id,
                Delivery.dispatch_id == dispatch_id,
            )
        )
        .order_by(Delivery.received_at, Delivery.id)
    )
    return Detail(dispatch, list(events.all()), list(deliveries.all()))


@dataclass(frozen=True)
class DeliveryFilter:
    """What the delivery list is narrowed to."""

    outcome: str | None = None
    event: str | None = None
    repository: str | None = None

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters, for links that keep it."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


def parse_delivery_filter(params: Mapping[str, str]) -> DeliveryFilter:
    """A DeliveryFilter from query parameters; BadQuery for an unknown outcome."""
    outcome = (params.get("outcome") or "").strip() or None
    if outcome is not None and outcome not in OUTCOMES:
        raise BadQuery(f"outcome must be one of {', '.join(OUTCOMES)}")
    return DeliveryFilter(
        outcome, _text(params, "event", 64), _text(params, "repository", 200)
    )


def _delivery_conditions(where: DeliveryFilter) -> list[Any]:
    pairs = (
        (Delivery.outcome, where.outcome),
        (Delivery.event, where.event),
        (Delivery.repository, where.repository),
    )
    return [column == value for column, value in pairs if value is not None]


async def delivery_page(
    session: AsyncSession,
    where: DeliveryFilter,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
) -> Page:
    """Deliveries matching `where`, newest first, after `cursor`."""
    query = select(Delivery).where(*_delivery_conditions(where))
    if cursor:
        query = query.where(_before(Delivery.received_at, Delivery.id, cursor))
    query = query.order_by(Delivery.received_at.desc(), Delivery.id.desc())
    rows = list((await session.scalars(query.limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    return Page(rows, encode_cursor(last.received_at, last.id) if last else None)


async def outcome_counts(session: AsyncSession) -> dict[str, int]:
    """Deliveries per outcome."""
    query = select(Delivery.outcome, func.count()).group_by(Delivery.outcome)
    return dict((await session.execute(query)).all())


async def refused_signatures(session: AsyncSession) -> dict[str, int]:
    """Deliveries refused for their signature: in all, and in the last 24 hours."""
    since = utcnow() - timedelta(hours=24)
    total = await session.scalar(
        select(func.coalesce(func.sum(RefusedSignature.count), 0))
    )
    recent = await session.scalar(
        select(func.coalesce(func.sum(RefusedSignature.count), 0)).where(
            RefusedSignature.hour >= since.replace(minute=0, second=0, microsecond=0)
        )
    )
    return {"total": int(total or 0), "last_24_hours": int(recent or 0)}


@dataclass(frozen=True)
class DailyCounts:
    """Dispatches per day and intent over a run of days, oldest day first."""

    days: Sequence[date]
    by_intent: Mapping[str, Sequence[int]]


async def dispatches_per_day(
    session: AsyncSession, days: int = 14, today: date | None = None
) -> DailyCounts:
    """How many dispatches each intent had on each of the last `days` days (UTC)."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    day = func.date(Dispatch.created_at)
    rows = await session.execute(
        select(day, Dispatch.intent, func.count())
        .where(Dispatch.created_at >= _midnight(first))
        .group_by(day, Dispatch.intent)
    )
    run = [first + timedelta(days=n) for n in range(days)]
    index = {d.isoformat(): n for n, d in enumerate(run)}
    by_intent: dict[str, list[int]] = {intent: [0] * days for intent in INTENTS}
    for when, intent, count in rows:
        # SQLite answers date() with text, PostgreSQL with a date.
        position = index.get(str(when)[:10])
        if position is not None:
            by_intent.setdefault(intent, [0] * days)[position] += count
    return DailyCounts(run, by_intent)


async def recent_failures(session: AsyncSession, hours: int = 24) -> Sequence[Dispatch]:
    """Dispatches that ended failed or uncertain in the last `hours` hours, newest first."""
    since = utcnow() - timedelta(hours=hours)
    query = (
        select(Dispatch)
        .where(
            Dispatch.status.in_(("failed", "uncertain")),
            Dispatch.updated_at >= since,
        )
        .order_by(Dispatch.updated_at.desc(), Dispatch.id.desc())
        .limit(100)
    )
    return list((await session.scalars(query)).all())
