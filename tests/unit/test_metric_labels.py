"""Metric labels are bounded: route templates from the peers' descriptions, known events."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bridge.metrics import GITHUB_ROUTES, TWILL_ROUTES, event_label, route_template

ROOT = Path(__file__).resolve().parents[2]


def described_paths(*files: Path) -> set[str]:
    paths: set[str] = set()
    for file in files:
        paths |= set(yaml.safe_load(file.read_text())["paths"])
    return paths


def test_every_path_of_twills_contract_has_its_template() -> None:
    contract = ROOT / "bridge" / "contracts"
    described = described_paths(*contract.glob("twill-openapi*.yaml"))
    assert described == set(TWILL_ROUTES)


def test_every_path_of_githubs_description_has_its_template() -> None:
    described = described_paths(
        ROOT / "tests" / "contracts" / "github-rest-subset.yaml"
    )
    assert described == set(GITHUB_ROUTES)


@pytest.mark.parametrize(
    ("peer", "path", "template"),
    [
        ("twill", "tasks", "/tasks"),
        ("twill", "tasks/tsk_123", "/tasks/{taskIdOrSlug}"),
        ("twill", "tasks/tsk_123/jobs", "/tasks/{taskId}/jobs"),
        (
            "github",
            "app/installations/77/access_tokens",
            "/app/installations/{installation_id}/access_tokens",
        ),
        ("github", "repos/o/r/installation", "/repos/{owner}/{repo}/installation"),
        (
            "github",
            "repos/o/r/issues/12",
            "/repos/{owner}/{repo}/issues/{issue_number}",
        ),
        (
            "github",
            "repos/o/r/issues/12/comments",
            "/repos/{owner}/{repo}/issues/{issue_number}/comments",
        ),
        (
            "github",
            "repos/o/r/issues/comments/9001",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}",
        ),
        (
            "github",
            "repos/o/r/issues/comments/9001/reactions",
            "/repos/{owner}/{repo}/issues/comments/{comment_id}/reactions",
        ),
        (
            "github",
            "repos/o/r/issues/12/reactions",
            "/repos/{owner}/{repo}/issues/{issue_number}/reactions",
        ),
        (
            "github",
            "repos/o/r/collaborators/some%20one/permission",
            "/repos/{owner}/{repo}/collaborators/{username}/permission",
        ),
        # A file path in the repository keeps its slashes under one template.
        (
            "github",
            "repos/o/r/contents/.github/twill.yml",
            "/repos/{owner}/{repo}/contents/{path}",
        ),
        (
            "github",
            "/repos/o/r/pulls/5?per_page=100",
            "/repos/{owner}/{repo}/pulls/{pull_number}",
        ),
        ("github", "repos/o/r/issues/12/comments/extra", "other"),
        ("github", "repos/o/r/secret-scanning/alerts", "other"),
        ("twill", "tasks/a/b/c/d", "other"),
    ],
    ids=lambda value: value if isinstance(value, str) and "/" not in value else None,
)
def test_a_path_is_labelled_by_its_template(
    peer: str, path: str, template: str
) -> None:
    assert route_template(peer, path) == template


@pytest.mark.parametrize(
    ("event", "label"),
    [
        ("issues", "issues"),
        ("issue_comment", "issue_comment"),
        ("pull_request", "pull_request"),
        ("ping", "ping"),
        ("workflow_run", "other"),
        ("", "other"),
        ("issues\u202e" * 50, "other"),
    ],
)
def test_events_the_bridge_does_not_act_on_share_one_label(
    event: str, label: str
) -> None:
    assert event_label(event) == label
