"""Following the task from the issue: status, plan, answer, pull requests,
follow-ups, cancel, and a Twill without these endpoints.

The fake Twill walks each job through PENDING, IN_PROGRESS and a terminal
status as a test tells it to, answering in its older or newer shape.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

import pytest
from sqlalchemy import update

from bridge.models import Dispatch, utcnow
from tests import payloads
from tests.conftest import Harness
from tests.fakes.twill import Fault

ISSUE = "/repos/octo-org/widgets/issues/12"
PR = {
    "repoFullName": "octo-org/widgets",
    "prNumber": 31,
    "prUrl": "https://github.com/octo-org/widgets/pull/31",
    "title": "Guard against empty input",
    "state": "open",
}


async def poll_now(bridge: Harness) -> int:
    """Make every followed task due for a status read, then drain the worker."""
    async with bridge.sessions() as session:
        await session.execute(
            update(Dispatch)
            .where(Dispatch.follow == "active")
            .values(poll_next_at=utcnow())
        )
        await session.commit()
    await bridge.make_due()
    return await bridge.drain()


def tracking(bridge: Harness, number: int = 12) -> dict[str, Any]:
    """The tracking comment of the issue's first dispatch."""
    found = [
        c
        for c in bridge.github.issue_comments(payloads.REPO, number)
        if "dispatch=1 -->" in c["body"]
    ]
    assert len(found) == 1, found
    return found[0]


def reads(bridge: Harness) -> list[str]:
    return [path for method, path in bridge.twill.calls if method == "GET"]


@pytest.mark.parametrize("shape", ["older", "newer"])
async def test_the_comment_follows_the_job_to_its_pull_request(
    bridge: Harness, shape: str
) -> None:
    bridge.twill.shape = shape
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    first = tracking(bridge)
    assert "waiting to start" in first["body"] and "`PENDING`" in first["body"]

    bridge.twill.advance("tsk_1", "IN_PROGRESS", startedAt="2026-12-01T10:00:05Z")
    await poll_now(bridge)
    working = tracking(bridge)
    assert working["id"] == first["id"]
    assert "Twill is working on it" in working["body"]
    assert "started 2026-12-01 10:00 UTC" in working["body"]

    bridge.twill.advance(
        "tsk_1",
        "COMPLETED",
        completedAt="2026-12-01T10:20:05Z",
        prs=[PR],
        finalAnswer="Opened a pull request that guards against empty input.",
    )
    await poll_now(bridge)
    done = tracking(bridge)["body"]
    assert "✅ Twill finished" in done and "took 20 min" in done
    assert "(https://github.com/octo-org/widgets/pull/31)" in done
    assert "Guard against empty input" in done
    if shape == "newer":
        assert "(open)" in done and "Opened a pull request that guards" in done
    else:  # the older shape has neither a PR state nor a final answer
        assert "(open)" not in done and "**Summary**" not in done
    assert (f"{ISSUE}/reactions", "hooray") in bridge.github.reactions

    # A job that has ended is not read again.
    before = len(reads(bridge))
    await poll_now(bridge)
    assert len(reads(bridge)) == before
    [dispatch] = await bridge.dispatches()
    assert dispatch.follow == "done" and dispatch.poll_next_at is None


async def test_a_failed_job_shows_its_reason_and_a_thumbs_down(bridge: Harness) -> None:
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill", comment_id=901)
    )
    await bridge.drain()
    bridge.twill.advance("tsk_1", "FAILED", error="The test suite did not build.")
    await poll_now(bridge)
    body = tracking(bridge)["body"]
    assert "❌ Twill's run failed" in body
    assert "Reason: The test suite did not build." in body
    assert bridge.github.reactions[-1] == (
        "/repos/octo-org/widgets/issues/comments/901/reactions",
        "-1",
    )


