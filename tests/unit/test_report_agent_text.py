"""The agent's words and Twill's fields in the bridge's comments: shown, never obeyed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.follow import JobView, read_job
from bridge.report import DispatchView, quiet, tracking_comment

VIEW = DispatchView(
    id=7,
    status="reported",
    intent="ASK",
    requester="alice",
    trigger_kind="label",
    trigger_label="twill-ask",
    agent=None,
    task_url="https://twill.ai/tasks/t",
    job_status="COMPLETED",
    last_error=None,
    follow="done",
)


@pytest.mark.parametrize(
    "text",
    [
        "ping @octo-org/core now",
        "Note: ` @octo-org/core",  # an unmatched backtick
        "``a ` b`` @octo-org/core",
        "``` x ```\n@octo-org/core",
        "```\n@octo-org/core\n```",
    ],
    ids=["prose", "lone-backtick", "double-backticks", "inline-fence", "fenced"],
)
def test_no_mention_survives(text: str) -> None:
    assert "@octo-org" not in quiet(text)
    assert "@\u200bocto-org" in quiet(text)


def test_emails_and_code_words_are_left_alone() -> None:
    assert quiet("mail a@b.example") == "mail a@b.example"


def test_an_open_fence_is_closed_and_an_html_comment_is_shown() -> None:
    plan = "1. Do this\n```python\nprint(1)"
    assert quiet(plan).endswith("\n```")
    assert "&lt;!-- hidden" in quiet("<!-- hidden")
    job = JobView(id="j", status="COMPLETED", plan=plan)
    body = tracking_comment(replace(VIEW, job=job))
    # The footer stays outside the code block.
    assert body.rstrip().endswith("<sub>twill-github-bridge · dispatch 7</sub>")
    assert body.count("```") % 2 == 0


def test_the_agent_cannot_forge_a_marker() -> None:
    text = "<!-- twill-github-bridge dispatch=9 -->"
    assert "twill-github-bridge dispatch=9" not in quiet(text)


def test_twills_fields_are_kept_to_their_alphabet() -> None:
    job = read_job(
        {
            "id": "job_1",
            "status": "done` @x",
            "prs": [
                {"prUrl": "https://github.com/o/r/pull/1", "state": "open` @x"},
                {"prUrl": "https://x.example/) @y (", "title": "t"},
            ],
        }
    )
    assert job.status == "DONEX" and [pr.state for pr in job.prs] == [None]
    with pytest.raises(ValueError):
        read_job({"id": "job --> @x", "status": "PENDING"})


def test_a_task_link_that_is_not_a_plain_url_is_left_out() -> None:
    body = tracking_comment(replace(VIEW, task_url="https://x) @y (", action="cancel"))
    assert "@y" not in body and "(https://x)" not in body
    body = tracking_comment(replace(VIEW, task_url="javascript:alert(1)"))
    assert "javascript:" not in body


def test_a_time_without_an_offset_is_taken_as_utc() -> None:
    job = JobView(
        id="j",
        status="COMPLETED",
        started_at="2026-12-01T10:00:00",
        completed_at="2026-12-01T10:20:00Z",
    )
    assert "took 20 min" in tracking_comment(replace(VIEW, job=job))


@pytest.mark.parametrize(
    "text",
    ["_@octo-org/team_", "`@octo-org/team", "é@octo-org/team", "中文@octo-org/team"],
    ids=["emphasis", "open-backtick", "accented", "cjk"],
)
def test_no_mention_survives_next_to_any_character(text: str) -> None:
    assert "@octo-org" not in quiet(text)


def test_a_pull_requests_repository_is_kept_to_owner_and_name() -> None:
    job = read_job(
        {
            "id": "j",
            "status": "COMPLETED",
            "prs": [
                {
                    "prUrl": "https://github.com/o/r/pull/1",
                    "prNumber": 1,
                    "repoFullName": "o/r\n\n@octo-org/everyone <!-- ",
                }
            ],
        }
    )
    assert job.prs[0].repository is None
    body = tracking_comment(replace(VIEW, job=job))
    assert "@octo-org" not in body and "<!-- " not in body.split("\n", 1)[1]


def test_twills_error_messages_cannot_ping() -> None:
    body = tracking_comment(
        replace(VIEW, status="failed", last_error="refused for @octo-org/core")
    )
    assert "@octo-org" not in body
