"""Recording deliveries and queueing their dispatches, in one transaction.

Duplicates are refused by the unique constraints (INSERT ... ON CONFLICT DO
NOTHING), never by a check followed by an insert, so that two replicas racing
on the same delivery or trigger cannot both win.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bridge.models import (
    Base,
    BridgeFlag,
    BridgeSecret,
    Delivery,
    Dispatch,
    DispatchEvent,
    RefusedSignature,
    Reply,
    utcnow,
)


@dataclass(frozen=True)
class DeliveryMeta:
    """What the headers and payload say about a delivery, for its row."""

    delivery_id: str
    event: str
    action: str | None
    installation_id: int | None
    repository: str | None
    issue_number: int | None
    sender: str | None
    body_bytes: int


@dataclass(frozen=True)
class Recorded:
    """What recording a delivery did: its outcome, reason and dispatch, if any."""

    outcome: str
    reason: str
    dispatch_id: int | None = None


def _insert(session: AsyncSession, model: type[Base]) -> Any:
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(model)


def bounded_key(key: str, limit: int = 300) -> str:
    """`key`, or a prefix and a hash of it when it is longer than its column."""
    if len(key) <= limit:
        return key
    return f"{key[:200]}#{hashlib.sha256(key.encode()).hexdigest()}"


async def insert_ignoring_conflict(
    session: AsyncSession, model: type[Base], key: str, values: dict[str, Any]
) -> int | None:
    """Insert a row unless one with the same unique `key` exists.

    Returns the new row's primary key, or None when the row existed already.
    """
    primary = next(iter(model.__table__.primary_key.columns))  # type: ignore[attr-defined]
    statement = (
        _insert(session, model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(primary)
    )
    return (await session.execute(statement)).scalar_one_or_none()


@dataclass(frozen=True)
class Pending:
    """One delivery to record, with the outcome it asks for and its work, if any.

    `dispatch` holds a Dispatch row's values (with its trigger_key), `reply`
    a Reply row's (with its key).
    """

    meta: DeliveryMeta
    outcome: str
    reason: str
    dispatch: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None


async def record_delivery(
    session: AsyncSession,
    meta: DeliveryMeta,
    outcome: str,
    reason: str,
    dispatch: dict[str, Any] | None = None,
    reply: dict[str, Any] | None = None,
) -> Recorded:
    """Record one delivery and queue what it asks for; commits."""
    connection = await session.connection()
    [result] = await record_deliveries(
        connection, [Pending(meta, outcome, reason, dispatch, reply)]
    )
    await session.commit()
    return result


async def record_deliveries(
    connection: AsyncConnection, items: Sequence[Pending]
) -> list[Recorded]:
    """Record deliveries and queue what they ask for, in the caller's transaction.

    Each item comes out as it would alone, in the order given: a delivery id
    seen before (in the database, or earlier in `items`) is a repeat and
    queues nothing; a trigger or reply key seen before is a duplicate. A few
    statements serve the whole batch, and each takes its rows in key order,
    so that two replicas writing batches at once take their locks in one
    order and cannot deadlock each other.
    """
    now = utcnow()
    results: list[Recorded] = [Recorded(item.outcome, item.reason) for item in items]
    first = _first_of_each(items, lambda item: item.meta.delivery_id)
    rows = [_delivery_row(items[index], now) for index in first.values()]
    inserted = await _insert_new(connection, Delivery, "delivery_id", rows)
    repeats: Counter[str] = Counter()
    new: list[int] = []
    for index, item in enumerate(items):
        delivery_id = item.meta.delivery_id
        if delivery_id in inserted and first[delivery_id] == index:
            new.append(index)
        else:
            repeats[delivery_id] += 1
            results[index] = Recorded(
                "duplicate", "this delivery id was received before"
            )
    if repeats:
        await connection.execute(
            update(Delivery.__table__)
            .where(Delivery.delivery_id == bindparam("b_id"))
            .values(
                repeats=Delivery.repeats + bindparam("b_count"), last_repeat_at=now
            ),
            [{"b_id": key, "b_count": count} for key, count in sorted(repeats.items())],
        )

    await _queue_dispatches(connection, items, new, results, now)
    await _queue_replies(connection, items, new, results, now)
    changed = [
        {
            "b_pk": inserted[items[index].meta.delivery_id],
            "b_outcome": results[index].outcome,
            "b_reason": results[index].reason,
            "b_dispatch": results[index].dispatch_id,
        }
        for index in new
        if results[index] != Recorded(items[index].outcome, items[index].reason)
    ]
    if changed:
        await connection.execute(
            update(Delivery.__table__)
            .where(Delivery.id == bindparam("b_pk"))
            .values(
                outcome=bindparam("b_outcome"),
                reason=bindparam("b_reason"),
                dispatch_id=bindparam("b_dispatch"),
            ),
            changed,
        )
    return results


def _first_of_each(
    items: Sequence[Pending], key: Callable[[Pending], str], among: Sequence[int] = ()
) -> dict[str, int]:
    """Each key's first item (by index), sorted by key."""
    first: dict[str, int] = {}
    for index in among or range(len(items)):
        first.setdefault(key(items[index]), index)
    return dict(sorted(first.items()))


def _delivery_row(item: Pending, now: datetime) -> dict[str, Any]:
    meta = item.meta
    return {
        "delivery_id": meta.delivery_id,
        "event": meta.event,
        "action": meta.action,
        "installation_id": meta.installation_id,
        "repository": meta.repository,
        "issue_number": meta.issue_number,
        "sender": meta.sender,
        "outcome": item.outcome,
        "reason": item.reason,
        "body_bytes": meta.body_bytes,
        "received_at": now,
        "repeats": 0,
    }


