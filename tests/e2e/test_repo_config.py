"""Per-repository settings from .github/twill.yml, and comment edits."""

from __future__ import annotations

import logging

import pytest

from tests import payloads
from tests.conftest import Harness

CONFIG = (payloads.REPO, ".github/twill.yml")
ORG_CONFIG = ("octo-org/.github", ".github/twill.yml")


async def test_repository_labels_replace_the_defaults_even_on_a_cold_cache(
    bridge: Harness,
) -> None:
    bridge.github.files[CONFIG] = "labels:\n  agent-go: PLAN\n"
    answer = await bridge.deliver("issues", payloads.issues_labeled("agent-go"))
    assert answer.status_code == 202  # unknown to the bridge, maybe known to the file
    await bridge.drain()
    assert [r["userIntent"] for r in bridge.twill.requests] == ["PLAN"]

    # Now that the file is read, the default `twill` label is not a trigger here.
    answer = await bridge.deliver("issues", payloads.issues_labeled("twill", number=13))
    assert answer.json()["outcome"] == "ignored"


async def test_an_unknown_label_on_a_cold_cache_is_dropped_without_a_trace_on_the_issue(
    bridge: Harness,
) -> None:
    await bridge.deliver("issues", payloads.issues_labeled("bug"))
    await bridge.drain()
    assert await bridge.dispatches() == []
    [delivery] = await bridge.deliveries()
    assert (
        delivery.outcome == "ignored"
        and "not a trigger label in this repository" in delivery.reason
    )
    assert (
        bridge.twill.requests == []
        and bridge.github.issue_comments(payloads.REPO, 12) == []
    )


async def test_default_agent_and_instructions_are_applied(bridge: Harness) -> None:
    bridge.github.files[CONFIG] = (
        "default_agent: codex/gpt-5.4\ninstructions: |\n  Run make check first.\n"
    )
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.deliver(
        "issue_comment",
        payloads.comment_created("/twill new --agent claude-code/sonnet", comment_id=9),
    )
    await bridge.drain()
    agents = [r.get("agent") for r in bridge.twill.requests]
    assert agents == ["codex/gpt-5.4", "claude-code/sonnet"]
    assert all("Run make check first." in r["command"] for r in bridge.twill.requests)


async def test_a_disallowed_intent_is_skipped_with_a_reply(bridge: Harness) -> None:
    bridge.github.files[CONFIG] = "allowed_intents: [SWE]\n"
    await bridge.deliver("issue_comment", payloads.comment_created("/twill plan"))
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "skipped" and bridge.twill.requests == []
    [reply] = bridge.github.issue_comments(payloads.REPO, 12)
    assert "does not allow `PLAN` runs" in reply["body"]


async def test_a_disabled_repository_is_skipped_quietly(bridge: Harness) -> None:
    bridge.github.files[CONFIG] = "enabled: false\n"
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    [dispatch] = await bridge.dispatches()
    assert dispatch.status == "skipped"
    assert (
        bridge.twill.requests == []
        and bridge.github.issue_comments(payloads.REPO, 12) == []
    )


async def test_min_permission_from_the_file(bridge: Harness) -> None:
    bridge.github.files[CONFIG] = "min_permission: admin\n"
    bridge.github.roles["writer"] = "write"
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill", sender="writer")
    )
    await bridge.drain()
    assert bridge.twill.requests == []
    assert (await bridge.dispatches())[0].status == "denied"


async def test_the_organisations_file_is_the_fallback(bridge: Harness) -> None:
    bridge.github.files[ORG_CONFIG] = "default_agent: open-code/openai/gpt-5.4\n"
    await bridge.deliver("issues", payloads.issues_labeled("twill"))
    await bridge.drain()
    assert bridge.twill.requests[0]["agent"] == "open-code/openai/gpt-5.4"
    assert (await bridge.dispatches())[0].config_source == "octo-org/.github"