async def test_a_plan_run_shows_the_plan(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill-plan"))
    await bridge.drain()
    plan = "1. Validate input in `Widget.submit`\n2. Add a test for @empty input"
    bridge.twill.advance("tsk_1", "COMPLETED", plan=plan, planOutcome="ready")
    await poll_now(bridge)
    body = tracking(bridge)["body"]
    assert "**Plan** (ready)" in body
    assert "1. Validate input in `Widget.submit`" in body
    # The agent's text cannot ping anyone.
    assert "@\u200bempty" in body and "@empty" not in body


async def test_a_long_answer_gets_a_comment_of_its_own_once(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill-ask"))
    await bridge.drain()
    answer = "Because the parser never sees the empty string. " * 120
    bridge.twill.advance("tsk_1", "COMPLETED", finalAnswer=answer)
    await poll_now(bridge)
    comments = bridge.github.issue_comments(payloads.REPO, 12)
    [own] = [c for c in comments if "answer=1:job_1" in c["body"]]
    assert answer.strip() in own["body"]
    body = tracking(bridge)["body"]
    assert f"#issuecomment-{own['id']}" in body and answer[:200] not in body

    # Told again (a later poll, a retry): no second answer comment.
    async with bridge.sessions() as session:
        await session.execute(
            update(Dispatch).values(report_pending=True, report_next_at=utcnow())
        )
        await session.commit()
    await bridge.drain()
    assert len(bridge.github.issue_comments(payloads.REPO, 12)) == len(comments)


async def test_a_short_answer_stays_in_the_tracking_comment(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill-ask"))
    await bridge.drain()
    bridge.twill.advance("tsk_1", "COMPLETED", finalAnswer="It is the cache.")
    await poll_now(bridge)
    assert len(bridge.github.issue_comments(payloads.REPO, 12)) == 1
    assert "**Answer**\n\nIt is the cache." in tracking(bridge)["body"]


async def test_a_follow_up_goes_to_the_running_task(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.twill.advance("tsk_1", "IN_PROGRESS")
    await poll_now(bridge)

    await bridge.deliver(
        "issue_comment",
        payloads.comment_created("/twill also cover the CLI", comment_id=902),
    )
    await bridge.drain()
    assert len(bridge.twill.tasks) == 1
    [message] = bridge.twill.messages
    assert message["task"] == "tsk_1"
    assert "also cover the CLI" in message["message"]
    assert "userIntent" not in message  # the task keeps its intent
    follow_up = "/repos/octo-org/widgets/issues/comments/902/reactions"
    assert (follow_up, "eyes") in bridge.github.reactions
    assert (follow_up, "rocket") in bridge.github.reactions
    # No comment of its own: the task's comment tells it.
    assert len(bridge.github.issue_comments(payloads.REPO, 12)) == 1
    body = tracking(bridge)["body"]
    assert "Follow-up from @maintainer (job `job_1000`)" in body
    assert "waiting to start" in body

    # The follow-up's job ends: the 🎉 goes on the follow-up, not on the issue.
    bridge.twill.advance("tsk_1", "COMPLETED")
    await poll_now(bridge)
    assert (follow_up, "hooray") in bridge.github.reactions
    assert (f"{ISSUE}/reactions", "hooray") not in bridge.github.reactions


async def test_a_follow_up_can_name_an_intent_and_a_model(bridge: Harness) -> None:
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created("/twill --agent claude-code/sonnet", comment_id=903),
    )
    await bridge.drain()
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created(
            "/twill plan --agent claude-code/opus first write the plan", comment_id=904
        ),
    )
    await bridge.drain()
    [message] = bridge.twill.messages
    assert message["userIntent"] == "PLAN"
    assert message["agent"] == "claude-code/opus"


async def test_a_follow_up_cannot_change_the_provider(bridge: Harness) -> None:
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created("/twill --agent claude-code/sonnet", comment_id=905),
    )
    await bridge.drain()
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created(
            "/twill --agent open-code/gpt-5 try it this way", comment_id=906
        ),
    )
    await bridge.drain()
    assert bridge.twill.messages == [] and len(bridge.twill.tasks) == 1
    reply = bridge.github.issue_comments(payloads.REPO, 12)[-1]["body"]
    assert "not its provider" in reply


async def test_new_always_starts_another_task(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created("/twill new plan try another way", comment_id=907),
    )
    await bridge.drain()
    assert bridge.twill.messages == []
    assert [t["request"]["userIntent"] for t in bridge.twill.tasks] == ["SWE", "PLAN"]


async def test_after_the_task_ended_a_command_starts_a_new_task(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.twill.advance("tsk_1", "COMPLETED")
    await poll_now(bridge)
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill add docs", comment_id=908)
    )
    await bridge.drain()
    assert bridge.twill.messages == [] and len(bridge.twill.tasks) == 2


