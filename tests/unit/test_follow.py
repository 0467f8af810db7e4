"""Reading Twill's task answers (both documented shapes) and the poll schedule."""

from __future__ import annotations

import pytest

from bridge.follow import JobView, PullRequest, merge_prs, poll_delay, read_task

OLDER = {
    "task": {"id": "t1", "slug": "s", "title": "T", "url": "https://twill.ai/tasks/s"},
    "latestJob": {
        "id": "job_1",
        "status": "COMPLETED",
        "type": "SWE",
        "startedAt": "2026-12-01T10:00:05Z",
        "completedAt": "2026-12-01T10:20:00Z",
        "pr": {"url": "https://github.com/o/r/pull/12", "number": 12, "title": "Fix"},
        "plan": None,
        "planOutcome": None,
    },
}
NEWER_JOB = {
    "id": "job_2",
    "status": "in_progress",
    "prs": [
        {
            "repoFullName": "o/r",
            "prNumber": 13,
            "prUrl": "https://github.com/o/r/pull/13",
            "title": "More",
            "state": "merged",
        },
        {"prUrl": "javascript:alert(1)", "title": "not a web link"},
        "not an object",
    ],
    "finalAnswer": "Done.",
}


def test_the_older_shape() -> None:
    job = read_task(OLDER)
    assert job == JobView(
        id="job_1",
        status="COMPLETED",
        type="SWE",
        started_at="2026-12-01T10:00:05Z",
        completed_at="2026-12-01T10:20:00Z",
        prs=(PullRequest("https://github.com/o/r/pull/12", 12, "Fix"),),
    )
    assert job.terminal


def test_the_newer_shape_keeps_only_web_links() -> None:
    job = read_task({**OLDER, "latestJob": NEWER_JOB})
    assert job is not None and job.status == "IN_PROGRESS" and not job.terminal
    assert job.prs == (
        PullRequest("https://github.com/o/r/pull/13", 13, "More", "o/r", "merged"),
    )
    assert job.final_answer == "Done."


def test_a_task_with_no_job_yet() -> None:
    assert read_task({**OLDER, "latestJob": None}) is None


@pytest.mark.parametrize(
    "body",
    [None, [], {"task": "x"}, {"tasks": []}, {**OLDER, "latestJob": {"status": "X"}}],
    ids=["null", "list", "task-not-object", "no-task", "job-without-id"],
)
def test_answers_that_are_not_a_task_are_refused(body: object) -> None:
    with pytest.raises(ValueError):
        read_task(body)


def test_odd_fields_are_dropped_one_by_one() -> None:
    job = read_task(
        {
            **OLDER,
            "latestJob": {
                "id": "j",
                "status": 5,
                "plan": {"not": "text"},
                "startedAt": 17,
                "pr": "https://github.com/o/r/pull/1",
                "prs": {"not": "a list"},
                "finalAnswer": "x" * 100_000,
            },
        }
    )
    assert job is not None
    assert job.status == "PENDING" and job.plan is None and job.started_at is None
    assert job.prs == () and len(job.final_answer or "") == 60_000


def test_a_view_survives_its_json() -> None:
    job = read_task({**OLDER, "latestJob": NEWER_JOB})
    assert job is not None and JobView.from_json(job.to_json()) == job


def test_pull_requests_of_earlier_jobs_are_kept() -> None:
    a = PullRequest("https://github.com/o/r/pull/1", 1, "A", state="open")
    b = PullRequest("https://github.com/o/r/pull/2", 2, "B")
    a_merged = PullRequest("https://github.com/o/r/pull/1", 1, "A", state="merged")
    assert merge_prs((a,), (b, a_merged)) == (a_merged, b)


def test_the_poll_schedule_grows_by_half_to_its_cap() -> None:
    middle = [poll_delay(n, 30, 600, rand=lambda: 0.5) for n in range(10)]
    assert middle[:4] == [30, 45, 67.5, 101.25]
    assert middle[-1] == 600
    assert poll_delay(0, 30, 600, rand=lambda: 0.0) == 27
    assert poll_delay(100, 30, 600, rand=lambda: 1.0) == 660
