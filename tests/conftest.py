"""Shared fixtures: databases (SQLite always, PostgreSQL when TEST_DATABASE_URL is
set), an App key pair, fake Twill and GitHub, and a harness around the real app.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bridge.app import Peers, create_app
from bridge.budget import RateBudget
from bridge.db import create_engine, migrate, sessionmaker
from bridge.models import Delivery, Dispatch, DispatchEvent, RateLimit, Reply
from bridge.settings import Secret, Settings
from bridge.signature import sign
from bridge.worker import Worker
from tests.fakes.assets import FakeAssets
from tests.fakes.github import FakeGitHub
from tests.fakes.transport import FaultyTransport
from tests.fakes.twill import FakeTwill
from tests.payloads import INSTALLATION, REPO

WEBHOOK_SECRET = "It's a Secret to Everybody"
APP_ID = 123456
TWILL_KEY = "twill-test-key"
TABLES = (
    "bridge_flags",
    "github_app",
    "scheduled_jobs",
    "redeliveries",
    "dispatch_events",
    "replies",
    "dispatches",
    "deliveries",
    "rate_limits",
    "rate_events",
    "stored_files",
    "bridge_secrets",
    "refused_signatures",
    "revoked_sessions",
)

PG_URL = os.environ.get("TEST_DATABASE_URL")
DATABASES = ["sqlite"] + (["postgres"] if PG_URL else [])


@pytest.fixture(scope="session")
def app_keys() -> tuple[str, str]:
    """A fresh RSA key pair for the fake App: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )
    return private, public


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated once, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "bridge.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of its own on the TEST_DATABASE_URL server, migrated, dropped after."""
    if not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set")
    base = make_url(PG_URL).set(drivername="postgresql+asyncpg")
    name = f"bridge_test_{uuid.uuid4().hex[:10]}"

    async def admin(statement: str) -> None:
        engine = create_engine(
            base.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
        )
        async with engine.connect() as connection:
            await connection.execute(text(statement))
        await engine.dispose()

    # Requested from inside a test's event loop, so do the blocking work in a thread.
    in_thread(lambda: asyncio.run(admin(f'CREATE DATABASE "{name}"')))
    url = base.set(database=name).render_as_string(hide_password=False)
    in_thread(lambda: migrate(url))
    yield url
    in_thread(
        lambda: asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    )


