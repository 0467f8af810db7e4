"""Recording deliveries and queueing their dispatches, in one transaction.

Duplicates are refused by the unique constraints (INSERT ... ON CONFLICT DO
NOTHING), never by a check followed by an insert, so that two replicas racing
on the same delivery or trigger cannot both win.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

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


async def record_delivery(
    session: AsyncSession,
    meta: DeliveryMeta,
    outcome: str,
    reason: str,
    dispatch: dict[str, Any] | None = None,
    reply: dict[str, Any] | None = None,
) -> Recorded:
    """Record one delivery and queue what it asks for; commits.

    `dispatch` holds a Dispatch row's values (with its trigger_key), `reply`
    a Reply row's (with its key). A delivery id seen before records a repeat
    and queues nothing.
    """
    now = utcnow()
    row = {
        "delivery_id": meta.delivery_id,
        "event": meta.event,
        "action": meta.action,
        "installation_id": meta.installation_id,
        "repository": meta.repository,
        "issue_number": meta.issue_number,
        "sender": meta.sender,
        "outcome": outcome,
        "reason": reason,
        "body_bytes": meta.body_bytes,
        "received_at": now,
        "repeats": 0,
    }
    delivery_pk = await insert_ignoring_conflict(session, Delivery, "delivery_id", row)
    if delivery_pk is None:
        await session.execute(
            update(Delivery)
            .where(Delivery.delivery_id == meta.delivery_id)
            .values(repeats=Delivery.repeats + 1, last_repeat_at=now)
        )
        await session.commit()
        return Recorded("duplicate", "this delivery id was received before")

    result = Recorded(outcome, reason)
    if dispatch is not None:
        result = await _queue_dispatch(session, dispatch, reason, now)
    elif reply is not None:
        reply_id = await insert_ignoring_conflict(
            session,
            Reply,
            "key",
            {
                **reply,
                "delivery_id": meta.delivery_id,
                "created_at": now,
                "updated_at": now,
                "next_attempt_at": now,
            },
        )
        if reply_id is None:
            result = Recorded("duplicate", "this was answered already")
    if result != Recorded(outcome, reason):
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_pk)
            .values(
                outcome=result.outcome,
                reason=result.reason,
                dispatch_id=result.dispatch_id,
            )
        )
    await session.commit()
    return result


async def _queue_dispatch(
    session: AsyncSession, values: dict[str, Any], reason: str, now: Any
) -> Recorded:
    values = {
        "attempts": 0,
        "report_pending": False,
        "report_attempts": 0,
        "files": [],
        "created_at": now,
        "updated_at": now,
        "next_attempt_at": now,
        **values,
    }
    dispatch_id = await insert_ignoring_conflict(
        session, Dispatch, "trigger_key", values
    )
    if dispatch_id is None:
        existing = await session.scalar(
            select(Dispatch.id).where(Dispatch.trigger_key == values["trigger_key"])
        )
        return Recorded(
            "duplicate",
            f"this trigger was already dispatched (dispatch {existing})",
            existing,
        )
    session.add(
        DispatchEvent(
            dispatch_id=dispatch_id, at=now, status=values["status"], reason=reason
        )
    )
    outcome = "queued" if values["status"] == "queued" else values["status"]
    return Recorded(outcome, reason, dispatch_id)


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
