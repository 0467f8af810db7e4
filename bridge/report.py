"""What the bridge writes on the issue: pure text from a dispatch's state.

Every comment starts with a hidden marker naming the dispatch, so a comment
whose posting outcome was lost can be found again instead of posted twice.
GitHub caps a comment body at 65,536 characters; `fit` keeps us under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.triggers import INTENT_LABELS

GITHUB_COMMENT_MAX = 65_536
MARKER_PREFIX = "<!-- twill-github-bridge"


def marker(dispatch_id: int) -> str:
    """The hidden line that identifies dispatch `dispatch_id`'s tracking comment."""
    return f"{MARKER_PREFIX} dispatch={dispatch_id} -->"


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


_HEADLINES = {
    "queued": "⏳ Queued for Twill",
    "sending": "⏳ Sending to Twill",
    "created": "🚀 Twill task created",
    "reported": "🚀 Twill task created",
    "failed": "😕 Could not start a Twill task",
    "uncertain": "⚠️ Not sure whether a Twill task was started",
    "not_sent": "📝 Dry run: the task was composed but not sent",
}


def tracking_comment(view: DispatchView) -> str:
    """The body of the dispatch's tracking comment for its current state."""
    how = (
        f"label `{view.trigger_label}`"
        if view.trigger_kind == "label"
        else "a `/twill` comment"
    )
    lines = [
        marker(view.id),
        f"**{_HEADLINES.get(view.status, view.status)}**",
        "",
        f"- Intent: `{view.intent}` ({INTENT_LABELS.get(view.intent, view.intent)})",
        f"- Requested by: @{view.requester} with {how}",
    ]
    if view.agent:
        lines.append(f"- Agent: `{view.agent}`")
    if view.task_url:
        lines.append(f"- Task: {view.task_url}")
    if view.job_status:
        lines.append(f"- Job status: `{view.job_status}`")
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


def fit(body: str, limit: int = GITHUB_COMMENT_MAX) -> str:
    """`body` cut to GitHub's comment limit, with a visible note when cut."""
    if len(body) <= limit:
        return body
    note = "\n\n_[… cut to fit GitHub's comment size limit …]_"
    return body[: limit - len(note)] + note


def _one_paragraph(text: str) -> str:
    return " ".join(text.split())[:1000]