async def test_a_bare_command_while_running_explains_the_choices(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill", comment_id=909)
    )
    await bridge.drain()
    assert len(bridge.twill.tasks) == 1 and bridge.twill.messages == []
    reply = bridge.github.issue_comments(payloads.REPO, 12)[-1]["body"]
    assert "still working on" in reply and "`/twill new`" in reply


async def test_a_follow_up_right_after_the_label_waits_for_its_task(
    bridge: Harness,
) -> None:
    # Both arrive before the worker runs: the comment must meet the label's task.
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created("/twill and mind the CLI", comment_id=910),
    )
    await bridge.drain()
    await bridge.make_due()
    await bridge.drain()
    assert len(bridge.twill.tasks) == 1
    assert [m["task"] for m in bridge.twill.messages] == ["tsk_1"]


async def test_cancel_stops_the_running_task_and_says_so(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill cancel", comment_id=911)
    )
    await bridge.drain()
    assert bridge.twill.cancelled == ["tsk_1"]
    comments = bridge.github.issue_comments(payloads.REPO, 12)
    said = [c for c in comments if "Cancelled" in c["body"]]
    assert len(said) == 1 and "with `/twill cancel`" in said[0]["body"]
    assert "https://twill.ai/tasks/task-1" in said[0]["body"]

    await poll_now(bridge)
    body = tracking(bridge)["body"]
    assert "🛑 Twill's run was cancelled" in body
    assert "Cancel asked by @maintainer" in body
    [task_dispatch, _] = await bridge.dispatches()
    assert task_dispatch.follow == "done"


async def test_cancel_with_nothing_running_says_so(bridge: Harness) -> None:
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill cancel", comment_id=912)
    )
    await bridge.drain()
    assert bridge.twill.cancelled == [] and bridge.twill.tasks == []
    [reply] = bridge.github.issue_comments(payloads.REPO, 12)
    assert "no running Twill task on this issue to cancel" in reply["body"]


async def test_cancel_needs_the_same_permission_as_a_trigger(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.github.roles["stranger"] = "read"
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created("/twill cancel", sender="stranger", comment_id=913),
    )
    await bridge.drain()
    assert bridge.twill.cancelled == []


def unlabeled(label: str) -> dict[str, Any]:
    # The label comes off now (the issue's updated_at is when).
    now = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = payloads.issues_labeled(label, labels=[], updated_at=now)
    return {**payload, "action": "unlabeled"}


async def test_removing_the_label_does_nothing_by_default(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    answer = await bridge.deliver("issues", unlabeled("twill"))
    assert answer.json()["outcome"] == "ignored"
    await bridge.drain()
    assert bridge.twill.cancelled == []


async def test_removing_the_label_can_cancel_its_task(make_harness: Any) -> None:
    bridge = await make_harness(on_unlabel="cancel")
    await bridge.deliver("issues", payloads.issues_labeled("twill-plan"))
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill new", comment_id=914)
    )
    await bridge.drain()
    await bridge.deliver("issues", unlabeled("twill-plan"))
    await bridge.drain()
    # Only the task that label started.
    assert bridge.twill.cancelled == ["tsk_1"]
    said = [
        c
        for c in bridge.github.issue_comments(payloads.REPO, 12)
        if "Cancelled" in c["body"]
    ]
    assert "by removing the label `twill-plan`" in said[0]["body"]


@pytest.mark.parametrize("status", [404, 405])
async def test_without_the_status_endpoints_dispatching_goes_on(
    bridge: Harness, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    bridge.twill.missing = status
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    bridge.twill.missing = None  # the create itself works
    await bridge.drain()
    bridge.twill.missing = status
    caplog.set_level(logging.WARNING, logger="twill_bridge")
    await poll_now(bridge)
    [first] = await bridge.dispatches()
    assert first.follow == "unavailable" and first.status == "reported"
    assert "does not report task status" in tracking(bridge)["body"]

    # Later tasks are not followed, and `/twill <text>` starts a new task.
    bridge.twill.missing = None
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill try again", comment_id=915)
    )
    await bridge.drain()
    await poll_now(bridge)
    assert len(bridge.twill.tasks) == 2 and bridge.twill.messages == []
    assert [d.follow for d in await bridge.dispatches()] == [
        "unavailable",
        "unavailable",
    ]
    assert reads(bridge) == []
    said = [r for r in caplog.records if "task status unavailable" in r.getMessage()]
    assert len(said) == 1


