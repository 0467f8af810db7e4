"""Who may trigger: GitHub's collaborator permission decides, never author_association."""

from __future__ import annotations

import pytest

from tests import payloads
from tests.conftest import Harness


async def comment(
    bridge: Harness, body: str = "/twill plan", sender: str = "maintainer", **fields
) -> None:  # type: ignore[no-untyped-def]
    answer = await bridge.deliver(
        "issue_comment", payloads.comment_created(body, sender=sender, **fields)
    )
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize(
    ("role", "minimum", "allowed"),
    [
        ("admin", "write", True),
        ("maintain", "write", True),
        ("write", "write", True),
        ("triage", "write", False),
        ("read", "write", False),
        ("triage", "triage", True),
        ("write", "maintain", False),
        ("maintain", "maintain", True),
    ],
    ids=lambda v: str(v),
)
async def test_role_must_reach_the_minimum(
    make_harness, role: str, minimum: str, allowed: bool
) -> None:  # type: ignore[no-untyped-def]
    bridge: Harness = await make_harness(min_permission=minimum)
    bridge.github.roles["alice"] = role
    await comment(bridge, sender="alice")
    await bridge.drain()
    assert len(bridge.twill.requests) == (1 if allowed else 0)
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == ("reported" if allowed else "denied")


async def test_a_private_org_member_shown_as_contributor_is_allowed_by_role(
    bridge: Harness,
) -> None:
    bridge.github.roles["quiet-member"] = "write"
    payload = payloads.comment_created("/twill", sender="quiet-member")
    payload["comment"]["author_association"] = "CONTRIBUTOR"
    await bridge.deliver("issue_comment", payload)
    await bridge.drain()
    assert len(bridge.twill.requests) == 1


async def test_member_association_alone_never_grants(bridge: Harness) -> None:
    payload = payloads.comment_created(
        "/twill", sender="outsider"
    )  # no role: GitHub answers 404
    payload["comment"]["author_association"] = "MEMBER"
    await bridge.deliver("issue_comment", payload)
    await bridge.drain()
    assert bridge.twill.requests == []


async def test_custom_role_counts_by_its_base_permission(bridge: Harness) -> None:
    bridge.github.roles["releaser"] = (
        "release-manager"  # the fake gives custom roles base "read"
    )
    await comment(bridge, sender="releaser")
    await bridge.drain()
    assert bridge.twill.requests == []


async def test_denied_is_recorded_with_one_polite_reply_per_person_per_issue(
    bridge: Harness,
) -> None:
    for comment_id in (1, 2):
        await comment(bridge, sender="stranger", comment_id=comment_id)
    await comment(bridge, sender="passerby", comment_id=3)
    await bridge.drain()

    assert bridge.twill.requests == []
    assert [d.outcome for d in await bridge.deliveries()] == [
        "denied",
        "denied",
        "denied",
    ]
    assert {d.status for d in await bridge.dispatches()} == {"denied"}
    replies = [c["body"] for c in bridge.github.issue_comments(payloads.REPO, 12)]
    assert len(replies) == 2
    assert any("@stranger" in r for r in replies) and any(
        "@passerby" in r for r in replies
    )
    assert all("`write`" in r for r in replies)


async def test_permission_answers_are_cached_briefly(bridge: Harness) -> None:
    await comment(bridge, "/twill new plan", comment_id=1)
    await comment(bridge, "/twill new plan", comment_id=2)
    await bridge.drain()
    checks = [c for c in bridge.github.calls if c[1].endswith("/permission")]
    assert len(checks) == 1 and len(bridge.twill.requests) == 2


async def test_bots_never_trigger(bridge: Harness) -> None:
    answer = await bridge.deliver(
        "issue_comment",
        payloads.comment_created("/twill", sender="helper[bot]", sender_type="Bot"),
    )
    assert answer.json()["outcome"] == "ignored"
    await bridge.drain()
    assert bridge.twill.requests == []


async def test_an_allowed_bot_triggers_without_a_permission_check(make_harness) -> None:  # type: ignore[no-untyped-def]
    bridge: Harness = await make_harness(allowed_bots=frozenset({"release-bot[bot]"}))
    await bridge.deliver(
        "issues",
        payloads.issues_labeled("twill", sender="release-bot[bot]", sender_type="Bot"),
    )
    await bridge.drain()
    assert len(bridge.twill.requests) == 1
    assert not any(c[1].endswith("/permission") for c in bridge.github.calls)
