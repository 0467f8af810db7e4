"""Deciding what a delivery asks for: pure, from (event, payload, rules) to a Decision.

No I/O and no clock here: everything the decision needs arrives as arguments,
so every rule is a row in tests/unit/test_triggers.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bridge.commands import Command, find_command

if TYPE_CHECKING:
    from bridge.settings import Settings

INTENT_LABELS = {
    "SWE": "implement",
    "PLAN": "plan",
    "ASK": "ask",
    "DEV_ENVIRONMENT": "dev-env",
}


@dataclass(frozen=True, kw_only=True)
class Rules:
    """The part of the settings that decisions depend on."""

    labels: Mapping[str, str]
    # False when a repository's own label table may exist but is not known yet.
    labels_final: bool = True
    default_agent: str | None = None
    keyword: str = "twill"
    allowed_bots: frozenset[str] = frozenset()
    # BRIDGE_ON_UNLABEL: removing a trigger label does nothing, or cancels the
    # task that label started.
    unlabel_cancels: bool = False
    # Whether the worker may turn a command into a follow-up (BRIDGE_FOLLOW_TASKS,
    # and not dry-run): then a lone unknown word waits for the worker's verdict.
    follow_ups: bool = False


def rules_from(settings: Settings) -> Rules:
    """The decision rules that `settings` set."""
    return Rules(
        labels=settings.labels,
        default_agent=settings.default_agent,
        allowed_bots=settings.allowed_bots,
        unlabel_cancels=settings.on_unlabel == "cancel",
        follow_ups=settings.follow_tasks and not settings.dry_run,
    )


@dataclass(frozen=True)
class IssueSnapshot:
    """The issue as it was when the trigger arrived; later edits do not change it."""

    repository: str
    repository_id: int | None
    number: int
    title: str
    url: str
    author: str
    author_association: str
    labels: tuple[str, ...]
    body: str
    is_pull_request: bool = False
    private: bool = False


@dataclass(frozen=True)
class Trigger:
    """A label or a slash command that asks for work."""

    kind: str  # "label" | "comment"
    key: str  # unique per trigger, whatever the number of deliveries
    intent: str
    requester: str
    instruction: str = ""
    agent: str | None = None
    label: str | None = None
    comment_id: int | None = None
    comment_body: str = ""
    tentative: bool = False  # a label only the repository's config may know
    # True when the command named the agent; otherwise `agent` is only the
    # bridge's default, which a repository's default_agent overrides.
    agent_named: bool = False
    # "run": a new task, or a follow-up message when the issue's task is still
    # active; "new": always a new task; "cancel": cancel the active task.
    action: str = "run"
    intent_named: bool = False  # a word named the intent (see Command)
    # When the person asked, by GitHub's clock (the comment's or the label
    # event's time, ISO 8601): a cancel only reaches tasks started before it.
    requested_at: str | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with a delivery: dispatch, reply, or nothing, and why."""

    outcome: str  # "dispatch" | "reply" | "ignore"
    reason: str
    issue: IssueSnapshot | None = None
    trigger: Trigger | None = None
    reply: str | None = None
    reply_key: str | None = None  # unique per thing replied to, so one reply each
    command: Command | None = field(default=None, compare=False)


def to_snapshot(issue: IssueSnapshot, trigger: Trigger) -> dict[str, Any]:
    """The issue and trigger as JSON, to store on the dispatch."""
    # Both are flat dataclasses of immutable values, so a shallow copy of their
    # fields is what asdict() gives, without its recursive deep copy.
    return {"issue": dict(vars(issue)), "trigger": dict(vars(trigger))}


def from_snapshot(data: Mapping[str, Any]) -> tuple[IssueSnapshot, Trigger]:
    """The issue and trigger stored by `to_snapshot`."""
    issue = dict(data["issue"])
    issue["labels"] = tuple(issue.get("labels") or ())
    return IssueSnapshot(**issue), Trigger(**data["trigger"])


def ignore(reason: str) -> Decision:
    """A decision to do nothing, with the reason recorded on the delivery."""
    return Decision("ignore", reason)


def decide(event: str, payload: Mapping[str, Any], rules: Rules) -> Decision:
    """What `payload` of GitHub event `event` asks of the bridge."""
    handler = _HANDLERS.get(event)
    if handler is None:
        return ignore(f"the bridge does not act on {event!r} events")
    action = payload.get("action")
    return handler(str(action) if action is not None else "", payload, rules)