async def test_a_follow_up_the_task_no_longer_takes_starts_a_new_task(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.twill.deleted.add("tsk_1")
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill go on", comment_id=916)
    )
    await bridge.drain()
    await bridge.make_due()
    await bridge.drain()
    assert len(bridge.twill.tasks) == 2
    first, follow_up = await bridge.dispatches()
    assert first.follow == "gone"
    assert follow_up.action == "create" and follow_up.twill_task_id == "tsk_2"


async def test_a_failed_status_read_is_tried_again_later(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.twill.read_faults.append(Fault(status=503))
    await poll_now(bridge)
    [dispatch] = await bridge.dispatches()
    assert dispatch.follow == "active" and dispatch.poll_next_at > utcnow()
    bridge.twill.advance("tsk_1", "IN_PROGRESS")
    await poll_now(bridge)
    assert "working on it" in tracking(bridge)["body"]


async def test_following_stops_after_the_maximum_age(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    async with bridge.sessions() as session:
        from datetime import timedelta

        await session.execute(
            update(Dispatch).values(created_at=utcnow() - timedelta(hours=49))
        )
        await session.commit()
    await poll_now(bridge)
    [dispatch] = await bridge.dispatches()
    assert dispatch.follow == "expired" and dispatch.poll_next_at is None
    assert "stopped following this task after 48 h" in tracking(bridge)["body"]


async def test_status_reads_back_off(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    waits = []
    for _ in range(12):
        await poll_now(bridge)
        [dispatch] = await bridge.dispatches()
        waits.append((dispatch.poll_next_at - utcnow()).total_seconds())
    assert 35 <= waits[0] <= 55  # 30 s, then half again: 45 s ± a tenth
    assert all(later >= earlier * 0.8 for earlier, later in itertools.pairwise(waits))
    assert 500 <= waits[-1] <= 661  # capped at BRIDGE_POLL_MAX_SECONDS (600 s)


async def test_reading_50_tasks_never_pushes_creates_past_the_limit(
    make_harness: Any,
) -> None:
    # Twill's limits on a clock 20 times fast: "a minute" is 3 s. The bridge is
    # told the same figures in real minutes.
    scale = 0.05
    per_minute = 60
    bridge = await make_harness(
        twill_rate_per_minute=int(per_minute / scale),
        poll_first_seconds=1,
        poll_max_seconds=1,
        worker_poll_seconds=0.01,
    )
    bridge.twill.per_minute, bridge.twill.window_scale = per_minute, scale

    async def run_until(count: int, then: float = 0.0) -> None:
        workers = [bridge.new_worker(f"load-{n}") for n in range(3)]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        deadline = time.monotonic() + 60
        while len(bridge.twill.tasks) < count and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await asyncio.sleep(then)
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)

    for n in range(50):
        await bridge.deliver("issues", payloads.issues_labeled("twill", number=100 + n))
    await run_until(50)

    # 30 new triggers, checked and due, while all 50 tasks are due for a read.
    for n in range(30):
        await bridge.deliver("issues", payloads.issues_labeled("twill", number=200 + n))
    while await bridge.worker.prepare_one():
        pass
    await poll_now_without_draining(bridge)
    await run_until(80, then=3.0)

    assert bridge.twill.rejected_429 == 0
    assert len(bridge.twill.tasks) == 80 and len(bridge.twill.requests) == 80
    calls = bridge.twill.calls
    creates = [
        i
        for i, (m, path) in enumerate(calls)
        if m == "POST" and path.endswith("/tasks")
    ]
    burst = creates[50:]
    # No read went out while a create was due...
    assert not [c for c in calls[burst[0] : burst[-1]] if c[0] == "GET"]
    # ...and reading went on afterwards, within its share of each minute.
    read_times = [
        t
        for (m, _), t in zip(calls, bridge.twill.call_times, strict=True)
        if m == "GET"
    ]
    assert len(read_times) >= 5
    window = 60 * scale
    busiest = max(sum(1 for t in read_times if s <= t < s + window) for s in read_times)
    assert busiest <= per_minute * 0.25 + 1


async def poll_now_without_draining(bridge: Harness) -> None:
    async with bridge.sessions() as session:
        await session.execute(
            update(Dispatch)
            .where(Dispatch.follow == "active")
            .values(poll_next_at=utcnow())
        )
        await session.commit()


async def test_a_cancel_twill_refuses_is_reported(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.twill.missing = 405
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill cancel", comment_id=917)
    )
    await bridge.drain()
    said = [
        c
        for c in bridge.github.issue_comments(payloads.REPO, 12)
        if "Could not cancel" in c["body"]
    ]
    assert len(said) == 1 and "HTTP 405" in said[0]["body"]
    assert (
        "/repos/octo-org/widgets/issues/comments/917/reactions",
        "confused",
    ) in bridge.github.reactions


async def test_a_cancel_whose_answer_was_lost_is_sent_again(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.twill.fail(Fault(status=500))
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill cancel", comment_id=918)
    )
    await bridge.drain()
    await bridge.make_due()
    await bridge.drain()
    # Cancelling twice does no harm, so an unknown outcome is simply retried.
    assert bridge.twill.cancelled == ["tsk_1"]
    assert (await bridge.dispatches())[1].status == "reported"


async def test_a_follow_up_whose_answer_was_lost_is_not_sent_again(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.twill.fail(Fault(status=500, create_anyway=True))
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill go on", comment_id=919)
    )
    await bridge.drain()
    await bridge.make_due()
    await bridge.drain()
    assert len(bridge.twill.messages) == 1
    _, follow_up = await bridge.dispatches()
    assert follow_up.status == "uncertain"
    said = [
        c
        for c in bridge.github.issue_comments(payloads.REPO, 12)
        if "Not sure whether the follow-up reached Twill" in c["body"]
    ]
    assert len(said) == 1


async def test_a_cancel_in_dry_run_stores_no_create_request(make_harness: Any) -> None:
    bridge = await make_harness(force_dry_run=True)
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill cancel", comment_id=920)
    )
    [dispatch] = await bridge.dispatches()
    assert dispatch.action == "cancel" and dispatch.request == {}
    assert dispatch.status == "not_sent"


async def test_one_task_twill_lost_does_not_stop_following_the_others(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill", number=12))
    await bridge.deliver("issues", payloads.issues_labeled("twill", number=13))
    await bridge.drain()
    bridge.twill.deleted.add("tsk_1")
    await poll_now(bridge)
    lost, kept = await bridge.dispatches()
    assert (lost.follow, lost.poll_next_at) == ("gone", None)
    assert kept.follow == "active"
    assert "Twill no longer has this task" in tracking(bridge)["body"]
    # Follow-ups on the other issue still go to its task.
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created("/twill more", comment_id=930, number=13),
    )
    await bridge.drain()
    assert [m["task"] for m in bridge.twill.messages] == ["tsk_2"]


async def test_tasks_are_read_again_once_the_unavailable_mark_runs_out(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    bridge.twill.missing = 405
    await poll_now(bridge)
    bridge.twill.missing = None
    await bridge.deliver("issues", payloads.issues_labeled("twill", number=13))
    await bridge.drain()
    first, second = await bridge.dispatches()
    assert first.follow == second.follow == "unavailable"
    assert second.poll_next_at is not None and second.poll_next_at > utcnow()

    # An hour later (moved back, not waited for), both are read and followed again.
    from datetime import timedelta

    from bridge.models import BridgeFlag

    async with bridge.sessions() as session:
        hour_ago = utcnow() - timedelta(hours=1, seconds=1)
        await session.execute(update(BridgeFlag).values(updated_at=hour_ago))
        await session.execute(update(Dispatch).values(poll_next_at=utcnow()))
        await session.commit()
    bridge.twill.advance("tsk_1", "IN_PROGRESS")
    await bridge.drain()
    assert [d.follow for d in await bridge.dispatches()] == ["active", "active"]
    assert "working on it" in tracking(bridge)["body"]
    assert "does not report task status" not in tracking(bridge)["body"]


async def test_a_follow_up_restarts_the_age_limit(bridge: Harness) -> None:
    from datetime import timedelta

    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    async with bridge.sessions() as session:
        await session.execute(
            update(Dispatch).values(created_at=utcnow() - timedelta(hours=47))
        )
        await session.commit()
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill keep going", comment_id=931)
    )
    await bridge.drain()
    async with bridge.sessions() as session:
        await session.execute(
            update(Dispatch).values(created_at=utcnow() - timedelta(hours=49))
        )
        await session.commit()
    await poll_now(bridge)
    first, _ = await bridge.dispatches()
    assert first.follow == "active"


async def test_a_lone_word_answers_a_running_task(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill-plan"))
    await bridge.drain()
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill approve", comment_id=940)
    )
    await bridge.drain()
    [message] = bridge.twill.messages
    assert message["message"].endswith("\n\napprove")


async def test_a_lone_word_with_no_task_running_gets_the_usage_once(
    bridge: Harness,
) -> None:
    payload = payloads.comment_created("/twill approve", comment_id=941)
    await bridge.deliver("issue_comment", payload)
    await bridge.deliver("issue_comment", payloads.with_changes(payload, "/twill"))
    await bridge.drain()
    assert bridge.twill.tasks == [] and bridge.twill.messages == []
    [reply] = bridge.github.issue_comments(payloads.REPO, 12)
    assert "Unknown word 'approve'" in reply["body"]


async def test_in_dry_run_a_lone_word_is_answered_at_once(make_harness: Any) -> None:
    bridge = await make_harness(force_dry_run=True)
    answer = await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill approve", comment_id=942)
    )
    assert answer.json()["outcome"] == "replied"