async def _insert_new(
    connection: AsyncConnection,
    model: type[Base],
    key: str,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """Insert the rows whose unique `key` is new; {key: primary key} of those inserted."""
    if not rows:
        return {}
    table = model.__table__
    primary = next(iter(table.primary_key.columns))  # type: ignore[attr-defined]
    module = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        module.insert(table)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(table.c[key], primary)  # type: ignore[attr-defined]
    )
    inserted: dict[str, Any] = {}
    # One statement per set of columns (callers give one set; executemany needs it).
    shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(frozenset(row), []).append(row)
    for same in shapes.values():
        for found_key, found_pk in await connection.execute(statement, same):
            inserted[found_key] = found_pk
    return inserted


async def _queue_dispatches(
    connection: AsyncConnection,
    items: Sequence[Pending],
    new: list[int],
    results: list[Recorded],
    now: datetime,
) -> None:
    wanted = [index for index in new if items[index].dispatch is not None]
    if not wanted:
        return

    def trigger_key(item: Pending) -> str:
        return str(item.dispatch["trigger_key"])  # type: ignore[index]

    first = _first_of_each(items, trigger_key, wanted)
    rows = [
        {
            "attempts": 0,
            "report_pending": False,
            "report_attempts": 0,
            "files": [],
            "created_at": now,
            "updated_at": now,
            "next_attempt_at": now,
            **items[index].dispatch,  # type: ignore[dict-item]
        }
        for index in first.values()
    ]
    ids = await _insert_new(connection, Dispatch, "trigger_key", rows)
    missing = [key for key in first if key not in ids]
    existing: dict[str, int] = {}
    if missing:
        found = await connection.execute(
            select(Dispatch.trigger_key, Dispatch.id).where(
                Dispatch.trigger_key.in_(missing)
            )
        )
        existing = {key: dispatch_id for key, dispatch_id in found}
    events = []
    for index in wanted:
        item = items[index]
        key = trigger_key(item)
        if key in ids and first[key] == index:
            status = item.dispatch.get("status", "queued")  # type: ignore[union-attr]
            events.append(
                {
                    "dispatch_id": ids[key],
                    "at": now,
                    "status": status,
                    "reason": item.reason,
                    "actor": None,
                }
            )
            results[index] = Recorded(status, item.reason, ids[key])
        else:
            dispatch_id = ids.get(key, existing.get(key))
            results[index] = Recorded(
                "duplicate",
                f"this trigger was already dispatched (dispatch {dispatch_id})",
                dispatch_id,
            )
    if events:
        await connection.execute(insert(DispatchEvent.__table__), events)


async def _queue_replies(
    connection: AsyncConnection,
    items: Sequence[Pending],
    new: list[int],
    results: list[Recorded],
    now: datetime,
) -> None:
    wanted = [
        index
        for index in new
        if items[index].dispatch is None and items[index].reply is not None
    ]
    if not wanted:
        return

    def reply_key(item: Pending) -> str:
        return str(item.reply["key"])  # type: ignore[index]

    first = _first_of_each(items, reply_key, wanted)
    rows = [
        {
            **items[index].reply,  # type: ignore[dict-item]
            "delivery_id": items[index].meta.delivery_id,
            "created_at": now,
            "updated_at": now,
            "next_attempt_at": now,
        }
        for index in first.values()
    ]
    ids = await _insert_new(connection, Reply, "key", rows)
    for index in wanted:
        key = reply_key(items[index])
        if not (key in ids and first[key] == index):
            results[index] = Recorded("duplicate", "this was answered already")


async def add_event(
    session: AsyncSession,
    dispatch_id: int,
    status: str,
    reason: str,
    actor: str | None = None,
) -> None:
    """Append one entry to a dispatch's timeline (the caller commits)."""
    session.add(
        DispatchEvent(
            dispatch_id=dispatch_id,
            at=utcnow(),
            status=status,
            reason=reason,
            actor=actor,
        )
    )


async def count_refused_signature(session: AsyncSession) -> None:
    """Add one to this hour's count of refused signatures; commits."""
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    statement = (
        _insert(session, RefusedSignature)
        .values(hour=hour, count=1)
        .on_conflict_do_update(
            index_elements=["hour"], set_={"count": RefusedSignature.count + 1}
        )
    )
    await session.execute(statement)
    await session.commit()


async def bridge_secret(session: AsyncSession, name: str) -> str:
    """A random key named `name`, made once and then shared by every replica."""
    import secrets

    await insert_ignoring_conflict(
        session,
        BridgeSecret,
        "name",
        {"name": name, "value": secrets.token_hex(32), "created_at": utcnow()},
    )
    value = await session.scalar(
        select(BridgeSecret.value).where(BridgeSecret.name == name)
    )
    await session.commit()
    assert value is not None
    return value


async def set_flag(session: AsyncSession, name: str, value: str) -> None:
    """Record a fact for every replica (the caller commits)."""
    now = utcnow()
    statement = (
        _insert(session, BridgeFlag)
        .values(name=name, value=value, updated_at=now)
        .on_conflict_do_update(
            index_elements=["name"], set_={"value": value, "updated_at": now}
        )
    )
    await session.execute(statement)


async def get_flag(session: AsyncSession, name: str) -> BridgeFlag | None:
    """The fact recorded under `name`, if any."""
    return await session.get(BridgeFlag, name, populate_existing=True)
