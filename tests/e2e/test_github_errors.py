"""Telling the issue is a step of its own: GitHub's failures never touch Twill again."""

from __future__ import annotations

import itertools
import time

from tests import payloads
from tests.conftest import Harness
from tests.fakes.github import GitHubFault


async def deliver_and_drain(bridge: Harness, **fields) -> None:  # type: ignore[no-untyped-def]
    answer = await bridge.deliver("issues", payloads.issues_labeled("twill", **fields))
    assert answer.status_code == 202
    await bridge.drain()


async def test_rate_limited_comment_is_retried_later_without_a_second_task(
    bridge: Harness,
) -> None:
    bridge.github.fail(
        GitHubFault(
            "POST",
            "/comments",
            403,
            {"retry-after": "60"},
            "You have exceeded a secondary rate limit",
        )
    )
    await deliver_and_drain(bridge)
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "created" and dispatch.report_pending
    assert 55 <= (dispatch.report_next_at.timestamp() - time.time()) <= 60
    await bridge.make_due()
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "reported"
    assert len(bridge.twill.requests) == 1
    assert len(bridge.github.issue_comments(payloads.REPO, 12)) == 1


async def test_primary_rate_limit_waits_for_the_reset_time(bridge: Harness) -> None:
    reset = int(time.time()) + 600
    bridge.github.fail(
        GitHubFault(
            "POST",
            "/comments",
            403,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
            "API rate limit exceeded",
        )
    )
    await deliver_and_drain(bridge)
    [dispatch] = await bridge.dispatches()
    assert abs(dispatch.report_next_at.timestamp() - reset) < 2


async def test_429_from_github_is_retried(bridge: Harness) -> None:
    bridge.github.fail(GitHubFault("POST", "/comments", 429, {"retry-after": "5"}))
    await deliver_and_drain(bridge)
    await bridge.make_due()
    await bridge.drain()
    assert len(bridge.github.issue_comments(payloads.REPO, 12)) == 1


async def test_comment_whose_answer_was_lost_is_found_not_posted_twice(
    bridge: Harness,
) -> None:
    bridge.github.fail(GitHubFault("POST", "/comments", 502, apply_anyway=True))
    await deliver_and_drain(bridge)
    await bridge.make_due()
    await bridge.drain()
    [comment] = bridge.github.issue_comments(payloads.REPO, 12)
    [dispatch] = await bridge.dispatches()
    assert dispatch.comment_id == comment["id"] and dispatch.status == "reported"


async def test_revoked_token_is_refreshed_once(bridge: Harness) -> None:
    await deliver_and_drain(bridge)
    bridge.github.revoke_tokens()
    await deliver_and_drain(bridge, number=13)
    assert len(bridge.github.issue_comments(payloads.REPO, 13)) == 1
    assert bridge.github.token_requests == 2


async def test_installation_token_is_cached(bridge: Harness) -> None:
    await deliver_and_drain(bridge)
    await deliver_and_drain(bridge, number=13)
    assert bridge.github.token_requests == 1


async def test_delivery_without_installation_looks_it_up(bridge: Harness) -> None:
    answer = await bridge.deliver(
        "issues", payloads.issues_labeled("twill", installation=None)
    )
    assert answer.status_code == 202
    await bridge.drain()
    assert ("GET", "/repos/octo-org/widgets/installation") in bridge.github.calls
    [dispatch] = await bridge.dispatches()
    assert (
        dispatch.installation_id == payloads.INSTALLATION
        and dispatch.status == "reported"
    )


async def test_permanent_github_refusal_gives_up_and_keeps_the_task(
    bridge: Harness,
) -> None:
    bridge.github.fail(
        GitHubFault(
            "POST", "/comments", 403, message="Resource not accessible by integration"
        )
    )
    await deliver_and_drain(bridge)
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "created" and not dispatch.report_pending
    assert "Resource not accessible" in (dispatch.report_error or "")
    assert len(bridge.twill.requests) == 1


async def test_writes_to_one_installation_are_a_second_apart(make_harness) -> None:  # type: ignore[no-untyped-def]
    harness = await make_harness(github_write_interval_seconds=0.3)
    for number in (1, 2, 3):
        await harness.deliver("issues", payloads.issues_labeled("twill", number=number))
    await harness.drain()
    times = harness.github.write_times
    assert len(times) == 3
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(times))


async def test_writes_are_spaced_across_replicas_too(make_harness) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from bridge.app import write_pacer
    from bridge.github import GitHubClient

    harness = await make_harness(github_write_interval_seconds=0.3)
    s = harness.settings
    replicas = [
        GitHubClient(
            s.github_api_url,
            s.github_app_id,
            s.github_private_key.reveal(),
            transport=harness.github_transport,
            write_interval=0.3,
            pace=write_pacer(s, harness.sessions),
        )
        for _ in range(2)
    ]
    await asyncio.gather(
        *[
            c.create_comment(payloads.INSTALLATION, payloads.REPO, 12, f"hello {n}")
            for n in range(3)
            for c in replicas
        ]
    )
    for client in replicas:
        await client.aclose()
    times = sorted(harness.github.write_times)
    assert len(times) == 6
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
    # Unpaced, the two replicas' writes would land together; paced, they queue
    # about 0.3 s apart (arrival jitters on a loaded machine, hence the margins).
    assert min(gaps) >= 0.15, gaps
    assert times[-1] - times[0] >= 5 * 0.3 * 0.85, gaps
