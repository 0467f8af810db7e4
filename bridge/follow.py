"""Reading a task's progress out of Twill's answers: pure, JSON in, JobView out.

Contract: `bridge/contracts/twill-openapi-more.yaml`. `GET /tasks/{id}` answers
the task and its `latestJob`. Twill's documentation has changed over time, so
both shapes are read: one pull request as `pr {url, number, title}` (older)
or a list `prs [{repoFullName, prNumber, prUrl, title, state}]` (newer), and
`finalAnswer` only in newer versions. Anything else unexpected is dropped
field by field rather than failing the whole answer, because a status read
that fails on one odd field would stop telling the issue anything.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

ACTIVE = frozenset({"PENDING", "IN_PROGRESS"})
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_WORD = re.compile(r"[^A-Z_]")
_STATE = re.compile(r"[a-z_]{1,20}")
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# A URL that stays one Markdown link: nothing that could end it or start markup.
WEB_LINK = re.compile(r"https?://[^\s()<>\[\]`\\\"']+")

# What the bridge keeps of the agent's text; the tracking comment cuts again.
TEXT_MAX_CHARS = 60_000
PRS_MAX = 20


@dataclass(frozen=True)
class PullRequest:
    """A pull request the job opened."""

    url: str
    number: int | None = None
    title: str = ""
    repository: str | None = None
    state: str | None = None  # open | merged | closed (newer Twill only)


@dataclass(frozen=True)
class JobView:
    """The parts of a job the issue is told about."""

    id: str
    status: str
    type: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    prs: tuple[PullRequest, ...] = ()
    plan: str | None = None
    plan_outcome: str | None = None
    final_answer: str | None = None
    error: str | None = None

    @property
    def terminal(self) -> bool:
        """Whether the job has ended (Twill will not change it again)."""
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        """The view as JSON, for the dispatch's `job` column."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> JobView | None:
        """The view stored by `to_json`, or None."""
        if not data:
            return None
        prs = tuple(PullRequest(**pr) for pr in data.get("prs") or ())
        return cls(**{**data, "prs": prs})


def read_task(body: object) -> JobView | None:
    """The latest job in a `GET /tasks/{id}` answer; None if it has no job yet.

    Raises ValueError when the answer is not a task at all.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("task"), Mapping):
        raise ValueError("the answer holds no task")
    job = body.get("latestJob")
    if job is None:
        return None
    return read_job(job)


def read_job(job: object) -> JobView:
    """A job object (from a task, a job list or a follow-up's answer) as a JobView.

    Ids and statuses end up in the bridge's comments, so only the characters
    such values are made of are kept.
    """
    job_id = _text(job.get("id"), 100) if isinstance(job, Mapping) else None
    if job_id is None or not _ID.fullmatch(job_id):
        raise ValueError("the job has no usable id")
    assert isinstance(job, Mapping)
    status = _WORD.sub("", (_text(job.get("status")) or "PENDING").upper())[:20]
    return JobView(
        id=job_id,
        status=status or "UNKNOWN",
        type=_text(job.get("type"), 40),
        started_at=_text(job.get("startedAt"), 40),
        completed_at=_text(job.get("completedAt"), 40),
        prs=_pull_requests(job),
        plan=_text(job.get("plan"), TEXT_MAX_CHARS),
        plan_outcome=_text(job.get("planOutcome"), 200),
        final_answer=_text(job.get("finalAnswer"), TEXT_MAX_CHARS),
        error=_text(job.get("error"), 2_000),
    )


def parse_utc(text: str | None) -> datetime | None:
    """An ISO 8601 time from GitHub or Twill, timezone-aware; None if unreadable.

    A time without an offset is taken as UTC, the zone both write in.
    """
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def merge_prs(
    earlier: tuple[PullRequest, ...], latest: tuple[PullRequest, ...]
) -> tuple[PullRequest, ...]:
    """Pull requests of earlier jobs and the latest, one per URL, latest facts winning."""
    by_url = {pr.url: pr for pr in earlier}
    by_url.update({pr.url: pr for pr in latest})
    return tuple(by_url.values())[:PRS_MAX]


def poll_delay(
    polls: int, first: float, most: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds until the next status read after `polls` reads: grows by half each time, up to `most`.

    A tenth of jitter keeps tasks created in one burst from being read in one
    burst ever after.
    """
    base = min(most, first * 1.5 ** min(polls, 40))
    return base * (0.9 + 0.2 * rand())


def _pull_requests(job: Mapping[str, Any]) -> tuple[PullRequest, ...]:
    found: list[PullRequest] = []
    newer = job.get("prs")
    if isinstance(newer, list):
        for item in newer[:PRS_MAX]:
            if not isinstance(item, Mapping):
                continue
            pr = _pull_request(
                item.get("prUrl"),
                item.get("prNumber"),
                item.get("title"),
                item.get("repoFullName"),
                item.get("state"),
            )
            if pr is not None:
                found.append(pr)
    older = job.get("pr")
    if isinstance(older, Mapping):
        pr = _pull_request(older.get("url"), older.get("number"), older.get("title"))
        if pr is not None and all(known.url != pr.url for known in found):
            found.append(pr)
    return tuple(found)


def _pull_request(
    url: object,
    number: object,
    title: object,
    repository: object = None,
    state: object = None,
) -> PullRequest | None:
    link = _text(url, 500)
    # Only web links: the URL becomes a Markdown link in the bridge's comment.
    if link is None or not WEB_LINK.fullmatch(link):
        return None
    state_text = _text(state, 20)
    if state_text is not None and not _STATE.fullmatch(state_text.lower()):
        state_text = None
    return PullRequest(
        url=link,
        number=number
        if isinstance(number, int) and not isinstance(number, bool) and number > 0
        else None,
        title=_text(title, 300) or "",
        repository=repo
        if (repo := _text(repository, 200)) and _REPO.fullmatch(repo)
        else None,
        state=state_text.lower() if state_text else None,
    )


def _text(value: object, limit: int = 200) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    return value[:limit]