@pytest.mark.parametrize(
    "text",
    [
        "labels: [twill]\n",
        "enabled: maybe\n",
        "min_permission: root\n",
        "unknown_key: 1\n",
        "labels:\n  x: BUILD\n",
        ":\n- ][",
    ],
    ids=[
        "labels-list",
        "enabled-text",
        "bad-permission",
        "unknown-key",
        "bad-intent",
        "not-yaml",
    ],
)
async def test_an_invalid_file_means_defaults_and_says_why(
    bridge: Harness, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    bridge.github.files[CONFIG] = text
    with caplog.at_level(logging.WARNING, logger="twill_bridge"):
        await bridge.deliver("issues", payloads.issues_labeled("twill"))
        await bridge.drain()
    assert len(bridge.twill.requests) == 1
    [comment] = bridge.github.issue_comments(payloads.REPO, 12)
    assert (
        ".github/twill.yml is invalid" in comment["body"]
        and "defaults apply" in comment["body"]
    )
    assert any(r.getMessage() == "invalid repository config" for r in caplog.records)


async def test_the_file_is_read_once_per_cache_period(bridge: Harness) -> None:
    bridge.github.files[CONFIG] = "default_agent: codex/gpt-5.4\n"
    for number in (1, 2, 3):
        await bridge.deliver("issues", payloads.issues_labeled("twill", number=number))
    await bridge.drain()
    reads = [
        p for _, p in bridge.github.calls if p.endswith("/contents/.github/twill.yml")
    ]
    assert reads == ["/repos/octo-org/widgets/contents/.github/twill.yml"]


async def test_editing_a_dispatched_comment_never_dispatches_again(
    bridge: Harness,
) -> None:
    created = payloads.comment_created("/twill plan", comment_id=50)
    await bridge.deliver("issue_comment", created)
    edited = payloads.with_changes(
        payloads.comment_created("/twill plan and more", comment_id=50), "/twill plan"
    )
    answer = await bridge.deliver("issue_comment", edited)
    assert answer.json()["outcome"] == "ignored"
    await bridge.drain()
    assert len(bridge.twill.requests) == 1


async def test_an_edit_that_adds_a_command_dispatches_once(bridge: Harness) -> None:
    await bridge.deliver(
        "issue_comment", payloads.comment_created("Looks broken", comment_id=60)
    )
    edited = payloads.with_changes(
        payloads.comment_created("Looks broken\n/twill ask why", comment_id=60),
        "Looks broken",
    )
    assert (await bridge.deliver("issue_comment", edited)).status_code == 202
    assert (await bridge.deliver("issue_comment", edited)).json()[
        "outcome"
    ] == "duplicate"
    await bridge.drain()
    assert [r["userIntent"] for r in bridge.twill.requests] == ["ASK"]


async def test_fixing_a_typo_by_editing_dispatches(bridge: Harness) -> None:
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill plna", comment_id=70)
    )
    fixed = payloads.with_changes(
        payloads.comment_created("/twill plan", comment_id=70), "/twill plna"
    )
    assert (await bridge.deliver("issue_comment", fixed)).status_code == 202
    await bridge.drain()
    assert [r["userIntent"] for r in bridge.twill.requests] == ["PLAN"]


async def test_a_file_can_raise_the_bar_but_never_lower_it(bridge: Harness) -> None:
    bridge.github.files[ORG_CONFIG] = "min_permission: read\n"
    bridge.github.roles["reader"] = "read"
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill do it", sender="reader")
    )
    await bridge.drain()
    assert bridge.twill.requests == []
    assert (await bridge.dispatches())[0].status == "denied"


async def test_a_stranger_asking_for_a_disallowed_intent_gets_one_refusal(
    bridge: Harness,
) -> None:
    bridge.github.files[CONFIG] = "allowed_intents: [SWE]\n"
    for comment_id in range(1, 5):
        await bridge.deliver(
            "issue_comment",
            payloads.comment_created(
                "/twill dev-env", sender="stranger", comment_id=comment_id
            ),
        )
    await bridge.drain()
    [reply] = bridge.github.issue_comments(payloads.REPO, 12)
    assert "only people with at least `write`" in reply["body"]


async def test_a_disallowed_intent_is_answered_once_per_person_and_issue(
    bridge: Harness,
) -> None:
    bridge.github.files[CONFIG] = "allowed_intents: [SWE]\n"
    for comment_id in range(1, 4):
        await bridge.deliver(
            "issue_comment",
            payloads.comment_created("/twill plan", comment_id=comment_id),
        )
    await bridge.drain()
    assert len(bridge.github.issue_comments(payloads.REPO, 12)) == 1


async def test_editing_a_typo_again_and_again_gets_one_usage_reply(
    bridge: Harness,
) -> None:
    await bridge.deliver(
        "issue_comment", payloads.comment_created("/twill plna", comment_id=80)
    )
    for n, typo in enumerate(["/twill plnb", "/twill plnc", "/twill plnd"]):
        edited = payloads.with_changes(
            payloads.comment_created(typo, comment_id=80), "/twill plna"
        )
        edited["comment"]["updated_at"] = f"2026-12-01T10:0{n + 6}:00Z"
        await bridge.deliver("issue_comment", edited)
    await bridge.drain()
    assert len(bridge.github.issue_comments(payloads.REPO, 12)) == 1


async def test_the_repositorys_default_agent_beats_the_bridges_but_not_a_named_one(
    make_harness,
) -> None:  # type: ignore[no-untyped-def]
    harness: Harness = await make_harness(default_agent="claude-code/sonnet")
    harness.github.files[CONFIG] = "default_agent: codex/gpt-5.4\n"
    await harness.deliver("issues", payloads.issues_labeled("twill"))
    await harness.deliver(
        "issue_comment", payloads.comment_created("/twill new plan", comment_id=91)
    )
    await harness.deliver(
        "issue_comment",
        payloads.comment_created(
            "/twill new --agent open-code/openai/gpt-5.4", comment_id=92
        ),
    )
    await harness.drain()
    assert [r.get("agent") for r in harness.twill.requests] == [
        "codex/gpt-5.4",
        "codex/gpt-5.4",
        "open-code/openai/gpt-5.4",
    ]
