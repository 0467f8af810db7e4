"""A live dispatch is composed by the worker at its checks, not on receipt.

The webhook stores the issue and trigger as they were (the snapshot); the
worker composes the create-task request from it after the checks, as it always
did. These tests pin that, where the checks add nothing (no .github/twill.yml,
not a pull request), the request Twill receives is exactly the one the webhook
used to compose and store on receipt, that the dashboard and the API say when a dispatch is not
composed yet, and that dry-run (where the checks never run) still stores its
request on receipt.
"""

from __future__ import annotations

from typing import Any

import pytest

from bridge.settings import Secret, Settings
from bridge.triggers import decide, rules_from
from bridge.webhooks import _meta, _work_for
from tests import payloads
from tests.conftest import Harness

TOKEN = "compose-api-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
UUID = "0b6f2c2e-55aa-4c7e-9a43-1f0e5d6c7b8a"

TRIGGERS = {
    "label": ("issues", payloads.issues_labeled("twill-plan")),
    "comment with instruction and agent": (
        "issue_comment",
        payloads.comment_created(
            "/twill fix the null check first --agent claude-code/sonnet"
        ),
    ),
    "label on an issue with an attachment": (
        "issues",
        payloads.issues_labeled(
            "twill",
            body=f"It crashes:\n\n![shot](https://github.com/user-attachments/assets/{UUID})",
        ),
    ),
    "ask comment on an issue without a body": (
        "issue_comment",
        payloads.comment_created("/twill ask why does it crash?", issue_body=None),
    ),
}


def composed_on_receipt(
    settings: Settings, event: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """The request as the webhook composed it on receipt before this change."""
    decision = decide(event, payload, rules_from(settings))
    dispatch, _ = _work_for(
        decision, _meta("expected", event, payload, 0), settings, compose=True
    )
    assert dispatch is not None
    return dispatch["request"]


@pytest.mark.parametrize("name", list(TRIGGERS))
async def test_the_worker_sends_what_the_webhook_used_to_compose(
    make_harness: Any, name: str
) -> None:
    bridge: Harness = await make_harness(admin_token=Secret(TOKEN))
    event, payload = TRIGGERS[name]
    expected = composed_on_receipt(bridge.settings, event, payload)

    answer = await bridge.deliver(event, payload)
    assert answer.status_code == 202
    [queued] = await bridge.dispatches()
    # Only the snapshot is stored on receipt; nothing is composed yet.
    assert (queued.request, queued.command, queued.files) == ({}, "", [])
    assert queued.snapshot is not None and not queued.composed
    assert queued.title == expected["title"]

    await bridge.drain()

    [sent] = bridge.twill.requests
    assert sent == expected
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "reported" and dispatch.composed
    assert dispatch.request == expected
    assert dispatch.command == expected["command"]
    assert dispatch.files == expected.get("files", [])


async def test_the_dashboard_says_a_queued_dispatch_is_not_composed_yet(
    make_harness: Any,
) -> None:
    bridge: Harness = await make_harness(admin_token=Secret(TOKEN))
    answer = await bridge.deliver("issues", payloads.issues_labeled("twill"))
    dispatch_id = answer.json()["dispatch"]

    detail = await bridge.client.get(f"/api/dispatches/{dispatch_id}", headers=BEARER)
    assert detail.json()["composed"] is False
    assert detail.json()["request"] == {}

    await bridge.drain()

    detail = await bridge.client.get(f"/api/dispatches/{dispatch_id}", headers=BEARER)
    assert detail.json()["composed"] is True
    assert detail.json()["request"]["command"] == detail.json()["command"] != ""


async def test_the_dispatch_page_notes_a_request_not_composed_yet(
    make_harness: Any,
) -> None:
    password = "a password for this test"
    bridge: Harness = await make_harness(admin_password=Secret(password))
    answer = await bridge.deliver("issues", payloads.issues_labeled("twill"))
    page_path = f"/admin/dispatches/{answer.json()['dispatch']}"
    form = await bridge.client.get("/admin/login")
    csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    await bridge.client.post("/admin/login", data={"csrf": csrf, "password": password})

    page = await bridge.client.get(page_path)
    assert page.status_code == 200 and 'id="not-composed"' in page.text

    await bridge.drain()
    page = await bridge.client.get(page_path)
    assert page.status_code == 200 and 'id="not-composed"' not in page.text
    assert "Instructions" in page.text or "asked for this on GitHub" in page.text


async def test_dry_run_still_stores_its_request_on_receipt(make_harness: Any) -> None:
    bridge: Harness = await make_harness(twill_api_key=None, admin_token=Secret(TOKEN))
    event, payload = TRIGGERS["comment with instruction and agent"]
    expected = composed_on_receipt(bridge.settings, event, payload)

    answer = await bridge.deliver(event, payload)
    assert answer.json()["outcome"] == "not_sent"
    [dispatch] = await bridge.dispatches()
    assert dispatch.dry_run and dispatch.composed
    assert dispatch.request == expected
    assert dispatch.command == expected["command"] != ""
    detail = await bridge.client.get(f"/api/dispatches/{dispatch.id}", headers=BEARER)
    assert detail.json()["composed"] is True
    assert detail.json()["request"] == expected
