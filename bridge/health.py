"""`GET /healthz` (the process answers) and `GET /readyz` (it can do its work).

/readyz is probed every few seconds by every replica, so it costs two
one-row queries on one connection, with a deadline. It answers 503 when the
bridge cannot record a delivery: the database is out of reach, refuses
writes (a read-only PostgreSQL or SQLite file: every delivery would get 503
`not_recorded`), or its schema is older than this code. It answers 200 with
warnings for what does not lose deliveries:

- dry-run (no Twill key or App credentials, or BRIDGE_DRY_RUN): deliveries
  are still verified and recorded, and their dispatches can be retried once
  the credentials are there. A replica held out of the load balancer would
  instead leave GitHub's deliveries unanswered, and GitHub does not send
  them again on its own; a laptop or staging bridge would never be ready.
  The warning, the start-up log line, /healthz and the `twill_bridge_dry_run`
  metric all say it.
- a schema newer than this code: a newer version has migrated during a
  rolling update; this replica keeps serving until it is replaced.

Nothing here names a secret, the database's address or its password.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge import log
from bridge.db import refuses_writes

# Under the probes' own timeouts (deploy/: 5 s), so the answer is ours.
READY_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Schema:
    """The migrations this code ships: the newest, and every one it knows."""

    head: str
    known: frozenset[str]


async def healthz(request: Request) -> JSONResponse:
    """The process answers; says nothing about its peers."""
    return JSONResponse({"status": "ok", "dry_run": request.app.state.settings.dry_run})


async def readyz(request: Request) -> JSONResponse:
    """200 when deliveries can be recorded (perhaps with warnings), else 503."""
    state = request.app.state
    settings = state.settings
    schema: Schema = state.schema
    problems: list[str] = []
    warnings = [f"dry run: {reason}" for reason in settings.dry_run_reasons]
    revision: str | None = None
    reachable = False
    writable: bool | None = None
    try:
        revision, writable = await asyncio.wait_for(
            _revision(state.engine), READY_TIMEOUT_SECONDS
        )
        reachable = True
    except _NoSchema:
        reachable = True
        problems.append("the database has no schema; run `twill-bridge migrate`")
    except Exception as error:  # whatever it is, the answer is "not ready"
        problems.append(f"the database cannot be reached ({type(error).__name__})")
        log.warning("readiness: database unreachable", error=type(error).__name__)
    if writable is False:
        problems.append(
            "the database refuses writes (read-only), so no delivery can be recorded"
        )
        log.warning("readiness: database refuses writes")
    if revision is not None and revision != schema.head:
        if revision in schema.known:
            problems.append(
                f"the database is at migration {revision}, this version needs "
                f"{schema.head}; run `twill-bridge migrate`"
            )
        else:
            warnings.append(
                f"the database is at migration {revision}, newer than this "
                f"version's {schema.head}"
            )
    body = {
        "status": "not_ready" if problems else "ready",
        "database": {
            "backend": state.engine.dialect.name,
            "reachable": reachable,
            "writable": writable,
            "revision": revision,
            "head": schema.head,
        },
        "dry_run": settings.dry_run,
        "worker": _worker(state),
        "problems": problems,
        "warnings": warnings,
    }
    return JSONResponse(
        body,
        status_code=503 if problems else 200,
        headers={"Cache-Control": "no-store"},
    )


class _NoSchema(Exception):
    """The database answers but has no alembic_version table."""


async def _revision(engine: AsyncEngine) -> tuple[str, bool]:
    """The database's migration, and whether it accepts writes."""
    try:
        async with engine.connect() as connection:
            revision = await connection.scalar(
                text("SELECT version_num FROM alembic_version")
            )
            writable = not await refuses_writes(connection)
    except DBAPIError as error:
        if "alembic_version" in str(error.orig):
            raise _NoSchema from error
        raise
    if revision is None:
        raise _NoSchema
    return str(revision), writable


def _worker(state: Any) -> str:
    pool = state.worker
    if pool is not None:
        return f"running ({len(pool.workers)} loops)"
    settings = state.settings
    if settings.dry_run:
        return "off (dry run)"
    if not settings.worker_enabled:
        return "off (BRIDGE_WORKER=false)"
    return "off (another process runs it for this SQLite file)"
