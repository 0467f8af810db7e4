"""`GET /metrics`: Prometheus metrics, from this process and from the database.

Two kinds, told apart in the README:

- counters and histograms kept by this process (deliveries received, calls
  to Twill and GitHub with their latency); Prometheus adds the replicas up;
- gauges read from the shared database when scraped (the queue, dispatches
  by status and intent, Twill's rate budget), the same on every replica.

Labels are bounded sets: an event name the bridge acts on or `other`, a route
template from the peer's own API description (never a URL with ids, names
or tokens), a status code or a transport error's class name. Nothing is
labelled by repository, requester or installation.

Each app gets its own CollectorRegistry, so tests can build several apps in
one process.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from bridge import log
from bridge.budget import HOURLY_SPARE, SAFETY
from bridge.db import refuses_writes
from bridge.models import Dispatch, RateEvent, RateLimit, utcnow
from bridge.settings import INTENTS, Secret
from bridge.timing import Observe
from bridge.webhooks import problem

# Paths the clients call, as the peers' API descriptions name them
# (bridge/contracts/twill-openapi*.yaml; GitHub's REST description, the part
# in tests/contracts/). A path outside these is labelled `other`.
TWILL_ROUTES = (
    "/auth/me",
    "/tasks",
    "/tasks/{taskIdOrSlug}",
    "/tasks/{taskId}/jobs",
    "/tasks/{taskId}/messages",
    "/tasks/{taskId}/cancel",
)
GITHUB_ROUTES = (
    "/app",
    "/app-manifests/{code}/conversions",
    "/app/hook/config",
    "/app/hook/deliveries",
    "/app/hook/deliveries/{delivery_id}/attempts",
    "/app/installations",
    "/app/installations/{installation_id}/access_tokens",
    "/user",
    "/repos/{owner}/{repo}",
    "/repos/{owner}/{repo}/collaborators/{username}/permission",
    "/repos/{owner}/{repo}/contents/{path}",
    "/repos/{owner}/{repo}/installation",
    "/repos/{owner}/{repo}/issues/comments/{comment_id}",
    "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
    "/repos/{owner}/{repo}/issues/{issue_number}",
    "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    "/repos/{owner}/{repo}/issues/{issue_number}/reactions",
    "/repos/{owner}/{repo}/pulls/{pull_number}",
)
# Events with their own label; every other event name counts as `other`.
EVENTS = ("issues", "issue_comment", "pull_request", "ping")
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")

# Statuses a dispatch passes through, or waits in for a person: few rows,
# counted exactly at every scrape. Every other status (reported, denied,
# skipped, dismissed: most of the table) is recounted at most once a minute.
LIVE_STATUSES = ("queued", "sending", "created", "failed", "uncertain", "not_sent")
SETTLED_STATUSES = ("reported", "denied", "skipped", "dismissed")
SETTLED_COUNTS_SECONDS = 60.0
# Scrapes closer together than this share one reading of the database.
READING_SECONDS = 2.0
# Peer calls: GitHub answers in tens of milliseconds, Twill's create-task can
# take seconds, the client gives up at BRIDGE_TWILL_TIMEOUT_SECONDS (20).
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30)


async def metrics_endpoint(request: Request) -> Response:
    """The Prometheus text format; behind a bearer token when BRIDGE_METRICS_TOKEN is set."""
    state = request.app.state
    token: Secret | None = state.settings.metrics_token
    if token is not None and not _bearer_matches(request, token):
        return problem(
            401, "unauthorized", "send Authorization: Bearer <BRIDGE_METRICS_TOKEN>"
        )
    metrics: Metrics = state.metrics
    await metrics.refresh(state.sessions)
    # The classic text format, or OpenMetrics when the scraper asks for it.
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(
        encode(metrics.registry),
        headers={"Content-Type": content_type, "Cache-Control": "no-store"},
    )


def _bearer_matches(request: Request, token: Secret) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.reveal().encode()
    )


def _pattern(template: str) -> re.Pattern[str]:
    parts = []
    for segment in template.strip("/").split("/"):
        if segment == "{path}":
            parts.append(".+")  # a file path in the repository: slashes allowed
        elif segment.startswith("{"):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(segment))
    return re.compile("/".join(parts))


def _table(templates: tuple[str, ...]) -> list[tuple[re.Pattern[str], str]]:
    # Templates with more literal segments first (ties keep the table's order):
    # a path that a looser template would also match gets the stricter one.
    ranked = sorted(
        templates, key=lambda t: -sum(not s.startswith("{") for s in t.split("/"))
    )
    return [(_pattern(template), template) for template in ranked]


_ROUTES = {"twill": _table(TWILL_ROUTES), "github": _table(GITHUB_ROUTES)}


def route_template(peer: str, path: str) -> str:
    """The API description's name for `path` (relative to the peer's base URL), or `other`."""
    path = path.split("?", 1)[0].strip("/")
    for pattern, template in _ROUTES[peer]:
        if pattern.fullmatch(path):
            return template
    return "other"


def event_label(event: str) -> str:
    """The event's name if the bridge acts on it, else `other`."""
    return event if event in EVENTS else "other"


