"""What the bridge writes on the issue: pure text from a dispatch's state.

Every comment starts with a hidden marker naming the dispatch, so a comment
whose posting outcome was lost can be found again instead of posted twice.
GitHub caps a comment body at 65,536 characters; `fit` keeps us under it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bridge.follow import WEB_LINK, JobView, parse_utc
from bridge.triggers import INTENT_LABELS

GITHUB_COMMENT_MAX = 65_536
MARKER_PREFIX = "<!-- twill-github-bridge"


def marker(dispatch_id: int) -> str:
    """The hidden line that identifies dispatch `dispatch_id`'s tracking comment."""
    return f"{MARKER_PREFIX} dispatch={dispatch_id} -->"


def answer_marker(dispatch_id: int, job_id: str) -> str:
    """The hidden line that identifies the comment holding a job's long answer."""
    return f"{MARKER_PREFIX} answer={dispatch_id}:{job_id} -->"


def reply_marker(key: str) -> str:
    """The hidden line that identifies a reply."""
    return f"{MARKER_PREFIX} reply={key} -->"


@dataclass(frozen=True)
class DispatchView:
    """The fields of a dispatch that the tracking comment shows."""

    id: int
    status: str
    intent: str
    requester: str
    trigger_kind: str
    trigger_label: str | None
    agent: str | None
    task_url: str | None
    job_status: str | None
    last_error: str | None
    dry_run: bool = False
    config_problem: str | None = None
    action: str = "create"  # create | message | cancel
    job: JobView | None = None
    follow: str | None = None
    follow_ups: tuple[dict[str, Any], ...] = field(default=())
    answer_url: str | None = None  # the long answer's own comment


_HEADLINES = {
    "queued": "⏳ Queued for Twill",
    "sending": "⏳ Sending to Twill",
    "created": "🚀 Twill task created",
    "reported": "🚀 Twill task created",
    "failed": "😕 Could not start a Twill task",
    "uncertain": "⚠️ Not sure whether a Twill task was started",
    "not_sent": "📝 Dry run: the task was composed but not sent",
}


# The agent's final answer goes in the tracking comment up to this length,
# and in a comment of its own beyond it.
ANSWER_INLINE_MAX = 3_000

_JOB_HEADLINES = {
    "PENDING": "🚀 Twill task created · waiting to start",
    "IN_PROGRESS": "🏗️ Twill is working on it",
    "COMPLETED": "✅ Twill finished",
    "FAILED": "❌ Twill's run failed",
    "CANCELLED": "🛑 Twill's run was cancelled",
}

_FOLLOW_NOTES = {
    "expired": "ℹ️ The bridge stopped following this task after "
    "{hours} h; the task's page on Twill has its latest state.",
    "unavailable": "ℹ️ This Twill does not report task status to the bridge, so "
    "this comment is not kept up to date; the task's page has the latest.",
    "gone": "ℹ️ Twill no longer has this task.",
}


def answer_is_long(job: JobView | None) -> bool:
    """Whether the job's final answer needs a comment of its own."""
    return bool(job and job.final_answer and len(job.final_answer) > ANSWER_INLINE_MAX)


def answer_comment(view: DispatchView, job: JobView) -> str:
    """The comment that holds a long final answer."""
    task = f" · [task]({url})" if (url := _safe_url(view.task_url)) else ""
    lines = [
        answer_marker(view.id, job.id),
        f"**Twill's answer** for @{view.requester}{task}",
        "",
        quiet(job.final_answer or ""),
        "",
        f"<sub>twill-github-bridge · dispatch {view.id}</sub>",
    ]
    return fit("\n".join(lines))


