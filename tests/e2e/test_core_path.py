"""The core path through the real app: signed delivery → dispatch → Twill task → comment."""

from __future__ import annotations

import json

from tests import payloads
from tests.conftest import Harness


async def test_labeled_issue_becomes_one_task_and_one_comment(bridge: Harness) -> None:
    answer = await bridge.deliver(
        "issues", payloads.issues_labeled("twill-plan"), delivery_id="d-1"
    )

    assert answer.status_code == 202
    assert answer.json()["outcome"] == "queued"
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "queued"
    assert bridge.twill.requests == []  # the ack never waits on Twill

    await bridge.drain()

    [request] = bridge.twill.requests
    assert request["userIntent"] == "PLAN"
    assert request["title"] == "octo-org/widgets#12: Widgets crash on empty input"
    assert "Submit nothing" in request["command"]
    assert bridge.twill.contract_errors == []
    [comment] = bridge.github.issue_comments(payloads.REPO, 12)
    assert "https://twill.ai/tasks/task-1" in comment["body"]
    assert "PLAN" in comment["body"]
    [dispatch] = await bridge.dispatches()
    assert (dispatch.status, dispatch.twill_task_id, dispatch.twill_job_id) == (
        "reported",
        "tsk_1",
        "job_1",
    )
    assert dispatch.comment_id == comment["id"]
    assert bridge.github.problems == []


async def test_same_delivery_id_twice_is_one_task(bridge: Harness) -> None:
    payload = payloads.issues_labeled("twill")
    first = await bridge.deliver("issues", payload, delivery_id="same")
    second = await bridge.deliver("issues", payload, delivery_id="same")

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["outcome"] == "duplicate"
    await bridge.drain()
    assert len(bridge.twill.requests) == 1
    [delivery] = await bridge.deliveries()
    assert delivery.repeats == 1


async def test_same_trigger_under_two_delivery_ids_is_one_task(bridge: Harness) -> None:
    payload = payloads.issues_labeled("twill")
    await bridge.deliver("issues", payload, delivery_id="app-hook")
    second = await bridge.deliver("issues", payload, delivery_id="repo-hook")

    assert second.json()["outcome"] == "duplicate"
    await bridge.drain()
    assert len(bridge.twill.requests) == 1
    outcomes = [d.outcome for d in await bridge.deliveries()]
    assert outcomes == ["queued", "duplicate"]


async def test_opened_with_label_in_either_order_is_one_task(bridge: Harness) -> None:
    opened = payloads.issues_opened(labels=["twill"])
    labeled = payloads.issues_labeled("twill")
    await bridge.deliver("issues", labeled)
    await bridge.deliver("issues", opened)
    await bridge.deliver(
        "issues", payloads.issues_opened(labels=["twill-plan"], number=13)
    )
    await bridge.deliver("issues", payloads.issues_labeled("twill-plan", number=13))
    await bridge.drain()

    assert [
        (r["userIntent"], r["title"].split(":")[0]) for r in bridge.twill.requests
    ] == [
        ("SWE", "octo-org/widgets#12"),
        ("PLAN", "octo-org/widgets#13"),
    ]


async def test_relabeling_later_asks_again(bridge: Harness) -> None:
    await bridge.deliver(
        "issues", payloads.issues_labeled("twill", updated_at="2026-12-01T10:00:00Z")
    )
    await bridge.deliver(
        "issues", payloads.issues_labeled("twill", updated_at="2026-12-02T08:30:00Z")
    )
    await bridge.drain()
    assert len(bridge.twill.requests) == 2


async def test_slash_command_comment_dispatches_with_instruction_and_agent(
    bridge: Harness,
) -> None:
    body = "Thanks!\r\n\r\n/TWILL ask --agent codex/gpt-5.4 why does this crash?\r\n"
    answer = await bridge.deliver("issue_comment", payloads.comment_created(body))
    assert answer.status_code == 202
    await bridge.drain()

    [request] = bridge.twill.requests
    assert request["userIntent"] == "ASK"
    assert request["agent"] == "codex/gpt-5.4"
    assert request["command"].index("why does this crash?") < request["command"].index(
        "BEGIN ISSUE TEXT"
    )


async def test_ping_is_answered_and_recorded(bridge: Harness) -> None:
    answer = await bridge.deliver(
        "ping", {"zen": "Keep it logically awesome.", "hook_id": 1}
    )
    assert answer.status_code == 200
    [delivery] = await bridge.deliveries()
    assert (delivery.event, delivery.outcome, delivery.reason) == (
        "ping",
        "ignored",
        "ping",
    )


async def test_form_encoded_delivery_is_verified_over_raw_bytes(
    bridge: Harness,
) -> None:
    from urllib.parse import urlencode

    raw = urlencode({"payload": json.dumps(payloads.issues_labeled("twill"))}).encode()
    answer = await bridge.deliver(
        "issues",
        None,
        body=raw,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 202
    assert len(await bridge.dispatches()) == 1


async def test_dry_run_stores_exact_request_without_sending(make_harness) -> None:  # type: ignore[no-untyped-def]
    harness = await make_harness(twill_api_key=None)
    answer = await harness.deliver("issues", payloads.issues_labeled("twill-ask"))
    assert answer.json()["outcome"] == "not_sent"
    [dispatch] = await harness.dispatches()
    assert dispatch.status == "not_sent" and dispatch.dry_run
    assert dispatch.request["userIntent"] == "ASK"
    assert harness.twill.requests == [] and harness.github.calls == []