@dataclass
class Reading:
    """The database-wide figures, as read at `at` (monotonic seconds)."""

    at: float = float("-inf")
    ok: bool = False
    writable: bool = False
    seconds: float = 0.0
    queued: int = 0
    oldest_queued_age: float = 0.0
    reports_pending: int = 0
    live: dict[tuple[str, str], int] = field(default_factory=dict)
    settled: dict[tuple[str, str], int] = field(default_factory=dict)
    settled_at: float = float("-inf")
    budget_minute: float = 0.0
    budget_hour: float = 0.0
    paused_seconds: float = 0.0


class Metrics:
    """One app's metrics: its registry, the process's counters, the database's gauges."""

    def __init__(self, rate_per_minute: int, rate_per_hour: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "twill_bridge_deliveries",
            "Deliveries received by this process, by event and outcome at receipt.",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.peer_requests = Counter(
            "twill_bridge_peer_requests",
            "Calls to Twill and GitHub by route template and HTTP status "
            "(or the transport error's name).",
            ["peer", "method", "route", "status"],
            registry=self.registry,
        )
        self.peer_latency = Histogram(
            "twill_bridge_peer_request_duration_seconds",
            "Time for one call to Twill or GitHub, answer read.",
            ["peer", "method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.dry_run = Gauge(
            "twill_bridge_dry_run",
            "1 when this process composes dispatches without sending them.",
            registry=self.registry,
        )
        self.worker_loops = Gauge(
            "twill_bridge_worker_loops",
            "Worker loops running in this process (0: it only receives).",
            registry=self.registry,
        )
        self.rate_per_minute = rate_per_minute
        self.rate_per_hour = rate_per_hour
        self.reading = Reading()
        self._lock = asyncio.Lock()
        self.registry.register(_DatabaseCollector(self))

    def observer(self, peer: str) -> Observe:
        """What a client calls after each request to `peer`."""

        def observe(method: str, path: str, status: str, seconds: float) -> None:
            method = method.upper() if method.upper() in METHODS else "other"
            route = route_template(peer, path)
            self.peer_requests.labels(peer, method, route, status).inc()
            self.peer_latency.labels(peer, method, route).observe(seconds)

        return observe

    def delivery(self, event: str, outcome: str) -> None:
        """Count one delivery and what became of it."""
        self.deliveries.labels(event_label(event), outcome).inc()

    async def refresh(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Read the database's figures, unless a scrape just did."""
        async with self._lock:
            if time.monotonic() - self.reading.at < READING_SECONDS:
                return
            self.reading = await read_database(
                sessions, self.reading, self.rate_per_minute, self.rate_per_hour
            )


async def read_database(
    sessions: async_sessionmaker[AsyncSession],
    last: Reading,
    per_minute: int,
    per_hour: int,
) -> Reading:
    """A new Reading; on a database failure, one with `ok` False and no figures."""
    started = time.monotonic()
    try:
        async with sessions() as session:
            reading = await _read(session, last, started, per_minute, per_hour)
    except Exception as error:  # the scrape still answers, with the process's figures
        log.warning("metrics could not read the database", error=type(error).__name__)
        return Reading(at=started, ok=False, seconds=time.monotonic() - started)
    reading.seconds = time.monotonic() - started
    return reading


async def _read(
    session: AsyncSession,
    last: Reading,
    now_mono: float,
    per_minute: int,
    per_hour: int,
) -> Reading:
    now = utcnow()
    writable = not await refuses_writes(await session.connection())
    queued, oldest = (
        await session.execute(
            select(func.count(), func.min(Dispatch.created_at)).where(
                Dispatch.status == "queued"
            )
        )
    ).one()
    pending = await session.scalar(
        select(func.count())
        .select_from(Dispatch)
        .where(Dispatch.report_pending.is_(True))
    )
    live = await _by_status_intent(session, Dispatch.status.in_(LIVE_STATUSES))
    settled, settled_at = last.settled, last.settled_at
    if now_mono - settled_at >= SETTLED_COUNTS_SECONDS:
        settled = await _by_status_intent(
            session, Dispatch.status.not_in(LIVE_STATUSES)
        )
        settled_at = now_mono
    in_minute, in_hour = (
        await session.execute(
            select(
                func.count().filter(RateEvent.at > now - timedelta(minutes=1)),
                func.count(),
            ).where(RateEvent.key == "twill", RateEvent.at > now - timedelta(hours=1))
        )
    ).one()
    paused_until = await session.scalar(
        select(RateLimit.paused_until).where(RateLimit.key == "twill")
    )
    # The same figures the budget keeps to (bridge/budget.py): 98 % of the
    # minute's, two fewer than the hour's. Reserved slots count as spent.
    return Reading(
        at=now_mono,
        ok=True,
        writable=writable,
        queued=int(queued),
        oldest_queued_age=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        reports_pending=int(pending or 0),
        live=live,
        settled=settled,
        settled_at=settled_at,
        budget_minute=max(0.0, int(per_minute * SAFETY) - in_minute),
        budget_hour=max(0.0, max(1, per_hour - HOURLY_SPARE) - in_hour),
        paused_seconds=(
            max(0.0, (paused_until - now).total_seconds()) if paused_until else 0.0
        ),
    )


async def _by_status_intent(
    session: AsyncSession, where: Any
) -> dict[tuple[str, str], int]:
    # An index-only scan of ix_dispatches_status_intent on PostgreSQL.
    query = (
        select(Dispatch.status, Dispatch.intent, func.count())
        .where(where)
        .group_by(Dispatch.status, Dispatch.intent)
    )
    return {
        (status, intent): int(n) for status, intent, n in await session.execute(query)
    }


class _DatabaseCollector(Collector):
    """Turns the last Reading into gauges at each scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # nothing to check at registration: names are fixed below

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reading = self.metrics.reading
        yield GaugeMetricFamily(
            "twill_bridge_database_up",
            "1 when the last reading of the database's figures succeeded and the "
            "database accepted writes (a read-only one records no delivery).",
            value=int(reading.ok and reading.writable),
        )
        yield GaugeMetricFamily(
            "twill_bridge_database_read_seconds",
            "Time the last reading of the database's figures took.",
            value=reading.seconds,
        )
        if not reading.ok:
            return
        yield GaugeMetricFamily(
            "twill_bridge_queue_depth",
            "Dispatches queued: waiting for their checks, a worker or a retry's time.",
            value=reading.queued,
        )
        yield GaugeMetricFamily(
            "twill_bridge_queue_oldest_age_seconds",
            "Age of the oldest queued dispatch (0 when none is queued).",
            value=reading.oldest_queued_age,
        )
        yield GaugeMetricFamily(
            "twill_bridge_reports_pending",
            "Dispatches whose issue has yet to be told (tracking comment).",
            value=reading.reports_pending,
        )
        by_status = GaugeMetricFamily(
            "twill_bridge_dispatches",
            "Dispatches in the database by status and intent; the settled statuses "
            "are recounted at most once a minute.",
            labels=["status", "intent"],
        )
        # Every known status and intent, 0 when there is none, so that a series
        # does not vanish when its last dispatch moves on.
        counts = {
            (status, intent): 0
            for status in (*LIVE_STATUSES, *SETTLED_STATUSES)
            for intent in INTENTS
        }
        counts.update(reading.settled)
        counts.update(reading.live)
        for (status, intent), count in sorted(counts.items()):
            by_status.add_metric([status, intent], count)
        yield by_status
        budget = GaugeMetricFamily(
            "twill_bridge_twill_budget_remaining",
            "Calls to Twill left in the current minute and hour, for all replicas "
            "together, within the margins the bridge keeps.",
            labels=["window"],
        )
        budget.add_metric(["minute"], reading.budget_minute)
        budget.add_metric(["hour"], reading.budget_hour)
        yield budget
        yield GaugeMetricFamily(
            "twill_bridge_twill_paused_seconds",
            "Seconds left of a pause after Twill answered 429 (0: not paused).",
            value=reading.paused_seconds,
        )