def tracking_comment(view: DispatchView, max_age_hours: float = 48) -> str:
    """The body of the dispatch's comment on the issue for its current state."""
    if view.action == "cancel":
        return _cancel_comment(view)
    if view.action == "message":
        return _follow_up_comment(view)
    job = view.job if view.status in ("created", "reported") else None
    headline = _HEADLINES.get(view.status, view.status)
    if job is not None and job.status in _JOB_HEADLINES:
        headline = _JOB_HEADLINES[job.status]
    how = (
        f"label `{view.trigger_label}`"
        if view.trigger_kind == "label"
        else "a `/twill` comment"
    )
    lines = [
        marker(view.id),
        f"**{headline}**",
        "",
        f"- Intent: `{view.intent}` ({INTENT_LABELS.get(view.intent, view.intent)})",
        f"- Requested by: @{view.requester} with {how}",
    ]
    if view.agent:
        lines.append(f"- Agent: `{view.agent}`")
    if url := _safe_url(view.task_url):
        lines.append(f"- Task: {url}")
    if job is not None:
        lines.append(f"- Job: `{job.status}`{_timing(job)}")
        lines += _pull_request_lines(job)
    elif view.job_status:
        lines.append(f"- Job status: `{view.job_status}`")
    lines += _follow_up_lines(view.follow_ups)
    if job is not None:
        lines += _job_text(view, job)
    if view.follow in _FOLLOW_NOTES and view.status in ("created", "reported"):
        note = _FOLLOW_NOTES[view.follow].format(hours=f"{max_age_hours:g}")
        lines += ["", note]
    if view.status == "queued" and view.last_error:
        lines += ["", f"Waiting to retry: {_one_paragraph(view.last_error)}"]
    if view.status == "failed" and view.last_error:
        lines += ["", f"Reason: {_one_paragraph(view.last_error)}"]
    if view.status == "uncertain":
        lines += [
            "",
            "The request may have reached Twill, so the bridge will not send it again "
            "on its own. An admin can check Twill and retry with "
            f"`twill-bridge dispatches retry {view.id}`.",
        ]
        if view.last_error:
            lines.append(f"Details: {_one_paragraph(view.last_error)}")
    if view.config_problem:
        lines += [
            "",
            f"⚠️ {_one_paragraph(view.config_problem)}; the bridge's defaults apply.",
        ]
    lines += ["", f"<sub>twill-github-bridge · dispatch {view.id}</sub>"]
    return fit("\n".join(lines))


def _timing(job: JobView) -> str:
    started, completed = parse_utc(job.started_at), parse_utc(job.completed_at)
    parts = []
    if started is not None:
        parts.append(f"started {started:%Y-%m-%d %H:%M} UTC")
    if started is not None and completed is not None and completed >= started:
        parts.append(f"took {_duration((completed - started).total_seconds())}")
    elif completed is not None:
        parts.append(f"ended {completed:%Y-%m-%d %H:%M} UTC")
    return "".join(f" · {part}" for part in parts)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _pull_request_lines(job: JobView) -> list[str]:
    lines = []
    for pr in job.prs:
        name = f"#{pr.number}" if pr.number else "pull request"
        if pr.repository:
            name = f"{pr.repository}{name if pr.number else ''}"
        title = f" {_one_line(quiet(pr.title))}" if pr.title else ""
        state = f" ({pr.state})" if pr.state else ""
        lines.append(f"- Pull request: [{_link_text(name + title)}]({pr.url}){state}")
    return lines


def _follow_up_lines(follow_ups: tuple[dict[str, Any], ...]) -> list[str]:
    lines = []
    for note in follow_ups[-10:]:
        who = f"@{note.get('by', '?')}"
        if note.get("kind") == "cancel":
            lines.append(f"- Cancel asked by {who}")
        else:
            job = f" (job `{note['job']}`)" if note.get("job") else ""
            lines.append(f"- Follow-up from {who}{job}")
    if len(follow_ups) > 10:
        lines.insert(0, f"- … and {len(follow_ups) - 10} earlier follow-ups")
    return lines


def _job_text(view: DispatchView, job: JobView) -> list[str]:
    """The plan, the answer and the reason for a failure, as the job gave them."""
    lines: list[str] = []
    if job.plan:
        outcome = f" ({_one_line(quiet(job.plan_outcome))})" if job.plan_outcome else ""
        lines += [
            "",
            f"**Plan**{outcome}",
            "",
            "<details open><summary>The plan</summary>",
            "",
            quiet(job.plan),
            "",
            "</details>",
        ]
    if job.final_answer:
        title = "Answer" if view.intent == "ASK" else "Summary"
        if answer_is_long(job):
            where = (
                f"[a comment of its own]({view.answer_url})"
                if view.answer_url
                else "a comment of its own (posting it)"
            )
            lines += ["", f"**{title}**: too long for this comment; it is in {where}."]
        else:
            lines += ["", f"**{title}**", "", quiet(job.final_answer)]
    if job.status == "FAILED":
        lines += [
            "",
            f"Reason: {_one_paragraph(job.error or 'Twill gave none')}",
        ]
    return lines


