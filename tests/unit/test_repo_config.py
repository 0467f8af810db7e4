"""Parsing .github/twill.yml, and comparing permissions."""

from __future__ import annotations

import pytest

from bridge.repo_config import (
    ConfigProblem,
    RepoConfig,
    parse_config,
    permission_reaches,
)
from bridge.settings import INTENTS


def test_a_full_file() -> None:
    config = parse_config(
        "enabled: true\nlabels:\n  Agent: swe\n  agent-plan: PLAN\ndefault_agent: claude-code/sonnet\n"
        "allowed_intents: [swe, PLAN]\nmin_permission: Maintain\ninstructions: |\n  Run make check.\n"
    )
    assert config == RepoConfig(
        enabled=True,
        labels={"agent": "SWE", "agent-plan": "PLAN"},
        default_agent="claude-code/sonnet",
        allowed_intents=frozenset({"SWE", "PLAN"}),
        min_permission="maintain",
        instructions="Run make check.",
    )


@pytest.mark.parametrize(
    "text",
    ["", "# only a comment\n", "---\n"],
    ids=["empty", "comment", "document-marker"],
)
def test_an_empty_file_means_defaults(text: str) -> None:
    config = parse_config(text)
    assert (
        config.enabled
        and config.labels is None
        and config.allowed_intents == frozenset(INTENTS)
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("enabled: yes please\n", "'enabled' must be true or false"),
        ("labels: [twill]\n", "'labels' must map"),
        ("labels:\n  twill: BUILD\n", "must map to one of"),
        ("default_agent: sonnet\n", "provider/model"),
        ("allowed_intents: []\n", "non-empty list"),
        ("allowed_intents: [SWE, DEPLOY]\n", "'DEPLOY'"),
        ("min_permission: owner\n", "'min_permission' must be one of"),
        ("instructions: [1]\n", "'instructions' must be text"),
        ("instructions: " + "x" * 9000 + "\n", "over 8,000"),
        ("labes:\n  twill: SWE\n", "unknown setting 'labes'"),
        ("a: [\n", "not valid YAML at line"),
        ("x: " + "y" * 70_000, "over 64 KiB"),
    ],
    ids=[
        "list",
        "enabled",
        "labels-list",
        "intent",
        "agent",
        "intents-empty",
        "intent-unknown",
        "permission",
        "instructions-type",
        "instructions-long",
        "typo-key",
        "yaml",
        "too-big",
    ],
)
def test_invalid_files_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(
        ConfigProblem, match=problem.replace("(", r"\(").replace("[", r"\[")
    ):
        parse_config(text)


def test_yaml_tags_are_not_executed() -> None:
    with pytest.raises(ConfigProblem):
        parse_config("enabled: !!python/object/apply:os.system ['true']\n")


@pytest.mark.parametrize(
    ("role", "permission", "minimum", "expected"),
    [
        ("admin", "admin", "write", True),
        ("maintain", "write", "maintain", True),
        ("write", "write", "maintain", False),
        ("triage", "read", "triage", True),
        ("triage", "read", "write", False),
        ("read", "read", "read", True),
        ("", "none", "read", False),
        ("none", "none", "read", False),
        ("security-reviewer", "write", "write", True),
        ("security-reviewer", "read", "write", False),
        ("ADMIN", "admin", "admin", True),
    ],
    ids=lambda v: str(v),
)
def test_permission_reaches(
    role: str, permission: str, minimum: str, expected: bool
) -> None:
    assert permission_reaches(role, permission, minimum) is expected
