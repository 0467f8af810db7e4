"""Bad input at the webhook: a clear answer, never a 500, nothing lost or invented."""

from __future__ import annotations

import json

import pytest

from bridge.signature import sign
from tests import payloads
from tests.conftest import WEBHOOK_SECRET, Harness, read_only_database


async def test_wrong_signature_is_401_json_and_records_nothing(bridge: Harness) -> None:
    answer = await bridge.deliver(
        "issues", payloads.issues_labeled(), secret="not-the-secret"
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "bad_signature"
    assert await bridge.deliveries() == []
    assert bridge.app.state.counters["refused_signatures"] == 1


@pytest.mark.parametrize(
    "header",
    [None, "", "bogus=1", "sha256=xyz", ("sha256=" + "é" * 64).encode()],
    ids=["missing", "empty", "bogus", "non-hex", "non-ascii"],
)
async def test_malformed_signature_headers_are_401(
    bridge: Harness, header: str | bytes | None
) -> None:
    answer = await bridge.deliver(
        "issues", payloads.issues_labeled(), headers={"X-Hub-Signature-256": header}
    )  # type: ignore[dict-item]
    assert answer.status_code == 401
    assert "error" in answer.json()


async def test_invalid_json_under_a_valid_signature_is_400(bridge: Harness) -> None:
    answer = await bridge.deliver("issues", None, body=b"{not json")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad_json"


@pytest.mark.parametrize(
    "body", [b"[]", b"null", b"42", b'"text"'], ids=["list", "null", "number", "string"]
)
async def test_json_that_is_not_an_object_is_400(bridge: Harness, body: bytes) -> None:
    answer = await bridge.deliver("issues", None, body=body)
    assert answer.status_code == 400


async def test_body_over_25_mib_is_413(bridge: Harness) -> None:
    big = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    answer = await bridge.deliver("issues", None, body=big)
    assert answer.status_code == 413


async def test_streamed_body_over_the_limit_without_length_is_413(
    bridge: Harness,
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(27):
            yield b" " * (1024 * 1024)

    answer = await bridge.client.post(
        "/api/github/webhooks",
        content=chunks(),
        headers={
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "big",
            "X-Hub-Signature-256": sign(WEBHOOK_SECRET, b""),
        },
    )
    assert answer.status_code == 413


async def test_missing_event_or_delivery_header_is_400(bridge: Harness) -> None:
    answer = await bridge.deliver(
        "issues", payloads.issues_labeled(), headers={"X-GitHub-Delivery": ""}
    )
    assert answer.status_code == 400


async def test_unknown_events_and_actions_are_2xx_with_a_reason(
    bridge: Harness,
) -> None:
    star = await bridge.deliver(
        "star",
        {
            "action": "created",
            "repository": payloads.repository(),
            "sender": payloads.user("x"),
        },
    )
    closed = await bridge.deliver(
        "issues", {**payloads.issues_labeled(), "action": "closed"}
    )
    assert (star.status_code, closed.status_code) == (200, 200)
    reasons = [d.reason for d in await bridge.deliveries()]
    assert reasons == [
        "the bridge does not act on 'star' events",
        "issues.closed is not a trigger",
    ]
    assert await bridge.dispatches() == []


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"action": "labeled"},
        {"action": "labeled", "issue": {"number": 1}},
        {"action": "labeled", "issue": None, "repository": []},
    ],
    ids=["empty", "no-issue", "no-repository", "wrong-types"],
)
async def test_valid_json_of_the_wrong_shape_is_ignored_with_a_reason(
    bridge: Harness, payload: dict
) -> None:  # type: ignore[type-arg]
    answer = await bridge.deliver("issues", payload)
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "ignored"


@pytest.mark.parametrize("body", [None, "", "   "], ids=["null", "empty", "blank"])
async def test_issue_with_null_or_empty_body_is_dispatched(
    bridge: Harness, body: str | None
) -> None:
    answer = await bridge.deliver("issues", payloads.issues_labeled(body=body))
    assert answer.status_code == 202
    await bridge.drain()
    [request] = bridge.twill.requests
    assert "(the issue has no description)" in request["command"]


async def test_get_on_the_webhook_is_405_json(bridge: Harness) -> None:
    answer = await bridge.client.get("/api/github/webhooks")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"


async def test_healthz(bridge: Harness) -> None:
    answer = await bridge.client.get("/healthz")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"


async def test_unicode_everywhere_verifies_and_dispatches(bridge: Harness) -> None:
    payload = payloads.issues_labeled(
        title="Crash 💥 on ünïcode — 漢字", body="Ça plante 🚀\n\u0000?"
    )
    raw_utf8 = json.dumps(payload, ensure_ascii=False).encode()
    escaped = json.dumps(
        payloads.issues_labeled(number=13, title="Crash 💥"), ensure_ascii=True
    ).encode()
    assert (await bridge.deliver("issues", None, body=raw_utf8)).status_code == 202
    assert (await bridge.deliver("issues", None, body=escaped)).status_code == 202
    await bridge.drain()
    titles = [r["title"] for r in bridge.twill.requests]
    assert titles == [
        "octo-org/widgets#12: Crash 💥 on ünïcode — 漢字",
        "octo-org/widgets#13: Crash 💥",
    ]


async def test_a_bad_signature_is_401_while_the_database_refuses_writes(
    bridge: Harness,
) -> None:
    async with read_only_database(bridge):
        answer = await bridge.deliver(
            "issues", payloads.issues_labeled(), secret="not-the-secret"
        )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "bad_signature"
    assert bridge.app.state.counters["refused_signatures"] == 1