def in_thread(work: Callable[[], Any]) -> Any:
    """Run blocking `work` (which may start its own event loop) in a fresh thread."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()


@pytest.fixture(params=DATABASES)
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str:
    """A migrated, empty database: SQLite, and PostgreSQL too when configured."""
    if request.param == "sqlite":
        path = tmp_path / "bridge.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        )
    await engine.dispose()
    return url


@pytest.fixture
def make_settings(
    database_url: str, app_keys: tuple[str, str], tmp_path: Path
) -> Callable[..., Settings]:
    """Settings pointing at the fakes, with any field overridden."""

    def build(**overrides: Any) -> Settings:
        settings = Settings(
            twill_api_key=Secret(TWILL_KEY),
            twill_api_url="http://twill.test/api/v1",
            github_app_id=APP_ID,
            github_private_key=Secret(app_keys[0]),
            webhook_secrets=(Secret(WEBHOOK_SECRET),),
            github_api_url="http://github.test",
            database_url=database_url,
            data_dir=tmp_path,
            worker_enabled=False,
            worker_poll_seconds=0.05,
            github_write_interval_seconds=0.0,
            # Tests that are about the rate budget set real figures.
            twill_rate_per_minute=1_000_000,
            twill_rate_per_hour=1_000_000,
        )
        return replace(settings, **overrides)

    return build


class Harness:
    """The real app behind an httpx client, fakes behind transports, a worker to drive."""

    def __init__(
        self, settings: Settings, twill: FakeTwill, github: FakeGitHub
    ) -> None:
        self.settings = settings
        self.twill = twill
        self.github = github
        self.twill_transport = FaultyTransport(twill.app())
        self.github_transport = FaultyTransport(
            github.app(_base_path(settings.github_api_url))
        )
        self.assets = FakeAssets()
        self.assets_transport = FaultyTransport(self.assets)
        self.app = create_app(
            settings,
            Peers(
                self.twill_transport,
                self.github_transport,
                files_transport=self.assets_transport,
                resolver=self.assets.resolve,
            ),
        )
        self.sessions = sessionmaker(create_engine(settings.database_url))
        self.worker: Worker  # made once the app has started (see make_harness)
        self.client = self.browser()

    def browser(self) -> httpx.AsyncClient:
        """A client into the app with cookies of its own (the caller closes it).

        With an https BRIDGE_PUBLIC_URL it speaks https to a proxy, and the app
        sees plain http, as behind an ingress whose headers it does not trust.
        """
        app_transport = httpx.ASGITransport(app=self.app)
        if (self.settings.public_url or "").startswith("https:"):
            return httpx.AsyncClient(
                transport=TlsProxy(app_transport), base_url="https://bridge.test"
            )
        return httpx.AsyncClient(transport=app_transport, base_url="http://bridge.test")

    def new_worker(self, name: str) -> Worker:
        """A worker of our own (the app's is off), with clients into the fakes."""
        s = self.settings
        if s.dry_run:
            return Worker(s, self.sessions, name)
        # The app's own clients (into the fakes), as its worker pool would use.
        twill, github = self.app.state.twill, self.app.state.github
        budget = RateBudget(
            self.sessions, s.twill_rate_per_minute, s.twill_rate_per_hour
        )
        # The webhook's config cache and the workers' are one, as in the app.
        configs = self.app.state.configs
        return Worker(
            s,
            self.sessions,
            name,
            twill,
            github,
            budget,
            configs=configs,
            handover=self.app.state.handover,
        )

    async def deliver(
        self,
        event: str,
        payload: Any,
        delivery_id: str | None = None,
        secret: str = WEBHOOK_SECRET,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> httpx.Response:
        """POST a delivery signed like GitHub signs it."""
        raw = body if body is not None else json.dumps(payload).encode()
        sent = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(secret, raw),
            "User-Agent": "GitHub-Hookshot/abc123",
        }
        sent.update(headers or {})
        return await self.client.post(
            "/api/github/webhooks",
            content=raw,
            headers={k: v for k, v in sent.items() if v is not None},
        )

    async def drain(self, worker: Worker | None = None, limit: int = 200) -> int:
        """Run worker steps until one finds nothing to do; the number of busy steps."""
        worker = worker or self.worker
        for busy in range(limit):
            if not await worker.step():
                return busy
        raise AssertionError("the worker never ran out of work")

    async def dispatches(self) -> list[Dispatch]:
        async with self.sessions() as session:
            return list(
                (await session.scalars(select(Dispatch).order_by(Dispatch.id))).all()
            )

    async def deliveries(self) -> list[Delivery]:
        async with self.sessions() as session:
            return list(
                (await session.scalars(select(Delivery).order_by(Delivery.id))).all()
            )

    async def replies(self) -> list[Reply]:
        async with self.sessions() as session:
            return list((await session.scalars(select(Reply).order_by(Reply.id))).all())

    async def events(self, dispatch_id: int) -> list[DispatchEvent]:
        async with self.sessions() as session:
            query = (
                select(DispatchEvent)
                .where(DispatchEvent.dispatch_id == dispatch_id)
                .order_by(DispatchEvent.id)
            )
            return list((await session.scalars(query)).all())

    async def make_due(self) -> None:
        """Bring every scheduled retry forward to now, instead of sleeping in tests."""
        from sqlalchemy import update

        from bridge.models import utcnow

        async with self.sessions() as session:
            await session.execute(update(Dispatch).values(next_attempt_at=utcnow()))
            await session.execute(
                update(Dispatch)
                .where(Dispatch.report_pending.is_(True))
                .values(report_next_at=utcnow())
            )
            await session.execute(update(Reply).values(next_attempt_at=utcnow()))
            await session.execute(
                update(RateLimit).values(paused_until=None, next_slot_at=utcnow())
            )
            await session.commit()


class TlsProxy(httpx.AsyncBaseTransport):
    """A proxy that ends TLS and passes requests on over http, adding no header.

    uvicorn believes X-Forwarded-Proto only from FORWARDED_ALLOW_IPS
    (127.0.0.1 by default), so behind an ingress pod or Docker's port proxy
    the app sees what this shows it: http, whatever the browser used.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        passed_on = httpx.Request(
            request.method,
            request.url.copy_with(scheme="http"),
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        return await self.inner.handle_async_request(passed_on)


@contextlib.asynccontextmanager
async def read_only_database(harness: Harness) -> AsyncIterator[None]:
    """The app's database refusing writes while it is reached and read; undone after.

    PostgreSQL: `ALTER DATABASE ... SET default_transaction_read_only = on`,
    and the app's pooled connections dropped so the new ones take it, as after
    a failover to a standby. SQLite: the app's engine and sessions opened on
    the same file with `mode=ro`, as SQLite opens a file it may not write.
    """
    app_state = harness.app.state
    url = harness.settings.database_url
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        engine = create_engine(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
        original = app_state.engine, app_state.sessions
        app_state.engine, app_state.sessions = engine, sessionmaker(engine)
        try:
            yield
        finally:
            app_state.engine, app_state.sessions = original
            await engine.dispose()
        return
    name = make_url(url).database
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(
            text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        )
    await app_state.engine.dispose()
    try:
        yield
    finally:
        # This connection began before the change, so it may still write.
        async with admin.connect() as connection:
            await connection.execute(
                text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
            )
        await admin.dispose()
        await app_state.engine.dispose()


def _base_path(url: str) -> str:
    return httpx.URL(url).path.rstrip("/")


@pytest.fixture
def fake_twill() -> Iterator[FakeTwill]:
    """A fake Twill; the test fails if any request broke the create-task contract."""
    twill = FakeTwill(api_key=TWILL_KEY)
    yield twill
    assert twill.contract_errors == [], "requests to Twill broke its contract"


@pytest.fixture
def fake_github(app_keys: tuple[str, str]) -> Iterator[FakeGitHub]:
    """A fake GitHub; the test fails if any request broke GitHub's REST description."""
    github = FakeGitHub(
        app_id=APP_ID, public_key=app_keys[1], installations={REPO: INSTALLATION}
    )
    yield github
    assert github.problems == [], "requests to GitHub broke its REST description"


@pytest.fixture
async def make_harness(
    make_settings: Callable[..., Settings],
    fake_twill: FakeTwill,
    fake_github: FakeGitHub,
) -> AsyncIterator[Callable[..., Any]]:
    """Build a Harness (settings overrides as keywords); its app runs until the test ends."""
    stack: list[tuple[Harness, Any]] = []

    async def build(**overrides: Any) -> Harness:
        harness = Harness(make_settings(**overrides), fake_twill, fake_github)
        lifespan = harness.app.router.lifespan_context(harness.app)
        await lifespan.__aenter__()
        harness.worker = harness.new_worker("test-worker")
        stack.append((harness, lifespan))
        return harness

    yield build
    for harness, lifespan in reversed(stack):
        await harness.client.aclose()
        await lifespan.__aexit__(None, None, None)
        await harness.sessions.kw["bind"].dispose()


@pytest.fixture
async def bridge(make_harness: Callable[..., Any]) -> Harness:
    """A harness with default settings."""
    harness: Harness = await make_harness()
    return harness