async def test_an_unexpected_failure_telling_the_issue_is_recorded_not_looped(
    bridge: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bridge.worker as worker_module

    def broken(*args: Any, **kwargs: Any) -> str:
        raise TypeError("a bug")

    monkeypatch.setattr(worker_module, "tracking_comment", broken)
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()  # would never end if the report were tried at every step
    [dispatch] = await bridge.dispatches()
    assert dispatch.report_pending is False
    assert "unexpectedly (TypeError)" in (dispatch.report_error or "")


async def test_with_following_off_cancel_still_works(make_harness: Any) -> None:
    bridge = await make_harness(follow_tasks=False, on_unlabel="cancel")
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill more tests", comment_id=950)
    )
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill cancel", comment_id=951)
    )
    await bridge.drain()
    await bridge.make_due()
    await bridge.drain()
    # No follow-ups without following: the comment started a task of its own.
    assert bridge.twill.messages == [] and len(bridge.twill.tasks) == 2
    assert bridge.twill.cancelled == ["tsk_2"]
    await bridge.deliver("issues", unlabeled("twill"))
    await bridge.drain()
    assert bridge.twill.cancelled == ["tsk_2", "tsk_1"]


async def test_a_late_cancel_does_not_stop_a_task_started_after_it(
    bridge: Harness,
) -> None:
    from datetime import timedelta

    now = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    await bridge.deliver("issues", payloads.issues_labeled("twill", updated_at=now))
    await bridge.drain()
    # A cancel written an hour ago, arriving only now (a redelivery, a slow hook).
    late = payloads.comment_created("/twill cancel", comment_id=960)
    hour_ago = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    late["comment"]["created_at"] = hour_ago
    await bridge.deliver("issue_comment", late)
    await bridge.drain()
    assert bridge.twill.cancelled == []
    reply = bridge.github.issue_comments(payloads.REPO, 12)[-1]["body"]
    assert "no running Twill task on this issue to cancel" in reply


