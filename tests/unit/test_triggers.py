"""The trigger decision, as a table: (event, payload) → dispatch, reply or nothing."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.commands import find_command
from bridge.settings import DEFAULT_LABELS
from bridge.triggers import Rules, decide, usage_reply
from tests import payloads

RULES = Rules(labels=DEFAULT_LABELS, default_agent=None)


CASES: list[tuple[str, str, dict[str, Any], str, str | None]] = [
    # id, event, payload, outcome, intent
    ("label-swe", "issues", payloads.issues_labeled("twill"), "dispatch", "SWE"),
    ("label-plan", "issues", payloads.issues_labeled("twill-plan"), "dispatch", "PLAN"),
    ("label-ask", "issues", payloads.issues_labeled("twill-ask"), "dispatch", "ASK"),
    (
        "label-dev-env",
        "issues",
        payloads.issues_labeled("twill-dev-env"),
        "dispatch",
        "DEV_ENVIRONMENT",
    ),
    (
        "label-case-and-space",
        "issues",
        payloads.issues_labeled("  Twill-PLAN "),
        "dispatch",
        "PLAN",
    ),
    ("label-other", "issues", payloads.issues_labeled("bug"), "ignore", None),
    (
        "label-from-bot",
        "issues",
        payloads.issues_labeled("twill", sender="ci[bot]", sender_type="Bot"),
        "ignore",
        None,
    ),
    (
        "opened-with-label",
        "issues",
        payloads.issues_opened(labels=["twill"]),
        "ignore",
        None,
    ),
    (
        "unlabeled",
        "issues",
        {**payloads.issues_labeled("twill"), "action": "unlabeled"},
        "ignore",
        None,
    ),
    (
        "comment-plain",
        "issue_comment",
        payloads.comment_created("/twill"),
        "dispatch",
        "SWE",
    ),
    (
        "comment-plan",
        "issue_comment",
        payloads.comment_created("/twill plan"),
        "dispatch",
        "PLAN",
    ),
    (
        "comment-bullet",
        "issue_comment",
        payloads.comment_created("- /twill ask why?"),
        "dispatch",
        "ASK",
    ),
    (
        "comment-null-body",
        "issue_comment",
        payloads.comment_created(None),
        "ignore",
        None,
    ),
    (
        "comment-quoted",
        "issue_comment",
        payloads.comment_created("> /twill plan"),
        "ignore",
        None,
    ),
    (
        "comment-fenced",
        "issue_comment",
        payloads.comment_created("```\n/twill plan\n```"),
        "ignore",
        None,
    ),
    (
        "comment-by-bot",
        "issue_comment",
        payloads.comment_created(
            "/twill", sender="twill-bridge[bot]", sender_type="Bot"
        ),
        "ignore",
        None,
    ),
    (
        "comment-edited",
        "issue_comment",
        payloads.comment_created("/twill", action="edited"),
        "ignore",
        None,
    ),
    (
        "comment-deleted",
        "issue_comment",
        payloads.comment_created("/twill", action="deleted"),
        "ignore",
        None,
    ),
    (
        "comment-help",
        "issue_comment",
        payloads.comment_created("/twill help"),
        "reply",
        None,
    ),
    (
        "comment-typo",
        "issue_comment",
        payloads.comment_created("/twill plna"),
        "reply",
        None,
    ),
    ("unknown-event", "push", {"ref": "refs/heads/main"}, "ignore", None),
]


@pytest.mark.parametrize(
    ("event", "payload", "outcome", "intent"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decision_table(
    event: str, payload: dict[str, Any], outcome: str, intent: str | None
) -> None:
    decision = decide(event, payload, RULES)
    assert decision.outcome == outcome, decision.reason
    assert (decision.trigger.intent if decision.trigger else None) == intent
    assert decision.reason


def test_only_the_comment_is_parsed_never_the_issue_body() -> None:
    payload = payloads.comment_created("Looks good to me")
    payload["issue"]["body"] = "/twill plan\nplease"
    assert decide("issue_comment", payload, RULES).outcome == "ignore"


def test_label_key_is_the_same_for_the_same_event_and_differs_on_relabel() -> None:
    first = decide("issues", payloads.issues_labeled("twill"), RULES).trigger
    again = decide("issues", payloads.issues_labeled("twill"), RULES).trigger
    later = decide(
        "issues",
        payloads.issues_labeled("twill", updated_at="2026-12-09T00:00:00Z"),
        RULES,
    ).trigger
    assert first and again and later
    assert first.key == again.key != later.key


def test_comment_key_is_per_comment() -> None:
    one = decide(
        "issue_comment", payloads.comment_created("/twill", comment_id=1), RULES
    ).trigger
    two = decide(
        "issue_comment", payloads.comment_created("/twill", comment_id=2), RULES
    ).trigger
    assert one and two and one.key != two.key


def test_custom_labels_replace_the_defaults() -> None:
    rules = Rules(labels={"agent-go": "SWE"})
    assert (
        decide("issues", payloads.issues_labeled("agent-go"), rules).outcome
        == "dispatch"
    )
    assert decide("issues", payloads.issues_labeled("twill"), rules).outcome == "ignore"


def test_default_agent_applies_unless_the_command_names_one() -> None:
    rules = Rules(labels=DEFAULT_LABELS, default_agent="claude-code/sonnet")
    label = decide("issues", payloads.issues_labeled("twill"), rules).trigger
    named = decide(
        "issue_comment", payloads.comment_created("/twill --agent codex/gpt-5.4"), rules
    ).trigger
    assert label and named
    assert (label.agent, named.agent) == ("claude-code/sonnet", "codex/gpt-5.4")


def test_allowed_bots_may_trigger() -> None:
    rules = Rules(labels=DEFAULT_LABELS, allowed_bots=frozenset({"release-bot[bot]"}))
    payload = payloads.issues_labeled(
        "twill", sender="release-bot[bot]", sender_type="Bot"
    )
    assert decide("issues", payload, rules).outcome == "dispatch"


def test_pull_request_conversation_is_marked() -> None:
    decision = decide(
        "issue_comment", payloads.comment_created("/twill", pull_request=True), RULES
    )
    assert decision.issue and decision.issue.is_pull_request


def test_usage_reply_never_triggers_anything_itself() -> None:
    text = usage_reply(RULES, "Unknown word 'plna'. Did you mean 'plan'?")
    assert find_command(text) is None
    assert "/twill plan" in text


@pytest.mark.parametrize(
    ("body", "action", "intent", "named"),
    [
        ("/twill fix it", "run", "SWE", False),
        ("/twill plan", "run", "PLAN", True),
        ("/twill new", "new", "SWE", False),
        ("/twill new ask why?", "new", "ASK", True),
        ("/twill cancel", "cancel", "SWE", False),
        ("- /Twill CANCEL", "cancel", "SWE", False),
    ],
)
def test_commands_carry_their_action(
    body: str, action: str, intent: str, named: bool
) -> None:
    decision = decide("issue_comment", payloads.comment_created(body), RULES)
    assert decision.outcome == "dispatch" and decision.trigger is not None
    assert decision.trigger.action == action
    assert decision.trigger.intent == intent
    assert decision.trigger.intent_named is named


def test_a_label_always_asks_for_a_task_of_its_own() -> None:
    decision = decide("issues", payloads.issues_labeled("twill-plan"), RULES)
    assert decision.trigger is not None and decision.trigger.action == "new"


def test_removing_a_label_cancels_only_when_told_to() -> None:
    payload = {**payloads.issues_labeled("twill"), "action": "unlabeled"}
    assert decide("issues", payload, RULES).outcome == "ignore"
    cancels = Rules(labels=DEFAULT_LABELS, unlabel_cancels=True)
    decision = decide("issues", payload, cancels)
    assert decision.outcome == "dispatch" and decision.trigger is not None
    assert decision.trigger.action == "cancel" and decision.trigger.label == "twill"
    # Its key differs from the label's own, which asked for the task.
    added = decide("issues", payloads.issues_labeled("twill"), cancels)
    assert added.trigger is not None and added.trigger.key != decision.trigger.key
    other = {**payloads.issues_labeled("bug"), "action": "unlabeled"}
    assert decide("issues", other, cancels).outcome == "ignore"
