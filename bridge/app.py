"""The Starlette application: routes, and the worker started with it.

`create_app` builds everything from a Settings object and nothing else, so a
test can build an app around its own settings and fake peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge import log
from bridge.db import create_engine, sessionmaker
from bridge.github import GitHubClient
from bridge.settings import Settings
from bridge.triggers import Rules
from bridge.twill import TwillClient
from bridge.webhooks import problem, receive_webhook
from bridge.worker import Worker


@dataclass(frozen=True)
class Peers:
    """How to reach Twill and GitHub; tests swap in transports to local fakes."""

    twill_transport: httpx.AsyncBaseTransport | None = None
    github_transport: httpx.AsyncBaseTransport | None = None


def worker_name() -> str:
    """A name unique to this process, for leases: host, pid and a random tail."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def create_app(settings: Settings, peers: Peers | None = None) -> Starlette:
    """The bridge as an ASGI app; the database must already be migrated."""
    peers = peers or Peers()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        state = app.state
        state.settings = settings
        state.engine = engine
        state.sessions = sessionmaker(engine)
        state.rules = Rules(
            labels=settings.labels,
            default_agent=settings.default_agent,
            allowed_bots=settings.allowed_bots,
        )
        state.counters = Counter()
        state.worker = None
        twill, github = _clients(settings, peers)
        task = None
        if settings.worker_enabled and not settings.dry_run:
            state.worker = Worker(
                settings, state.sessions, worker_name(), twill, github
            )
            task = asyncio.create_task(state.worker.run(), name="dispatch-worker")
        try:
            yield
        finally:
            if task is not None and state.worker is not None:
                state.worker.stop()
                try:
                    await asyncio.wait_for(task, settings.shutdown_grace_seconds)
                except TimeoutError:
                    log.warning(
                        "worker did not stop in time; in-flight work is left to its lease"
                    )
            for client in (twill, github):
                if client is not None:
                    await client.aclose()
            await engine.dispose()

    return Starlette(
        routes=[
            Route("/api/github/webhooks", receive_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        exception_handlers={404: _not_found, 405: _not_allowed},
        lifespan=lifespan,
    )


def _clients(
    settings: Settings, peers: Peers
) -> tuple[TwillClient | None, GitHubClient | None]:
    if settings.dry_run:
        return None, None
    assert (
        settings.twill_api_key
        and settings.github_private_key
        and settings.github_app_id
    )
    twill = TwillClient(
        settings.twill_api_url,
        settings.twill_api_key.reveal(),
        timeout=settings.twill_timeout_seconds,
        transport=peers.twill_transport,
    )
    github = GitHubClient(
        settings.github_api_url,
        settings.github_app_id,
        settings.github_private_key.reveal(),
        transport=peers.github_transport,
        write_interval=settings.github_write_interval_seconds,
    )
    return twill, github


async def healthz(request: Request) -> JSONResponse:
    """The process answers; says nothing about its peers."""
    return JSONResponse({"status": "ok", "dry_run": request.app.state.settings.dry_run})


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return problem(404, "not_found", "no such route")


async def _not_allowed(request: Request, exc: Exception) -> JSONResponse:
    return problem(405, "method_not_allowed", "that method is not allowed here")
