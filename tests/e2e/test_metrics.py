"""GET /metrics through the real app: counters of this process, gauges of the database."""

from __future__ import annotations

from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from bridge.app import create_app
from bridge.models import Dispatch, utcnow
from bridge.settings import Secret
from tests import payloads
from tests.conftest import TWILL_KEY, WEBHOOK_SECRET, Harness
from tests.fakes.github import GitHubFault
from tests.fakes.twill import Fault


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: dict, name: str, **labels: str) -> float | None:  # type: ignore[type-arg]
    return scrape.get((name, frozenset(labels.items())))


async def scrape(bridge: Harness, **headers: str) -> dict:  # type: ignore[type-arg]
    answer = await bridge.client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(answer.text)


async def test_a_delivery_and_its_dispatch_are_counted_by_event_outcome_and_route(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill-plan"))
    await bridge.deliver("issues", payloads.issues_opened())
    await bridge.deliver("issues", payloads.issues_labeled("twill"), secret="wrong")
    await bridge.deliver("ping", {"zen": "Keep it logically awesome."})
    await bridge.deliver("workflow_run", {"action": "completed"})
    await bridge.drain()

    answer = await bridge.client.get("/metrics")
    metrics = parse(answer.text)

    deliveries = "twill_bridge_deliveries_total"
    assert value(metrics, deliveries, event="issues", outcome="queued") == 1
    assert value(metrics, deliveries, event="issues", outcome="ignored") == 1
    assert value(metrics, deliveries, event="issues", outcome="bad_signature") == 1
    assert value(metrics, deliveries, event="ping", outcome="ignored") == 1
    # Event names the bridge does not act on share one label.
    assert value(metrics, deliveries, event="other", outcome="ignored") == 1

    calls = "twill_bridge_peer_requests_total"
    assert (
        value(metrics, calls, peer="twill", method="POST", route="/tasks", status="201")
        == 1
    )
    comment = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
    assert (
        value(metrics, calls, peer="github", method="POST", route=comment, status="201")
        == 1
    )
    token = "/app/installations/{installation_id}/access_tokens"
    assert (
        value(metrics, calls, peer="github", method="POST", route=token, status="201")
        == 1
    )
    latency = "twill_bridge_peer_request_duration_seconds_count"
    assert value(metrics, latency, peer="twill", method="POST", route="/tasks") == 1
    # Every GitHub call the fake saw is counted under a template, none as `other`.
    github_calls = sum(
        v
        for (name, labels), v in metrics.items()
        if name == calls and ("peer", "github") in labels
    )
    assert github_calls == len(bridge.github.calls)
    assert not [k for k in metrics if ("route", "other") in k[1]]

    # No label carries a repository, an issue, a login, an id or a secret.
    label_values = {v for _, labels in metrics for _, v in labels}
    for forbidden in (payloads.REPO, "octo-org", "maintainer", "12", "77"):
        assert not [v for v in label_values if forbidden in v], forbidden
    for secret in (WEBHOOK_SECRET, TWILL_KEY, "ghs_", *bridge.github.tokens):
        assert secret not in answer.text


async def test_transport_errors_are_counted_by_their_name(bridge: Harness) -> None:
    bridge.twill_transport.fail_next("connect")  # type: ignore[attr-defined]
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()

    metrics = await scrape(bridge)
    calls = "twill_bridge_peer_requests_total"
    assert (
        value(
            metrics,
            calls,
            peer="twill",
            method="POST",
            route="/tasks",
            status="ConnectError",
        )
        == 1
    )


async def test_queue_depth_and_age_of_the_oldest_queued_dispatch(
    bridge: Harness,
) -> None:
    empty = await scrape(bridge)
    assert value(empty, "twill_bridge_queue_depth") == 0
    assert value(empty, "twill_bridge_queue_oldest_age_seconds") == 0

    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.deliver("issues", payloads.issues_labeled("twill-plan"))
    async with bridge.sessions() as session:
        first = min(d.id for d in await bridge.dispatches())
        await session.execute(
            update(Dispatch)
            .where(Dispatch.id == first)
            .values(created_at=utcnow() - timedelta(minutes=10))
        )
        await session.commit()
    bridge.app.state.metrics.reading.at = float("-inf")  # past the scrape cache

    metrics = await scrape(bridge)
    assert value(metrics, "twill_bridge_queue_depth") == 2
    assert 599 < value(metrics, "twill_bridge_queue_oldest_age_seconds") < 700
    by = "twill_bridge_dispatches"
    assert value(metrics, by, status="queued", intent="SWE") == 1
    assert value(metrics, by, status="queued", intent="PLAN") == 1
    assert value(metrics, by, status="reported", intent="ASK") == 0


async def test_dispatches_by_status_and_intent_after_the_work_is_done(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill-plan"))
    await bridge.drain()

    metrics = await scrape(bridge)
    by = "twill_bridge_dispatches"
    assert value(metrics, by, status="reported", intent="PLAN") == 1
    assert value(metrics, by, status="queued", intent="PLAN") == 0
    assert value(metrics, "twill_bridge_queue_depth") == 0
    assert value(metrics, "twill_bridge_reports_pending") == 0
    assert value(metrics, "twill_bridge_database_up") == 1


async def test_rate_budget_left_and_a_pause_after_a_429(make_harness) -> None:  # type: ignore[no-untyped-def]
    bridge: Harness = await make_harness(
        twill_rate_per_minute=100, twill_rate_per_hour=1000
    )
    before = await scrape(bridge)
    budget = "twill_bridge_twill_budget_remaining"
    # 98 % of the minute's figure and two fewer than the hour's (bridge/budget.py).
    assert value(before, budget, window="minute") == 98
    assert value(before, budget, window="hour") == 998
    assert value(before, "twill_bridge_twill_paused_seconds") == 0

    bridge.twill.fail(Fault(status=429, retry_after="120"))
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.app.state.metrics.reading.at = float("-inf")

    after = await scrape(bridge)
    assert value(after, budget, window="minute") == 97
    assert value(after, budget, window="hour") == 997
    assert 100 < value(after, "twill_bridge_twill_paused_seconds") <= 120
    assert (
        value(
            after,
            "twill_bridge_peer_requests_total",
            peer="twill",
            method="POST",
            route="/tasks",
            status="429",
        )
        == 1
    )


async def test_settled_statuses_are_recounted_at_most_once_a_minute(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await scrape(bridge)  # counts settled statuses: none yet
    await bridge.drain()
    bridge.app.state.metrics.reading.at = float("-inf")

    soon = await scrape(bridge)
    by = "twill_bridge_dispatches"
    assert value(soon, by, status="queued", intent="SWE") == 0  # live: exact
    assert (
        value(soon, by, status="reported", intent="SWE") == 0
    )  # settled: a minute old

    bridge.app.state.metrics.reading.at = float("-inf")
    bridge.app.state.metrics.reading.settled_at = float("-inf")
    later = await scrape(bridge)
    assert value(later, by, status="reported", intent="SWE") == 1


async def test_a_bearer_token_guards_metrics_when_set(make_harness) -> None:  # type: ignore[no-untyped-def]
    bridge: Harness = await make_harness(metrics_token=Secret("scrape-me-please"))

    missing = await bridge.client.get("/metrics")
    wrong = await bridge.client.get(
        "/metrics", headers={"Authorization": "Bearer nope"}
    )
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json()["error"]["code"] == "unauthorized"
    assert "scrape-me-please" not in missing.text

    metrics = await scrape(bridge, Authorization="Bearer scrape-me-please")
    assert value(metrics, "twill_bridge_database_up") == 1


async def test_each_app_keeps_its_own_counts(bridge: Harness, make_settings) -> None:  # type: ignore[no-untyped-def]
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    other = create_app(make_settings())
    async with other.router.lifespan_context(other):
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=other), base_url="http://other.test"
        )
        answer = await client.get("/metrics")
        await client.aclose()
    fresh = parse(answer.text)
    assert (
        value(fresh, "twill_bridge_deliveries_total", event="issues", outcome="queued")
        is None
    )
    mine = await scrape(bridge)
    assert (
        value(mine, "twill_bridge_deliveries_total", event="issues", outcome="queued")
        == 1
    )


async def test_a_scrape_answers_when_the_database_is_gone(bridge: Harness) -> None:
    from bridge.db import create_engine, sessionmaker

    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    unreachable = create_engine("postgresql+asyncpg://bridge:pw@127.0.0.1:1/none")
    bridge.app.state.sessions = sessionmaker(unreachable)
    try:
        metrics = await scrape(bridge)
    finally:
        await unreachable.dispose()
    assert value(metrics, "twill_bridge_database_up") == 0
    assert value(metrics, "twill_bridge_queue_depth") is None
    # The process's own counters still answer.
    assert (
        value(
            metrics, "twill_bridge_deliveries_total", event="issues", outcome="queued"
        )
        == 1
    )


async def test_dry_run_and_worker_loops_say_what_this_process_does(
    make_harness,
) -> None:  # type: ignore[no-untyped-def]
    dry: Harness = await make_harness(twill_api_key=None)
    metrics = await scrape(dry)
    assert value(metrics, "twill_bridge_dry_run") == 1
    assert value(metrics, "twill_bridge_worker_loops") == 0


async def test_github_failures_are_counted_with_their_status(bridge: Harness) -> None:
    bridge.github.fail(GitHubFault("POST", "/comments", 502))
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()

    metrics = await scrape(bridge)
    comment = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
    assert (
        value(
            metrics,
            "twill_bridge_peer_requests_total",
            peer="github",
            method="POST",
            route=comment,
            status="502",
        )
        == 1
    )
