"""Twill's answers, good and bad, as the worker meets them; what the issue is told."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.admin_ops import RetryRefused, requeue
from bridge.models import utcnow
from tests import payloads
from tests.conftest import TWILL_KEY, Harness
from tests.fakes.twill import Fault


async def labeled(bridge: Harness) -> None:
    answer = await bridge.deliver("issues", payloads.issues_labeled("twill"))
    assert answer.status_code == 202


def comment_body(bridge: Harness) -> str:
    [comment] = bridge.github.issue_comments(payloads.REPO, 12)
    return str(comment["body"])


async def test_400_is_permanent_and_explained_with_field_messages(
    bridge: Harness,
) -> None:
    bridge.twill.fail(
        Fault(
            status=400,
            body=b'{"error":{"code":"validation_error","message":"Invalid request body","details":{"issues":[{"field":"agent","message":"unknown agent"}]}}}',
        )
    )
    await labeled(bridge)
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "failed" and dispatch.attempts == 1
    assert "agent: unknown agent" in (dispatch.last_error or "")
    assert "Could not start a Twill task" in comment_body(bridge)
    assert "agent: unknown agent" in comment_body(bridge)


async def test_refused_key_says_an_admin_must_fix_it_and_never_shows_the_key(
    make_harness,
) -> None:  # type: ignore[no-untyped-def]
    harness = await make_harness()
    harness.twill.api_key = "a-different-key"
    await labeled(harness)
    await harness.drain()
    [dispatch] = await harness.dispatches()
    assert dispatch.status == "failed"
    body = comment_body(harness)
    assert "admin must fix" in body
    assert TWILL_KEY not in body and TWILL_KEY not in (dispatch.last_error or "")


async def test_429_waits_for_retry_after_then_succeeds(bridge: Harness) -> None:
    bridge.twill.fail(Fault(status=429, retry_after="30"))
    await labeled(bridge)
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "queued"
    wait = dispatch.next_attempt_at - utcnow()
    assert timedelta(seconds=25) < wait <= timedelta(seconds=30)
    # The pause is shared: a second worker (another replica) does not send either.
    assert 25 < await bridge.worker.budget.paused_for() <= 30  # type: ignore[union-attr]
    await bridge.deliver("issues", payloads.issues_labeled("twill", number=99))
    await bridge.drain(bridge.new_worker("replica-2"))
    assert len(bridge.twill.requests) == 1
    await bridge.make_due()
    await bridge.drain()
    assert [d.status for d in await bridge.dispatches()] == ["reported", "reported"]
    assert len(bridge.twill.tasks) == 2


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_gateway_errors_back_off_and_retry(bridge: Harness, status: int) -> None:
    bridge.twill.fail(Fault(status=status), Fault(status=status))
    await labeled(bridge)
    for _ in range(3):
        await bridge.drain()
        await bridge.make_due()
    [dispatch] = await bridge.dispatches()
    assert (dispatch.status, dispatch.attempts) == ("reported", 3)
    assert len(bridge.twill.tasks) == 1


async def test_connection_refused_is_retried(bridge: Harness) -> None:
    bridge.twill_transport.fail_next("connect")
    await labeled(bridge)
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "queued" and dispatch.next_attempt_at > utcnow()
    await bridge.make_due()
    await bridge.drain()
    assert len(bridge.twill.tasks) == 1


async def test_retries_run_out_and_the_issue_is_told(make_harness) -> None:  # type: ignore[no-untyped-def]
    harness = await make_harness(max_attempts=3)
    harness.twill.fail(*[Fault(status=503)] * 3)
    await labeled(harness)
    for _ in range(4):
        await harness.drain()
        await harness.make_due()
    [dispatch] = await harness.dispatches()
    assert (dispatch.status, dispatch.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in comment_body(harness)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda h: h.twill.fail(Fault(status=500, create_anyway=True)),
        lambda h: h.twill_transport.fail_next("read_timeout"),
        lambda h: h.twill_transport.fail_next("reset"),
        lambda h: h.twill.fail(Fault(status=201, body=b"<html>oops</html>")),
    ],
    ids=["500", "timeout-after-send", "reset-while-reading", "unreadable-201"],
)
async def test_unknown_outcome_is_uncertain_and_never_resent(
    bridge: Harness, break_it
) -> None:  # type: ignore[no-untyped-def]
    break_it(bridge)
    await labeled(bridge)
    for _ in range(3):
        await bridge.drain()
        await bridge.make_due()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "uncertain"
    assert len(bridge.twill_transport.requests) == 1
    assert "twill-bridge dispatches retry" in comment_body(bridge)


async def test_a_person_can_retry_an_uncertain_dispatch(bridge: Harness) -> None:
    bridge.twill.fail(Fault(status=500))
    await labeled(bridge)
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    await requeue(bridge.sessions, dispatch.id, "alice")
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "reported"
    assert "Twill task created" in comment_body(bridge)  # the same comment, edited
    reasons = [e.reason for e in await bridge.events(dispatch.id)]
    assert "retry requested by alice" in reasons
    with pytest.raises(RetryRefused, match="only failed, uncertain, not_sent"):
        await requeue(bridge.sessions, dispatch.id, "alice")


async def test_retries_are_bounded_by_age_too(make_harness) -> None:  # type: ignore[no-untyped-def]
    harness = await make_harness(max_retry_age_seconds=1)
    harness.twill.fail(Fault(status=503), Fault(status=503))
    await labeled(harness)
    await harness.drain()
    from sqlalchemy import update

    from bridge.models import Dispatch

    async with harness.sessions() as session:  # the dispatch is now two seconds old
        await session.execute(
            update(Dispatch).values(created_at=utcnow() - timedelta(seconds=2))
        )
        await session.commit()
    await harness.make_due()
    await harness.drain()
    [dispatch] = await harness.dispatches()
    assert (dispatch.status, dispatch.attempts) == ("failed", 2)
    assert "gave up after 2 attempts" in (dispatch.last_error or "")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (502, b'{"error":"Bad gateway"}', "queued"),
        (401, b'["nope"]', "failed"),
        (400, b"null", "failed"),
        (503, b"<html>busy</html>", "queued"),
    ],
    ids=["502-error-is-a-string", "401-body-is-a-list", "400-null", "503-html"],
)
async def test_odd_error_bodies_never_crash_the_worker(
    bridge: Harness, status: int, body: bytes, expected: str
) -> None:
    bridge.twill.fail(Fault(status=status, body=body))
    await labeled(bridge)
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == expected


async def test_an_absurd_retry_after_is_bounded(bridge: Harness) -> None:
    bridge.twill.fail(Fault(status=429, retry_after="99999999999999"))
    await labeled(bridge)
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "queued"
    assert dispatch.next_attempt_at - utcnow() <= timedelta(days=1)
