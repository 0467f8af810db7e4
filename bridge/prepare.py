"""Before a dispatch is sent: may this person ask, does the repository allow it,
and what exactly goes to Twill. GitHub is asked; Twill is not.

The checks run in the worker, not while GitHub waits for its webhook answer,
because they need GitHub's API. The result says what to do with the dispatch;
the worker writes it down.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bridge.attachments import trigger_attachments
from bridge.commands import find_command
from bridge.compose import Extras, create_task_request, file_parts, follow_up_request
from bridge.files import describe_missing
from bridge.follow import parse_utc
from bridge.github import GitHubClient
from bridge.handover import Handover
from bridge.models import Dispatch
from bridge.repo_access import ConfigCache, PermissionCache
from bridge.repo_config import CONFIG_PATH, RepoConfig, permission_reaches
from bridge.settings import PERMISSIONS, Settings
from bridge.store import bounded_key
from bridge.triggers import (
    IssueSnapshot,
    Trigger,
    from_snapshot,
    rules_from,
    usage_reply,
)


@dataclass(frozen=True)
class ActiveTask:
    """A task this issue's dispatches started that has not (as far as we know) ended."""

    dispatch_id: int
    task_id: str
    task_url: str | None
    agent: str | None
    label: str | None  # the trigger label that started it, if a label did
    running: bool  # its job is known to be PENDING or IN_PROGRESS
    created_at: datetime | None = None  # when its dispatch was recorded
    requested_at: datetime | None = None  # when its trigger was written (GitHub)


@dataclass(frozen=True)
class IssueTasks:
    """What the issue's other dispatches say, to route a follow-up or a cancel."""

    earlier_pending: bool = False  # an earlier trigger here is not sent yet
    active: tuple[ActiveTask, ...] = ()  # newest first
    follow_ups: bool = True  # Twill has the status and message endpoints
    # A redelivery (bridge/redeliver.py) of a trigger that a later one on the
    # same issue has overtaken: acting on it now would undo or repeat work.
    superseded: bool = False
    # The issue's newest task when its PLAN or ASK run has completed: a
    # follow-up (an approval, a further question) continues it.
    continuable: ActiveTask | None = None


@dataclass(frozen=True)
class Prepared:
    """The outcome of the checks for one dispatch."""

    outcome: str  # "ready" | "drop" | "skipped" | "denied" | "wait"
    reason: str
    values: dict[str, Any] = field(default_factory=dict)  # columns to set when ready
    reply: str | None = None  # what to tell the issue when not ready
    reply_key: str | None = None