async def test_a_redelivered_trigger_overtaken_by_a_later_one_is_dropped(
    bridge: Harness,
) -> None:
    from datetime import timedelta

    from bridge.models import Redelivery

    # The maintainer's first /twill plan was lost; they asked again, which worked.
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill plan", comment_id=961)
    )
    await bridge.drain()
    lost = payloads.comment_created("/twill plan", comment_id=962)
    lost["comment"]["created_at"] = (utcnow() - timedelta(hours=2)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    async with bridge.sessions() as session:
        session.add(
            Redelivery(
                guid="lost-guid",
                hook_delivery_id=1,
                event="issue_comment",
                outcome="requested",
                attempts=1,
            )
        )
        await session.commit()
    await bridge.deliver("issue_comment", lost, delivery_id="lost-guid")
    await bridge.drain()
    assert len(bridge.twill.tasks) == 1 and bridge.twill.messages == []
    [delivery] = [d for d in await bridge.deliveries() if d.delivery_id == "lost-guid"]
    assert delivery.outcome == "ignored" and "later trigger" in delivery.reason


async def test_a_lone_word_edited_into_a_command_dispatches_once(
    bridge: Harness,
) -> None:
    payload = payloads.comment_created("/twill implment", comment_id=970)
    await bridge.deliver("issue_comment", payload)
    await bridge.drain()
    assert "Unknown word" in bridge.github.issue_comments(payloads.REPO, 12)[-1]["body"]
    fixed = payloads.with_changes(
        payloads.comment_created("/twill plan", comment_id=970), "/twill implment"
    )
    answer = await bridge.deliver("issue_comment", fixed)
    assert answer.json()["outcome"] == "queued"
    await bridge.drain()
    assert [t["request"]["userIntent"] for t in bridge.twill.tasks] == ["PLAN"]


@pytest.mark.parametrize("label", ["twill-plan", "twill-ask"])
async def test_an_ended_plan_or_answer_takes_follow_ups(
    bridge: Harness, label: str
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled(label))
    await bridge.drain()
    bridge.twill.advance("tsk_1", "COMPLETED", plan="1. Do it")
    await poll_now(bridge)
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill approve", comment_id=971)
    )
    await bridge.drain()
    assert len(bridge.twill.tasks) == 1
    assert [m["task"] for m in bridge.twill.messages] == ["tsk_1"]
    # The task is followed again, through its new job.
    first = (await bridge.dispatches())[0]
    assert first.follow == "active" and first.twill_job_id == "job_1000"


