"""Hostile and odd input through the real app: a clear answer every time, never a 500."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

import pytest

from tests import payloads
from tests.conftest import WEBHOOK_SECRET, Harness


def without(path: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(payloads.issues_labeled("twill"))
    node = data
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return data


def replaced(path: list[str], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(payloads.issues_labeled("twill"))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


SHAPES: list[tuple[str, str, Any, set[int], str | None]] = [
    ("no-issue", "issues", without(["issue"]), {200}, "ignored"),
    ("no-repository", "issues", without(["repository"]), {200}, "ignored"),
    ("no-sender", "issues", without(["sender"]), {200}, "ignored"),
    ("no-label", "issues", without(["label"]), {200}, "ignored"),
    ("label-null", "issues", replaced(["label"], None), {200}, "ignored"),
    ("label-name-number", "issues", replaced(["label", "name"], 42), {200}, "ignored"),
    (
        "issue-number-text",
        "issues",
        replaced(["issue", "number"], "12"),
        {200},
        "ignored",
    ),
    ("issue-body-missing", "issues", without(["issue", "body"]), {202}, "queued"),
    ("issue-body-number", "issues", replaced(["issue", "body"], 5), {202}, "queued"),
    ("issue-title-null", "issues", replaced(["issue", "title"], None), {202}, "queued"),
    (
        "labels-not-a-list",
        "issues",
        replaced(["issue", "labels"], "twill"),
        {202},
        "queued",
    ),
    ("user-null", "issues", replaced(["issue", "user"], None), {202}, "queued"),
    ("action-null", "issues", replaced(["action"], None), {200}, "ignored"),
    (
        "comment-null",
        "issue_comment",
        {**payloads.comment_created("/twill"), "comment": None},
        {200},
        "ignored",
    ),
    (
        "comment-id-text",
        "issue_comment",
        replaced(["issue", "number"], 12)
        | {"action": "created", "comment": {"id": "x", "body": "/twill"}},
        {200},
        "ignored",
    ),
    (
        "comment-body-list",
        "issue_comment",
        payloads.comment_created(["/twill"]),
        {200},
        "ignored",
    ),  # type: ignore[arg-type]
    ("unknown-event", "deployment_status", {"action": "created"}, {200}, "ignored"),
    (
        "unicode-escapes",
        "issues",
        payloads.issues_labeled("twill", title="\u00e9\ud83d\ude80"),
        {202},
        "queued",
    ),
]


@pytest.mark.parametrize(
    ("event", "payload", "statuses", "outcome"),
    [c[1:] for c in SHAPES],
    ids=[c[0] for c in SHAPES],
)
async def test_wrong_shapes_are_answered_not_crashed_on(
    bridge: Harness, event: str, payload: Any, statuses: set[int], outcome: str | None
) -> None:
    answer = await bridge.deliver(event, payload)
    assert answer.status_code in statuses, answer.text
    assert answer.json()["outcome"] == outcome
    await bridge.drain()  # the worker copes with what the webhook let through


def test_labels_not_a_list_still_composes() -> None:
    from bridge.triggers import Rules, decide

    decision = decide(
        "issues", replaced(["issue", "labels"], "twill"), Rules(labels={"twill": "SWE"})
    )
    assert decision.issue is not None and decision.issue.labels == ()


async def test_duplicated_signature_headers_are_refused(bridge: Harness) -> None:
    raw = json.dumps(payloads.issues_labeled()).encode()
    good = (
        "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    )
    headers = [
        ("X-GitHub-Event", "issues"),
        ("X-GitHub-Delivery", "dup-1"),
        ("X-Hub-Signature-256", "sha256=" + "0" * 64),
        ("X-Hub-Signature-256", good),
    ]
    answer = await bridge.client.post(
        "/api/github/webhooks", content=raw, headers=headers
    )
    assert answer.status_code == 401


@pytest.mark.parametrize("allow", [False, True], ids=["refused", "allowed"])
async def test_legacy_sha1_alone_depends_on_the_setting(
    make_harness, allow: bool
) -> None:  # type: ignore[no-untyped-def]
    bridge: Harness = await make_harness(allow_sha1=allow)
    raw = json.dumps(payloads.issues_labeled()).encode()
    legacy = "sha1=" + hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha1).hexdigest()
    answer = await bridge.client.post(
        "/api/github/webhooks",
        content=raw,
        headers={
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": "sha1-1",
            "X-Hub-Signature": legacy,
        },
    )
    assert answer.status_code == (202 if allow else 401)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"payload=",
        b"payload=%7Bbad",
        b"\xff\xfe{}",
        b"{" * 10_000 + b"}" * 10_000,
        b"[" * 200_000 + b"]" * 200_000,
    ],
    ids=[
        "empty",
        "empty-form",
        "bad-form-json",
        "not-utf8",
        "invalid-nesting",
        "too-deep",
    ],
)
async def test_bodies_that_are_not_json_objects_are_400(
    bridge: Harness, body: bytes
) -> None:
    content_type = (
        "application/x-www-form-urlencoded"
        if body.startswith(b"payload")
        else "application/json"
    )
    answer = await bridge.deliver(
        "issues", None, body=body, headers={"Content-Type": content_type}
    )
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "name",
    ["TWILL", "  twill  ", "Twill-Plan", "twill-PLAN "],
    ids=["upper", "spaces", "mixed", "mixed-trailing"],
)
async def test_label_names_in_other_cases_or_with_spaces(
    bridge: Harness, name: str
) -> None:
    answer = await bridge.deliver("issues", payloads.issues_labeled(name))
    assert answer.status_code == 202


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        (
            "issue_comment",
            payloads.comment_created("/twill plan --agent claude-code/" + "x" * 250),
        ),
        ("issues", replaced(["sender", "login"], "x" * 150)),
        ("issues", replaced(["repository", "full_name"], "o/" + "r" * 300)),
        ("issues", replaced(["issue", "updated_at"], "9" * 400)),
        ("issues", replaced(["issue", "number"], 2**40)),
        ("issues", replaced(["installation", "id"], 2**70)),
        ("issues", replaced(["repository", "id"], 2**70)),
        (
            "issue_comment",
            replaced(["issue", "number"], 12)
            | {"action": "created", "comment": {"id": 2**70, "body": "/twill"}},
        ),
    ],
    ids=[
        "agent-too-long",
        "login-too-long",
        "repo-name-too-long",
        "stamp-too-long",
        "issue-number-too-big",
        "installation-too-big",
        "repo-id-too-big",
        "comment-id-too-big",
    ],
)
async def test_values_too_big_for_their_columns_never_give_a_500(
    bridge: Harness, event: str, payload: Any
) -> None:
    answer = await bridge.deliver(event, payload)
    assert answer.status_code in (200, 202), answer.text
    assert len(await bridge.deliveries()) == 1
    await bridge.drain()
