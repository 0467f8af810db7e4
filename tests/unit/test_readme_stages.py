"""The README shows the tracking comment at each stage exactly as the bridge writes it.

`python -m tests.unit.test_readme_stages` prints the section to paste.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bridge.follow import JobView, PullRequest
from bridge.report import DispatchView, tracking_comment

README = Path(__file__).resolve().parents[2] / "README.md"

BASE = DispatchView(
    id=42,
    status="reported",
    intent="SWE",
    requester="alice",
    trigger_kind="label",
    trigger_label="twill",
    agent=None,
    task_url="https://twill.ai/tasks/fix-empty-input",
    job_status="PENDING",
    last_error=None,
    follow="active",
)
JOB = JobView(id="job_1", status="PENDING")
STARTED = replace(JOB, status="IN_PROGRESS", started_at="2026-12-01T10:00:05Z")
PULL = PullRequest(
    "https://github.com/octo-org/widgets/pull/31",
    31,
    "Guard against empty input",
    "octo-org/widgets",
    "open",
)
DONE = replace(
    STARTED,
    status="COMPLETED",
    completed_at="2026-12-01T10:20:05Z",
    prs=(PULL,),
    final_answer="Opened a pull request that rejects empty input with a clear error.",
)

STAGES: list[tuple[str, DispatchView]] = [
    (
        "Queued, waiting to retry (Twill answered 503)",
        replace(
            BASE,
            status="queued",
            task_url=None,
            job_status=None,
            last_error="Twill is unavailable (HTTP 503); retrying in 4 s",
            follow=None,
        ),
    ),
    ("Task created, job waiting to start", replace(BASE, job=JOB)),
    ("The agent is working", replace(BASE, job=STARTED)),
    (
        "Finished, with its pull request, after a follow-up",
        replace(
            BASE,
            job=DONE,
            follow="done",
            follow_ups=({"kind": "message", "by": "bob", "job": "job_2"},),
        ),
    ),
    (
        "A PLAN run, with its plan",
        replace(
            BASE,
            intent="PLAN",
            trigger_kind="comment",
            trigger_label=None,
            agent="claude-code/sonnet",
            follow="done",
            job=replace(
                STARTED,
                status="COMPLETED",
                completed_at="2026-12-01T10:06:40Z",
                plan="1. Reject empty input in `Widget.submit`.\n"
                "2. Show the error under the field.\n3. Add a regression test.",
                plan_outcome="ready",
            ),
        ),
    ),
    (
        "An ASK run whose answer is long (it gets a comment of its own)",
        replace(
            BASE,
            intent="ASK",
            trigger_label="twill-ask",
            follow="done",
            job=replace(
                STARTED,
                status="COMPLETED",
                completed_at="2026-12-01T10:03:00Z",
                final_answer="x" * 4000,
            ),
            answer_url="https://github.com/octo-org/widgets/issues/12#issuecomment-99",
        ),
    ),
    (
        "Failed",
        replace(
            BASE,
            follow="done",
            job=replace(
                STARTED,
                status="FAILED",
                completed_at="2026-12-01T10:02:05Z",
                error="The repository's test suite does not build.",
            ),
        ),
    ),
    (
        "Cancelled with `/twill cancel`",
        replace(
            BASE,
            follow="done",
            follow_ups=({"kind": "cancel", "by": "carol"},),
            job=replace(
                STARTED, status="CANCELLED", completed_at="2026-12-01T10:01:05Z"
            ),
        ),
    ),
    (
        "Still running after BRIDGE_POLL_MAX_AGE_SECONDS",
        replace(BASE, follow="expired", job=STARTED),
    ),
    (
        "The reply to `/twill cancel` (a comment of its own)",
        replace(BASE, action="cancel", trigger_kind="comment", requester="carol"),
    ),
]


def rendered(view: DispatchView) -> str:
    """The comment as it shows on GitHub, without its hidden marker line."""
    return tracking_comment(view).split("\n", 1)[1]


def section() -> str:
    parts = []
    for title, view in STAGES:
        parts += [f"<details><summary>{title}</summary>", "", "```markdown"]
        parts += [rendered(view), "```", "", "</details>", ""]
    return "\n".join(parts)


@pytest.mark.parametrize("stage", [title for title, _ in STAGES])
def test_the_readme_shows_the_comment_at_each_stage(stage: str) -> None:
    view = dict(STAGES)[stage]
    block = f"<details><summary>{stage}</summary>\n\n```markdown\n{rendered(view)}\n```"
    assert block in README.read_text(), f"README is out of date for {stage!r}"


if __name__ == "__main__":
    print(section())