async def prepare(
    dispatch: Dispatch,
    settings: Settings,
    github: GitHubClient,
    configs: ConfigCache,
    permissions: PermissionCache,
    handover: Handover | None = None,
    tasks: IssueTasks | None = None,
) -> Prepared:
    """Check the dispatch's trigger and compose its final request.

    `tasks` (None: follow-ups and cancels are off) says whether the issue
    has a task still running, which turns `/twill <text>` into a follow-up.
    """
    installation = dispatch.installation_id or await github.repo_installation(
        dispatch.repository
    )
    issue, trigger = from_snapshot(dispatch.snapshot or {})
    config = await configs.get(installation, dispatch.repository)

    if trigger.kind == "label":
        labels = config.labels if config.labels is not None else settings.labels
        intent = labels.get(trigger.label or "")
        if intent is None:
            return Prepared(
                "drop",
                f"label {trigger.label!r} is not a trigger label in this repository",
            )
        trigger = replace(trigger, intent=intent, tentative=False)
    if not config.enabled:
        return Prepared(
            "skipped", f"the bridge is turned off in {config.source}/{CONFIG_PATH}"
        )

    # Who asks comes before what they ask: a stranger gets one refusal per
    # issue, whatever they try.
    role = await _role(dispatch, trigger, settings, github, permissions, installation)
    minimum = _stricter(settings.min_permission, config.min_permission)
    if role is not None and not permission_reaches(role[0], role[1], minimum):
        return Prepared(
            "denied",
            f"@{trigger.requester} has {role[0] or role[1]} permission; {minimum} is needed",
            reply=(
                f"Sorry @{trigger.requester}, only people with at least `{minimum}` "
                "permission on this repository can hand issues to Twill."
            ),
            reply_key=bounded_key(
                f"denied:{dispatch.repository.lower()}:{dispatch.issue_number}:"
                f"{trigger.requester.lower()}"
            ),
        )
    routed = _route(dispatch, trigger, tasks)
    if routed is None and trigger.action == "run" and tasks and tasks.follow_ups:
        running = next((task for task in tasks.active if task.running), None)
        if running is None and trigger.instruction.strip():
            # Words for an ended plan or answer (a bare command asks anew).
            running = tasks.continuable
        if running is not None:
            routed = await _follow_up(
                dispatch, issue, trigger, running, settings, handover, installation
            )
    if routed is None and trigger.tentative and trigger.kind == "comment":
        # A lone word with no running task to answer: what the webhook would
        # have said had it known.
        command = find_command(trigger.comment_body)
        problem = command.problem if command else None
        labels = config.labels if config.labels is not None else settings.labels
        rules = replace(rules_from(settings), labels=labels)
        # Dropped, not skipped: the comment's key stays free, so editing the
        # word into a real command dispatches it, as fixing a typo does.
        return Prepared(
            "drop",
            problem or "a lone word with no running task",
            reply=usage_reply(rules, problem),
            reply_key=bounded_key(f"usage:{dispatch.trigger_key}"),
        )
    if routed is not None:
        if routed.outcome != "ready":
            return routed
        permission = (role[0] or role[1]) if role else "allowed bot"
        return replace(
            routed,
            values={
                "installation_id": installation,
                "requester_permission": permission,
                "config_source": config.source,
                "config_problem": config.problem,
                **routed.values,
            },
        )
    if trigger.intent not in config.allowed_intents:
        allowed = ", ".join(sorted(config.allowed_intents))
        return Prepared(
            "skipped",
            f"{trigger.intent} is not allowed in this repository",
            reply=f"This repository's `{CONFIG_PATH}` does not allow `{trigger.intent}` runs (allowed: {allowed}), so I did not start one.",
            reply_key=bounded_key(
                f"skipped:{dispatch.repository.lower()}:{dispatch.issue_number}:"
                f"{trigger.requester.lower()}:{trigger.intent}"
            ),
        )

    extras = await _extras(config, issue, github, installation)
    if not trigger.agent_named:
        trigger = replace(trigger, agent=config.default_agent or trigger.agent)
    attachments = trigger_attachments(issue, trigger, settings.github_web_host)
    files = None
    if handover is not None:
        handed = await handover.hand(
            attachments, issue, trigger, installation, dispatch.id
        )
        files = handed.parts
        extras = replace(extras, missing_files=describe_missing(handed.missing))
    request = create_task_request(
        issue, trigger, attachments, settings.command_max_chars, extras, files
    )
    who = (
        f"@{trigger.requester} ({role[0] or role[1]})"
        if role
        else f"@{trigger.requester} (allowed bot)"
    )
    return Prepared(
        "ready",
        f"{who} may ask; settings from {config.source}",
        values={
            "installation_id": installation,
            "intent": trigger.intent,
            "agent": trigger.agent,
            "request": request,
            "command": request["command"],
            "title": request["title"],
            "files": request.get("files", []),
            "requester_permission": (role[0] or role[1]) if role else "allowed bot",
            "config_source": config.source,
            "config_problem": config.problem,
        },
    )


def _route(
    dispatch: Dispatch, trigger: Trigger, tasks: IssueTasks | None
) -> Prepared | None:
    """Wait for earlier triggers, or cancel; None when the dispatch goes on as a run."""
    if tasks is not None and tasks.superseded:
        return Prepared(
            "drop",
            "redelivered after a later trigger on this issue was handled; not acted on",
        )
    if trigger.action == "new":
        return None
    if tasks is not None and tasks.earlier_pending:
        # `/twill` then `/twill cancel` (or a follow-up) must meet the task the
        # first one starts, so they go in order.
        return Prepared("wait", "an earlier trigger on this issue is not sent yet")
    if trigger.action != "cancel":
        return None
    candidates = tasks.active if tasks is not None else ()
    if trigger.kind == "label":
        candidates = tuple(t for t in candidates if t.label == trigger.label)
    asked = when_asked(trigger)
    if asked is not None:
        # A cancel reaches the newest task asked for before it was written, by
        # GitHub's clock on both sides, so a late delivery or a slow check never
        # stops newer work. A task whose trigger time is unknown is judged by
        # when we recorded it, with slack for the two clocks.
        candidates = tuple(
            t
            for t in candidates
            if (t.requested_at is not None and t.requested_at <= asked)
            or (
                t.requested_at is None
                and (t.created_at is None or t.created_at <= asked + CLOCK_SLACK)
            )
        )
    if candidates:
        target = candidates[0]
        return Prepared(
            "ready",
            f"cancel the task of dispatch {target.dispatch_id}",
            values={
                "action": "cancel",
                "target_dispatch_id": target.dispatch_id,
                "request": {"task": target.task_id},
                "command": "",
            },
        )
    if trigger.kind == "label":
        return Prepared(
            "drop", f"no task started by label {trigger.label!r} is running"
        )
    return Prepared(
        "skipped",
        "there is no running task to cancel",
        reply=f"@{trigger.requester}, there is no running Twill task on this issue to cancel.",
        reply_key=bounded_key(f"nothing-to-cancel:{dispatch.trigger_key}"),
    )


