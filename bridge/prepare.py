"""Before a dispatch is sent: may this person ask, does the repository allow it,
and what exactly goes to Twill. GitHub is asked; Twill is not.

The checks run in the worker, not while GitHub waits for its webhook answer,
because they need GitHub's API. The result says what to do with the dispatch;
the worker writes it down.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bridge.attachments import trigger_attachments
from bridge.compose import Extras, create_task_request
from bridge.files import describe_missing
from bridge.github import GitHubClient
from bridge.handover import Handover
from bridge.models import Dispatch
from bridge.repo_access import ConfigCache, PermissionCache
from bridge.repo_config import CONFIG_PATH, RepoConfig, permission_reaches
from bridge.settings import PERMISSIONS, Settings
from bridge.store import bounded_key
from bridge.triggers import IssueSnapshot, Trigger, from_snapshot


@dataclass(frozen=True)
class Prepared:
    """The outcome of the checks for one dispatch."""

    outcome: str  # "ready" | "drop" | "skipped" | "denied"
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
) -> Prepared:
    """Check the dispatch's trigger and compose its final request."""
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
