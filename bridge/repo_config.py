"""Per-repository settings from `.github/twill.yml`: pure parsing and merging.

The file lives on the repository's default branch, or else in the
organisation's `.github` repository at the same path. Any problem with it
means the bridge's own settings apply, and the problem is said on the issue
and in the log; it never stops a dispatch or crashes anything.

    enabled: true                  # false: the bridge ignores this repository
    labels:                        # replaces BRIDGE_LABELS for this repository
      twill: SWE
      agent-plan: PLAN
    default_agent: claude-code/sonnet
    allowed_intents: [SWE, PLAN, ASK]
    min_permission: maintain       # read, triage, write, maintain or admin
    instructions: |                # added to every command from this repository
      Run `make check` before opening a pull request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from bridge.settings import AGENT_PATTERN, INTENTS, PERMISSIONS

CONFIG_PATH = ".github/twill.yml"
MAX_BYTES = 64 * 1024
_KEYS = {
    "enabled",
    "labels",
    "default_agent",
    "allowed_intents",
    "min_permission",
    "instructions",
}


@dataclass(frozen=True)
class RepoConfig:
    """What `.github/twill.yml` may set; None means "the bridge's default"."""

    enabled: bool = True
    labels: Mapping[str, str] | None = None
    default_agent: str | None = None
    allowed_intents: frozenset[str] = field(default_factory=lambda: frozenset(INTENTS))
    min_permission: str | None = None
    instructions: str = ""
    source: str = "defaults"  # "owner/repo", "owner/.github" or "defaults"
    sha: str | None = None
    problem: str | None = None  # why the file was not used, when it was not


class ConfigProblem(ValueError):
    """The file is not a valid twill.yml; the message says what is wrong."""


def parse_config(text: str) -> RepoConfig:
    """The config a file's text describes; raises ConfigProblem if it is invalid."""
    if len(text.encode()) > MAX_BYTES:
        raise ConfigProblem(f"the file is over {MAX_BYTES // 1024} KiB")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigProblem(f"it is not valid YAML{where}") from error
    if data is None:
        return RepoConfig()
    if not isinstance(data, dict):
        raise ConfigProblem("it must be a mapping of settings")
    unknown = sorted(str(key) for key in data if key not in _KEYS)
    if unknown:
        raise ConfigProblem(
            f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        )
    return RepoConfig(
        enabled=_flag(data.get("enabled", True)),
        labels=_labels(data["labels"]) if "labels" in data else None,
        default_agent=_agent(data.get("default_agent")),
        allowed_intents=_intents(data.get("allowed_intents", list(INTENTS))),
        min_permission=_permission(data.get("min_permission")),
        instructions=_instructions(data.get("instructions")),
    )


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigProblem("'enabled' must be true or false")
    return value


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigProblem("'labels' must map label names to intents")
    labels = {}
    for name, intent in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigProblem("'labels' has an empty label name")
        if not isinstance(intent, str) or intent.strip().upper() not in INTENTS:
            raise ConfigProblem(
                f"label {name!r} must map to one of {', '.join(INTENTS)}"
            )
        labels[name.strip().lower()] = intent.strip().upper()
    return labels


def _agent(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not AGENT_PATTERN.match(value.strip()):
        raise ConfigProblem("'default_agent' must look like provider/model")
    return value.strip()


def _intents(value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not value:
        raise ConfigProblem("'allowed_intents' must be a non-empty list")
    intents = {str(item).strip().upper() for item in value}
    wrong = sorted(intents - set(INTENTS))
    if wrong:
        raise ConfigProblem(
            f"'allowed_intents' has {wrong[0]!r}; use {', '.join(INTENTS)}"
        )
    return frozenset(intents)


def _permission(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in PERMISSIONS:
        raise ConfigProblem(f"'min_permission' must be one of {', '.join(PERMISSIONS)}")
    return value.strip().lower()


def _instructions(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigProblem("'instructions' must be text")
    if len(value) > 8000:
        raise ConfigProblem("'instructions' is over 8,000 characters")
    return value.strip()


def permission_reaches(role_name: str, permission: str, minimum: str) -> bool:
    """Whether a collaborator's role is at least `minimum`.

    `role_name` is GitHub's name for the role (read, triage, write, maintain,
    admin, or an organisation's custom role); for a custom role, its base
    `permission` (read, write, admin) decides. `author_association` is never
    used: private organisation members show there as CONTRIBUTOR or NONE.
    """
    rank = {name: n for n, name in enumerate(PERMISSIONS)}
    role = role_name.lower()
    if role not in rank:
        role = permission.lower()
    return role in rank and rank[role] >= rank[minimum]
