"""Operator actions on dispatches, shared by the CLI and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select, update

from bridge.db import create_engine, sessionmaker
from bridge.models import Dispatch, utcnow
from bridge.store import add_event
from bridge.triggers import fits

RETRYABLE = ("failed", "uncertain", "not_sent")
DISMISSABLE = ("failed", "uncertain")


class RetryRefused(Exception):
    """The dispatch cannot be retried (missing, or in a state that forbids it)."""


class DismissRefused(Exception):
    """The dispatch cannot be dismissed (missing, or not failed or uncertain)."""


async def list_dispatches(
    url: str, status: str | None, limit: int
) -> Sequence[Dispatch]:
    """The newest dispatches, optionally of one status."""
    engine = create_engine(url)
    try:
        async with sessionmaker(engine)() as session:
            query = select(Dispatch).order_by(Dispatch.id.desc()).limit(limit)
            if status:
                query = query.where(Dispatch.status == status)
            return (await session.scalars(query)).all()
    finally:
        await engine.dispose()


async def requeue(session_factory: object, dispatch_id: int, by: str) -> None:
    """Queue a failed, uncertain or not-sent dispatch again; a person decided so."""
    if not fits(dispatch_id, 31):
        raise RetryRefused(f"there is no dispatch {dispatch_id}")
    async with session_factory() as session:  # type: ignore[operator]
        moved = await session.execute(
            update(Dispatch)
            .where(Dispatch.id == dispatch_id, Dispatch.status.in_(RETRYABLE))
            .values(
                status="queued",
                next_attempt_at=utcnow(),
                lease_owner=None,
                lease_expires_at=None,
                dry_run=False,
                # The checks run again: permission may have changed, and the
                # attachment links handed to Twill may have expired.
                prepared=Dispatch.snapshot.is_(None),
            )
        )
        if moved.rowcount != 1:
            status = await session.scalar(
                select(Dispatch.status).where(Dispatch.id == dispatch_id)
            )
            await session.rollback()
            if status is None:
                raise RetryRefused(f"there is no dispatch {dispatch_id}")
            raise RetryRefused(
                f"dispatch {dispatch_id} is {status}; only {', '.join(RETRYABLE)} ones can be retried"
            )
        await add_event(
            session, dispatch_id, "queued", f"retry requested by {by}", actor=by
        )
        await session.commit()


async def dismiss(session_factory: object, dispatch_id: int, by: str) -> None:
    """Close a failed or uncertain dispatch for good (`dismissed`); a person decided so."""
    if not fits(dispatch_id, 31):
        raise DismissRefused(f"there is no dispatch {dispatch_id}")
    async with session_factory() as session:  # type: ignore[operator]
        moved = await session.execute(
            update(Dispatch)
            .where(
                Dispatch.id == dispatch_id,
                Dispatch.status.in_(DISMISSABLE),
                # A worker telling the issue holds a lease and would write the
                # old status back when it finishes; wait for it instead.
                or_(
                    Dispatch.lease_owner.is_(None),
                    Dispatch.lease_expires_at < utcnow(),
                ),
            )
            .values(status="dismissed", lease_owner=None, lease_expires_at=None)
        )
        if moved.rowcount != 1:
            status = await session.scalar(
                select(Dispatch.status).where(Dispatch.id == dispatch_id)
            )
            await session.rollback()
            if status is None:
                raise DismissRefused(f"there is no dispatch {dispatch_id}")
            raise DismissRefused(
                f"dispatch {dispatch_id} is {status} or a worker holds it; only "
                f"{', '.join(DISMISSABLE)} ones no worker holds can be dismissed"
            )
        await add_event(
            session, dispatch_id, "dismissed", f"dismissed by {by}", actor=by
        )
        await session.commit()


async def retry_dispatch(url: str, dispatch_id: int, by: str) -> None:
    """`requeue` against the database at `url`."""
    engine = create_engine(url)
    try:
        await requeue(sessionmaker(engine), dispatch_id, by)
    finally:
        await engine.dispose()