def _issue_labeled(action: str, payload: Mapping[str, Any], rules: Rules) -> Decision:
    if action == "opened":
        # GitHub sends one `labeled` event for each label a new issue is opened
        # with; acting on those alone gives one task whatever the order.
        return ignore("new issues trigger through their labeled events")
    if action == "unlabeled" and not rules.unlabel_cancels:
        return ignore("removing a label does nothing (BRIDGE_ON_UNLABEL=ignore)")
    if action not in ("labeled", "unlabeled"):
        return ignore(f"issues.{action or '?'} is not a trigger")
    issue = _snapshot(payload)
    if issue is None:
        return ignore("the payload has no usable issue or repository")
    sender = _sender(payload)
    if sender is None:
        return ignore("the payload has no sender")
    if _is_bot(payload, rules):
        return ignore(f"{sender} is a bot")
    label = payload.get("label")
    name = label.get("name") if isinstance(label, Mapping) else None
    if not isinstance(name, str) or not name.strip():
        return ignore("the payload has no label")
    normalised = name.strip().lower()
    intent = rules.labels.get(normalised)
    tentative = False
    if intent is None:
        if rules.labels_final:
            return ignore(f"label {name.strip()!r} is not a trigger label")
        # The repository's .github/twill.yml may name it; the worker reads the
        # file and drops this dispatch if it does not.
        intent, tentative = "SWE", True
    raw_issue = payload["issue"]
    # The App hook and a repository hook on one URL, or a redelivery, carry the
    # same payload; a person removing and re-adding the label changes the
    # issue's updated_at and so asks again.
    stamp = str(raw_issue.get("updated_at") or "")
    removed = action == "unlabeled"
    kind = "unlabel" if removed else "label"
    key = f"{kind}:{_repo_key(issue)}:{issue.number}:{normalised}:{stamp}"
    trigger = Trigger(
        kind="label",
        key=key,
        intent=intent,
        requester=sender,
        agent=rules.default_agent,
        label=normalised,
        tentative=tentative,
        # A label names an intent and always asks for a task of its own.
        action="cancel" if removed else "new",
        intent_named=True,
        requested_at=stamp or None,
    )
    if removed:
        reason = f"label {normalised!r} removed: cancel the task it started"
    elif tentative:
        reason = f"label {normalised!r} may be a trigger label in .github/twill.yml"
    else:
        reason = f"label {normalised!r} asks for {intent}"
    return Decision("dispatch", reason, issue, trigger)


def _comment_created(action: str, payload: Mapping[str, Any], rules: Rules) -> Decision:
    if action == "edited":
        return _comment_edited(payload, rules)
    if action != "created":
        return ignore(f"issue_comment.{action or '?'} never triggers")
    issue = _snapshot(payload)
    if issue is None:
        return ignore("the payload has no usable issue or repository")
    sender = _sender(payload)
    if sender is None:
        return ignore("the payload has no sender")
    if _is_bot(payload, rules):
        return ignore(f"{sender} is a bot")
    comment = payload.get("comment")
    if not isinstance(comment, Mapping) or not fits(comment.get("id"), 63):
        return ignore("the payload has no comment")
    body = comment.get("body") if isinstance(comment.get("body"), str) else ""
    command = find_command(body, rules.keyword)
    if command is None:
        return ignore(f"the comment has no /{rules.keyword} command")
    source = f"comment:{_repo_key(issue)}:{comment['id']}"
    if command.lone_word and rules.follow_ups:
        # "/twill approve" answers a running task; with none, the worker
        # replies with the usage instead (bridge/prepare.py).
        trigger = Trigger(
            kind="comment",
            key=source,
            intent="SWE",
            requester=sender,
            instruction=command.lone_word,
            agent=rules.default_agent,
            comment_id=int(comment["id"]),
            comment_body=body,
            tentative=True,
            requested_at=_stamp(comment, edited=payload.get("action") == "edited"),
        )
        return Decision(
            "dispatch",
            "a lone word: a follow-up if a task is running",
            issue,
            trigger,
            command=command,
        )
    if command.kind in ("invalid", "help"):
        problem = command.problem if command.kind == "invalid" else None
        return Decision(
            "reply",
            problem or "help was asked for",
            issue,
            reply=usage_reply(rules, problem),
            reply_key=f"usage:{source}",
            command=command,
        )
    intent = command.intent or "SWE"
    trigger = Trigger(
        kind="comment",
        key=source,
        intent=intent,
        requester=sender,
        instruction=command.instruction,
        agent=command.agent or rules.default_agent,
        agent_named=command.agent is not None,
        comment_id=int(comment["id"]),
        comment_body=body,
        action=command.kind,
        intent_named=command.intent_named,
        requested_at=_stamp(comment, edited=payload.get("action") == "edited"),
    )
    asks = "a cancel" if command.kind == "cancel" else intent
    return Decision(
        "dispatch",
        f"/{rules.keyword} command asks for {asks}",
        issue,
        trigger,
        command=command,
    )


def _comment_edited(payload: Mapping[str, Any], rules: Rules) -> Decision:
    """An edit triggers only when it adds a command the comment did not have.

    So fixing a typo in `/twill plna` works, while editing a comment that was
    already dispatched never dispatches again: both share the comment's key.
    """
    changes = payload.get("changes")
    before = changes.get("body") if isinstance(changes, Mapping) else None
    if not isinstance(before, Mapping) or "from" not in before:
        return ignore("the edit did not change the comment's text")
    old = before.get("from") if isinstance(before.get("from"), str) else ""
    old_command = find_command(old, rules.keyword)
    if old_command is not None and old_command.kind not in ("invalid", "help"):
        return ignore("the comment already held a command before this edit")
    # The usage reply keeps the comment's key: one reply per comment, however
    # often it is edited.
    return _comment_created("created", payload, rules)