async def _follow_up(
    dispatch: Dispatch,
    issue: IssueSnapshot,
    trigger: Trigger,
    running: ActiveTask,
    settings: Settings,
    handover: Handover | None,
    installation: int,
) -> Prepared:
    """A `/twill <text>` on an issue whose task still runs: a message to that task."""
    task = f"[the task]({running.task_url})" if running.task_url else "the task"
    # Only the comment's own attachments: the task has the issue's already.
    comment_only = replace(issue, body="")
    attachments = trigger_attachments(comment_only, trigger, settings.github_web_host)
    if not trigger.instruction.strip() and not attachments:
        return Prepared(
            "skipped",
            "a bare command while a task is running",
            reply=(
                f"Twill is still working on {task} for this issue. Write "
                "`/twill <message>` to send it a follow-up, `/twill new` to start "
                "another task, or `/twill cancel` to stop it."
            ),
            reply_key=bounded_key(f"running:{dispatch.trigger_key}"),
        )
    if trigger.agent_named and _provider(trigger.agent) != _provider(running.agent):
        return Prepared(
            "skipped",
            "a follow-up cannot change the agent's provider",
            reply=(
                f"A follow-up can change the model of {task}, not its provider. "
                "Write `/twill new --agent ...` to start a task with another agent."
            ),
            reply_key=bounded_key(f"provider:{dispatch.trigger_key}"),
        )
    files: list[dict[str, str]] = file_parts(attachments)
    missing = ""
    if handover is not None:
        handed = await handover.hand(
            attachments, comment_only, trigger, installation, dispatch.id
        )
        files, missing = handed.parts, describe_missing(handed.missing)
    request = follow_up_request(
        issue, trigger, settings.command_max_chars, files, missing
    )
    return Prepared(
        "ready",
        f"a follow-up to the task of dispatch {running.dispatch_id}",
        values={
            "action": "message",
            "target_dispatch_id": running.dispatch_id,
            "agent": trigger.agent if trigger.agent_named else running.agent,
            "request": request,
            "command": request["message"],
            "files": request.get("files", []),
        },
    )


CLOCK_SLACK = timedelta(seconds=30)


def when_asked(trigger: Trigger) -> datetime | None:
    """When the trigger was written, by GitHub's clock; None if unknown."""
    return parse_utc(trigger.requested_at)


def _provider(agent: str | None) -> str | None:
    return agent.split("/", 1)[0] if agent else None


def _stricter(floor: str, asked: str | None) -> str:
    """The repository's minimum, but never below the operator's (BRIDGE_MIN_PERMISSION).

    A file in the repository, or in the organisation's `.github`, may raise the
    bar; lowering it would let whoever edits that file decide who spends the
    budget everywhere it applies.
    """
    if asked is None:
        return floor
    return max(floor, asked, key=PERMISSIONS.index)


async def _role(
    dispatch: Dispatch,
    trigger: Trigger,
    settings: Settings,
    github: GitHubClient,
    permissions: PermissionCache,
    installation: int,
) -> tuple[str, str] | None:
    """The requester's (role_name, permission); None for an allowed bot."""
    if trigger.requester.lower() in settings.allowed_bots:
        return None
    return await permissions.get(installation, dispatch.repository, trigger.requester)


async def _extras(
    config: RepoConfig, issue: IssueSnapshot, github: GitHubClient, installation: int
) -> Extras:
    extras = Extras(repo_instructions=config.instructions)
    if not issue.is_pull_request:
        return extras
    pull = await github.pull_request(installation, issue.repository, issue.number)
    return replace(
        extras,
        pull_url=str(pull.get("html_url") or issue.url),
        base_branch=str((pull.get("base") or {}).get("ref") or "") or None,
        head_branch=str((pull.get("head") or {}).get("ref") or "") or None,
    )