def _cancel_comment(view: DispatchView) -> str:
    asked = (
        f"by removing the label `{view.trigger_label}`"
        if view.trigger_kind == "label"
        else "with `/twill cancel`"
    )
    url = _safe_url(view.task_url)
    task = f"[the Twill task]({url})" if url else "the Twill task"
    if view.status in ("created", "reported"):
        lines = [f"**🛑 Cancelled {task}**", "", f"@{view.requester} asked {asked}."]
    elif view.status == "failed":
        lines = [
            f"**😕 Could not cancel {task}**",
            "",
            f"@{view.requester} asked {asked}.",
            f"Reason: {_one_paragraph(view.last_error or 'unknown')}",
        ]
    else:
        lines = [f"**⏳ Cancelling {task}**", "", f"@{view.requester} asked {asked}."]
    return _framed(view, lines)


def _follow_up_comment(view: DispatchView) -> str:
    """Only a follow-up that did not go through gets a comment of its own."""
    if view.status == "uncertain":
        lines = [
            "**⚠️ Not sure whether the follow-up reached Twill**",
            "",
            "The bridge will not send it again on its own; an admin can check the "
            f"task and retry with `twill-bridge dispatches retry {view.id}`.",
        ]
    else:
        lines = [
            "**😕 Could not send the follow-up to Twill**",
            "",
            f"Reason: {_one_paragraph(view.last_error or 'unknown')}",
        ]
    lines[1:1] = [f"From @{view.requester}."] if view.requester else []
    return _framed(view, lines)


def _framed(view: DispatchView, lines: list[str]) -> str:
    body = [
        marker(view.id),
        *lines,
        "",
        f"<sub>twill-github-bridge · dispatch {view.id}</sub>",
    ]
    return fit("\n".join(body))


# GitHub starts a mention at an `@` after anything but an ASCII letter or
# digit (so e-mail addresses do not ping, while `_@team` and `é@team` do).
_MENTION = re.compile(r"(?<![A-Za-z0-9])@(?=[A-Za-z0-9])")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def quiet(text: str) -> str:
    """The agent's text, unable to ping anyone, hide the rest of the comment, or
    pose as one of our comments.

    Every `@name` gets a zero-width space after its `@`, wherever it stands
    (code, emphasis, after a letter of any script): GitHub's rules for where a
    mention starts are subtle enough that one thought harmless could still ping
    a whole team (a prompt in an issue can steer what the agent writes). An
    e-mail address keeps working as text. An HTML comment opener is shown, not obeyed, and a code
    fence the text leaves open is closed, so the bridge's own lines after it
    still render.
    """
    text = text.replace(MARKER_PREFIX, "<!-- (quoted) twill github bridge")
    text = _MENTION.sub("@\u200b", text).replace("<!--", "&lt;!--")
    fence = None
    for line in text.split("\n"):
        opened = _FENCE.match(line)
        if opened is None:
            continue
        mark = opened.group(1)
        if fence is None:
            fence = mark
        elif mark[0] == fence[0] and len(mark) >= len(fence):
            fence = None
    return text + f"\n{fence}" if fence is not None else text


def _safe_url(url: str | None) -> str | None:
    """`url` when it is a plain web link, else None (it is left out)."""
    return url if url and WEB_LINK.fullmatch(url) else None


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _link_text(text: str) -> str:
    return text.replace("[", "\\[").replace("]", "\\]")


def fit(body: str, limit: int = GITHUB_COMMENT_MAX) -> str:
    """`body` cut to GitHub's comment limit, with a visible note when cut."""
    if len(body) <= limit:
        return body
    note = "\n\n_[… cut to fit GitHub's comment size limit …]_"
    return body[: limit - len(note)] + note


def _one_paragraph(text: str) -> str:
    """A peer's message (Twill's error, a config problem) as one quiet line."""
    return " ".join(quiet(text).split())[:1000]