async def test_a_bare_command_after_a_plan_asks_anew(bridge: Harness) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("twill-plan"))
    await bridge.drain()
    bridge.twill.advance("tsk_1", "COMPLETED", plan="1. Do it")
    await poll_now(bridge)
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill", comment_id=972)
    )
    await bridge.drain()
    assert bridge.twill.messages == [] and len(bridge.twill.tasks) == 2


async def test_a_delayed_cancel_stops_the_task_it_was_written_for(
    bridge: Harness,
) -> None:
    from datetime import timedelta

    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    # The cancel was written now; a newer task starts before its checks run.
    cancel = payloads.comment_created("/twill cancel", comment_id=973)
    async with bridge.sessions() as session:
        await session.execute(
            update(Dispatch).values(created_at=utcnow() - timedelta(minutes=5))
        )
        await session.commit()
    newer = payloads.comment_created("/twill new plan", comment_id=974)
    later = (utcnow() + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    newer["comment"]["created_at"] = later
    await bridge.deliver("issue_comment", newer)
    await bridge.drain()
    await bridge.deliver("issue_comment", cancel)
    await bridge.drain()
    assert bridge.twill.cancelled == ["tsk_1"]


async def test_only_acted_on_later_triggers_overtake_a_redelivery(
    bridge: Harness,
) -> None:
    from datetime import timedelta

    from bridge.models import Redelivery

    bridge.github.roles["stranger"] = "read"
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created(
            "/twill please fix", sender="stranger", comment_id=975
        ),
    )
    await bridge.drain()  # denied: it overtakes nothing
    lost = payloads.issues_labeled(
        "twill",
        updated_at=(utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    async with bridge.sessions() as session:
        session.add(
            Redelivery(
                guid="lost-label",
                hook_delivery_id=2,
                event="issues",
                outcome="requested",
                attempts=1,
            )
        )
        await session.commit()
    await bridge.deliver("issues", lost, delivery_id="lost-label")
    await bridge.drain()
    assert len(bridge.twill.tasks) == 1


async def test_a_201_with_a_long_status_keeps_the_task(bridge: Harness) -> None:
    original = bridge.twill._make_task

    def long_status(body: dict[str, Any]) -> dict[str, Any]:
        answer = original(body)
        answer["job"]["status"] = "WAITING_FOR_SANDBOX_ALLOCATION"
        return answer

    bridge.twill._make_task = long_status  # type: ignore[method-assign]
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "reported" and dispatch.twill_task_id == "tsk_1"
    assert dispatch.twill_job_status == "WAITING_FOR_SANDBOX_"
