"""The Starlette application: routes, and the worker started with it.

`create_app` builds everything from a Settings object and nothing else, so a
test can build an app around its own settings and fake peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge import log, setup_views
from bridge.admin import api as admin_api
from bridge.admin import pages
from bridge.admin.auth import Sessions
from bridge.admin.web import Admin, templates
from bridge.budget import RateBudget
from bridge.credentials import AppCredentials, CredentialsError, with_credentials
from bridge.credentials import load as load_credentials
from bridge.db import create_engine, revisions, sessionmaker, sqlite_worker_lock
from bridge.fetch import Fetcher, Resolver, system_resolver
from bridge.file_views import serve_file
from bridge.github import GitHubClient
from bridge.handover import Handover
from bridge.health import Schema, healthz, readyz
from bridge.metrics import Metrics, metrics_endpoint
from bridge.recorder import Recorder
from bridge.redeliver import RedeliverJob
from bridge.repo_access import ConfigCache, PermissionCache
from bridge.settings import Secret, Settings
from bridge.store import bridge_secret
from bridge.triggers import rules_from
from bridge.twill import TwillClient
from bridge.webhooks import problem, receive_webhook
from bridge.worker import Worker


@dataclass(frozen=True)
class Peers:
    """How to reach Twill and GitHub; tests swap in transports to local fakes."""

    twill_transport: httpx.AsyncBaseTransport | None = None
    github_transport: httpx.AsyncBaseTransport | None = None
    # Downloads of attachments from GitHub's storage, and the DNS lookups
    # that check where they go (bridge/fetch.py).
    files_transport: httpx.AsyncBaseTransport | None = None
    resolver: Resolver = system_resolver


def worker_name() -> str:
    """A name unique to this process, for leases: host, pid and a random tail."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def create_app(settings: Settings, peers: Peers | None = None) -> Starlette:
    """The bridge as an ASGI app; the database must already be migrated."""
    peers = peers or Peers()
    # Without a configured key (tests, or an app built outside `serve`), sessions
    # last as long as this app object.
    session_key = settings.session_secret or Secret(secrets.token_hex(32))
    admin = Admin(Sessions(session_key.reveal()), templates())
    # Per app, not Prometheus's global registry: tests build several apps.
    metrics = Metrics(settings.twill_rate_per_minute, settings.twill_rate_per_hour)
    head, known = revisions()
    schema = Schema(head, known)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url, settings.sqlite_synchronous)
        state = app.state
        state.engine = engine
        state.sessions = sessionmaker(engine)
        state.peers = peers
        state.counters = Counter()
        state.recorder = Recorder(engine)
        state.large_deliveries = asyncio.Semaphore(1)  # see bridge/webhooks.py
        state.recorder.start()
        state.admin = admin
        state.reconfigure = asyncio.Lock()
        state.apply_credentials = functools.partial(apply_credentials, app)
        state.metrics = metrics
        state.schema = schema
        async with state.sessions() as session:
            state.files_secret = (
                settings.files_secret.reveal()
                if settings.files_secret
                else await bridge_secret(session, "files")
            )
        await _start_services(app, settings)
        watcher = (
            asyncio.create_task(_watch_for_credentials(app))
            if settings.github_app_id is None
            else None
        )
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            await _stop_services(app)
            await state.recorder.stop()
            await engine.dispose()

    return Starlette(
        routes=[
            Route("/api/github/webhooks", receive_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            # Registering the GitHub App from a manifest (bridge/setup_views.py).
            Route("/setup", setup_views.setup_page, methods=["GET"]),
            Route("/setup", setup_views.setup_token_form, methods=["POST"]),
            Route("/setup/manifest", setup_views.manifest_page, methods=["GET"]),
            Route("/setup/callback", setup_views.callback, methods=["GET"]),
            Route("/files/{file_id}/{name}", serve_file, methods=["GET"]),
            # The dashboard: pages and forms (bridge/admin/pages.py) ...
            Route("/admin", pages.overview, methods=["GET"]),
            Route("/admin/login", pages.sign_in_page, methods=["GET"]),
            Route("/admin/login", pages.sign_in_with_password, methods=["POST"]),
            Route("/admin/oauth/start", pages.oauth_start, methods=["GET"]),
            Route(
                "/admin/oauth/callback",
                pages.oauth_callback,
                methods=["GET"],
                name="oauth_callback",
            ),
            Route("/admin/logout", pages.sign_out, methods=["POST"]),
            Route("/admin/dispatches", pages.dispatch_list, methods=["GET"]),
            Route(
                "/admin/dispatches/{dispatch_id:int}",
                pages.dispatch_detail,
                methods=["GET"],
            ),
            Route(
                "/admin/dispatches/{dispatch_id:int}/retry",
                pages.retry,
                methods=["POST"],
            ),
            Route(
                "/admin/dispatches/{dispatch_id:int}/dismiss",
                pages.dismiss_dispatch,
                methods=["POST"],
            ),
            Route("/admin/deliveries", pages.delivery_list, methods=["GET"]),
            # ... and its JSON API (bridge/admin/api.py).
            Route("/api/dispatches", admin_api.list_dispatches, methods=["GET"]),
            Route(
                "/api/dispatches/{dispatch_id:int}",
                admin_api.get_dispatch,
                methods=["GET"],
            ),
            Route("/api/deliveries", admin_api.list_deliveries, methods=["GET"]),
        ],
        exception_handlers={404: _not_found, 405: _not_allowed, Exception: _failed},
        lifespan=lifespan,
    )


async def _start_services(app: Starlette, settings: Settings) -> None:
    """Build the clients, caches and loops that `settings` call for, on app.state."""
    state = app.state
    peers: Peers = state.peers
    admin: Admin = state.admin
    state.settings = settings
    state.rules = rules_from(settings)
    if settings.oauth_enabled:
        # The OAuth web flow goes to GitHub's web host and its REST API.
        admin.oauth_client = httpx.AsyncClient(
            transport=peers.github_transport,
            timeout=10,
            headers={"User-Agent": "twill-github-bridge"},
        )
    state.worker = None
    twill, github = _clients(
        settings, peers, write_pacer(settings, state.sessions), state.metrics
    )
    state.twill, state.github = twill, github
    state.configs = ConfigCache(github) if github else None
    permissions = PermissionCache(github) if github else None
    state.fetcher = Fetcher(
        settings.files_max_bytes,
        _configured_hosts(settings),
        transport=peers.files_transport,
        resolver=peers.resolver,
    )
    state.handover = (
        Handover(settings, state.sessions, github, state.fetcher, state.files_secret)
        if github
        else None
    )
    pool = _worker_pool(
        settings,
        state.sessions,
        twill,
        github,
        state.configs,
        permissions,
        state.handover,
    )
    state.worker = pool
    state.metrics.dry_run.set(int(settings.dry_run))
    state.metrics.worker_loops.set(len(pool.workers) if pool is not None else 0)
    if pool is not None:
        pool.start()
    state.redeliver_job = None
    state.redeliver_task = None
    if (
        github is not None
        and settings.worker_enabled
        and settings.redeliver_interval_seconds > 0
    ):
        job = RedeliverJob(
            state.sessions,
            github,
            worker_name(),
            settings.redeliver_interval_seconds,
            settings.redeliver_window_seconds,
            app_write_pacer(settings, state.sessions),
        )
        state.redeliver_job = job
        state.redeliver_task = asyncio.create_task(job.run(), name="redeliver")


async def _stop_services(app: Starlette) -> None:
    """Stop what `_start_services` started and close its clients."""
    state = app.state
    settings: Settings = state.settings
    if state.redeliver_job is not None:
        state.redeliver_job.stop()
        await asyncio.wait([state.redeliver_task], timeout=5)
        state.redeliver_task.cancel()
    if state.worker is not None:
        await state.worker.stop(settings.shutdown_grace_seconds)
        state.worker = None
    admin: Admin = state.admin
    for client in (state.twill, state.github, state.fetcher, admin.oauth_client):
        if client is not None:
            await client.aclose()
    admin.oauth_client = None


async def apply_credentials(app: Starlette, credentials: AppCredentials) -> Settings:
    """Take up the App's credentials in this running process; the new settings.

    Deliveries are verified with the new webhook secret at once; when the
    App's credentials were all the bridge lacked, the worker starts too.
    """
    state = app.state
    async with state.reconfigure:
        current: Settings = state.settings
        updated = with_credentials(current, credentials)
        if updated != current:
            await _stop_services(app)
            await _start_services(app, updated)
            log.info(
                "github app credentials taken up",
                app_id=updated.github_app_id,
                dry_run=updated.dry_run,
            )
        return updated


# How often a process without the App's credentials looks whether another
# replica's /setup stored them.
WATCH_SECONDS = 5.0


async def _watch_for_credentials(app: Starlette) -> None:
    state = app.state
    while state.settings.github_app_id is None:
        await asyncio.sleep(WATCH_SECONDS)
        try:
            found = await load_credentials(state.sessions, state.settings)
        except CredentialsError as error:
            log.warning("stored github app credentials are unusable", reason=str(error))
            return
        except Exception as error:  # a database blip: look again later
            log.warning(
                "could not look for github app credentials", error=type(error).__name__
            )
            continue
        if found is not None:
            await apply_credentials(app, found)
            return


class WorkerPool:
    """The worker loops of this process, started and stopped together."""

    def __init__(self, workers: list[Worker], lock: Any = None) -> None:
        self.workers = workers
        self.lock = lock  # held for the pool's life (SQLite: one worker per file)
        self.tasks: list[asyncio.Task[None]] = []
        self._turn = 0

    def start(self) -> None:
        """Start every loop."""
        self.tasks = [asyncio.create_task(w.run(), name=w.owner) for w in self.workers]

    def wake(self) -> None:
        """New work was queued: one loop looks at once (in turn, not all at once)."""
        self._turn = (self._turn + 1) % len(self.workers)
        self.workers[self._turn].wake()

    async def stop(self, grace: float) -> None:
        """Stop claiming; wait up to `grace` seconds for in-flight calls to finish."""
        for worker in self.workers:
            worker.stop()
        _, pending = await asyncio.wait(self.tasks, timeout=grace or None)
        if pending:
            log.warning(
                "workers did not stop in time; their in-flight work is left to its lease",
                workers=len(pending),
            )
            for task in pending:
                task.cancel()
            await asyncio.wait(pending)
        if self.lock is not None:
            self.lock.close()


def _worker_pool(
    settings: Settings,
    sessions: Any,
    twill: TwillClient | None,
    github: GitHubClient | None,
    configs: ConfigCache | None,
    permissions: PermissionCache | None,
    handover: Handover | None,
) -> WorkerPool | None:
    if not settings.worker_enabled or settings.dry_run:
        return None
    lock = None
    if settings.database_url.startswith("sqlite"):
        lock = sqlite_worker_lock(settings.database_url)
        if lock is None:
            log.warning(
                "another process runs the worker for this SQLite file; "
                "this one only receives deliveries"
            )
            return None
    budget = RateBudget(
        sessions, settings.twill_rate_per_minute, settings.twill_rate_per_hour
    )
    name = worker_name()
    workers = [
        Worker(
            settings,
            sessions,
            f"{name}:{n}",
            twill,
            github,
            budget,
            configs=configs,
            permissions=permissions,
            handover=handover,
        )
        for n in range(settings.worker_concurrency)
    ]
    return WorkerPool(workers, lock)


def _configured_hosts(settings: Settings) -> set[str]:
    """The GitHub hosts the operator named; they may be private or plain http.

    GitHub.com's own hosts are not among them: they get the full checks.
    """
    hosts = {httpx.URL(settings.github_api_url).host, settings.github_web_host}
    return {host for host in hosts if host} - {"github.com", "api.github.com"}


def app_write_pacer(settings: Settings, sessions: Any) -> Any:
    """Spacing of the App's own writes (with its JWT), across replicas."""
    interval = settings.github_write_interval_seconds
    if interval <= 0:
        return None
    budget = RateBudget(
        sessions,
        per_minute=max(1, round(60 / interval)),
        per_hour=10**9,
        key="github-writes:app",
    )

    async def pace() -> None:
        slot = await budget.reserve()
        if slot.wait > 0:
            await asyncio.sleep(slot.wait)

    return pace


def write_pacer(settings: Settings, sessions: Any) -> Any:
    """Spacing of writes per installation across replicas, through the database."""
    interval = settings.github_write_interval_seconds
    if interval <= 0:
        return None

    async def pace(installation_id: int) -> None:
        budget = RateBudget(
            sessions,
            per_minute=max(1, round(60 / interval)),
            per_hour=10**9,
            key=f"github-writes:{installation_id}",
        )
        slot = await budget.reserve()
        if slot.wait > 0:
            await asyncio.sleep(slot.wait)

    return pace


def _clients(
    settings: Settings, peers: Peers, pace: Any, metrics: Metrics
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
        observe=metrics.observer("twill"),
    )
    github = GitHubClient(
        settings.github_api_url,
        settings.github_app_id,
        settings.github_private_key.reveal(),
        transport=peers.github_transport,
        write_interval=settings.github_write_interval_seconds,
        pace=pace,
        observe=metrics.observer("github"),
    )
    return twill, github


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    return problem(404, "not_found", "no such route")


async def _failed(request: Request, exc: Exception) -> JSONResponse:
    # A bug of ours: GitHub gets a JSON 500 (and redelivers nothing on its own),
    # the log gets the traceback.
    log.error(
        "request failed", path=request.url.path, error=type(exc).__name__, exc_info=exc
    )
    return problem(500, "internal_error", "the bridge failed to handle this request")


async def _not_allowed(request: Request, exc: Exception) -> JSONResponse:
    return problem(405, "method_not_allowed", "that method is not allowed here")