_MARKDOWN = re.compile(r"([\\`*_\[\]()<>!#|~])")


def inert(text: str) -> str:
    """`text` as plain words: no Markdown, links, images, HTML or @mentions.

    The usage reply echoes what someone typed; echoed as is, it could ping a
    team or show a tracking image in the bridge's name.
    """
    return _MARKDOWN.sub(r"\\\1", " ".join(text.split())).replace("@", "@\u200b")


def usage_reply(rules: Rules, problem: str | None = None) -> str:
    """The usage text, written so that no line of it can trigger anything.

    Every command example sits in inline code, which the parser never reads;
    the bridge's own comments are skipped anyway, since they come from a bot.
    """
    k = rules.keyword
    labels = ", ".join(
        f"`{name}` ({intent})" for name, intent in sorted(rules.labels.items())
    )
    lines = []
    if problem:
        lines += [f"Sorry, I did not act on that: {inert(problem)}", ""]
    lines += [
        "**How to hand this issue to Twill**",
        "",
        f"- `/{k}` — implement the issue (`/{k} <instructions>` adds your own)",
        f"- `/{k} plan`, `/{k} ask`, `/{k} dev-env` — plan, answer, or set up a dev environment",
        (
            f"- while a task runs, `/{k} <message>` sends it a follow-up; `/{k} new ...` starts another task; `/{k} cancel` stops it"
            if rules.follow_ups
            else f"- `/{k} cancel` stops the issue's running task"
        ),
        f"- `--agent provider/model` on the command line picks the agent, e.g. `/{k} plan --agent claude-code/sonnet`",
        f"- `/{k} help` — this message",
        f"- labels: {labels}" if labels else "- no trigger labels are configured",
        "",
        "The command must start a line (a list bullet in front is fine); lines in code blocks and quotes are ignored.",
    ]
    return "\n".join(lines)


def _snapshot(payload: Mapping[str, Any]) -> IssueSnapshot | None:
    issue = payload.get("issue")
    repo = payload.get("repository")
    if not isinstance(issue, Mapping) or not isinstance(repo, Mapping):
        return None
    number = issue.get("number")
    full_name = repo.get("full_name")
    if (
        not fits(number, 31)
        or not isinstance(full_name, str)
        or "/" not in full_name
        or len(full_name) > 200
    ):
        return None
    user = issue.get("user") if isinstance(issue.get("user"), Mapping) else {}
    labels = tuple(
        str(label.get("name"))
        for label in issue.get("labels") or ()
        if isinstance(label, Mapping) and label.get("name")
    )
    repo_id = repo.get("id") if fits(repo.get("id"), 63) else None
    return IssueSnapshot(
        repository=full_name,
        repository_id=repo_id if isinstance(repo_id, int) else None,
        number=number,
        title=_text(issue.get("title")),
        url=_text(issue.get("html_url")),
        author=_text(user.get("login")) or "ghost",
        author_association=_text(issue.get("author_association")) or "NONE",
        labels=labels,
        body=_text(issue.get("body")),
        is_pull_request=isinstance(issue.get("pull_request"), Mapping),
        private=bool(repo.get("private")),
    )


def fits(value: object, bits: int) -> bool:
    """Whether `value` is a positive whole number below 2**bits (a column's range)."""
    return (
        isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**bits
    )


def _repo_key(issue: IssueSnapshot) -> str:
    # The id survives renames and transfers; the name is the fallback.
    return (
        str(issue.repository_id)
        if issue.repository_id is not None
        else issue.repository.lower()
    )


def _stamp(comment: Mapping[str, Any], edited: bool) -> str | None:
    """When the comment (or, for an edit, its new text) was written."""
    value = comment.get("updated_at" if edited else "created_at")
    return value[:40] if isinstance(value, str) and value else None


def _sender(payload: Mapping[str, Any]) -> str | None:
    sender = payload.get("sender")
    login = sender.get("login") if isinstance(sender, Mapping) else None
    # GitHub logins are at most 39 characters; anything longer is not GitHub's.
    if isinstance(login, str) and 0 < len(login) <= 100:
        return login
    return None


def _is_bot(payload: Mapping[str, Any], rules: Rules) -> bool:
    sender = payload["sender"]
    login = str(sender.get("login"))
    bot = sender.get("type") == "Bot" or login.endswith("[bot]")
    return bot and login.lower() not in rules.allowed_bots


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _pull_request_labeled(
    action: str, payload: Mapping[str, Any], rules: Rules
) -> Decision:
    """Labels on pull requests arrive as `pull_request` events, not `issues` ones."""
    pull = payload.get("pull_request")
    if not isinstance(pull, Mapping):
        return ignore("the payload has no pull request")
    as_issue = {**pull, "pull_request": {"html_url": pull.get("html_url")}}
    return _issue_labeled(action, {**payload, "issue": as_issue}, rules)


_HANDLERS = {
    "issues": _issue_labeled,
    "pull_request": _pull_request_labeled,
    "issue_comment": _comment_created,
}
