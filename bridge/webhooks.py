"""`POST /api/github/webhooks`: receive, verify, record, decide, queue, answer.

Nothing here waits on Twill or GitHub: the delivery row and the dispatch it
asks for are written in one transaction (shared with the deliveries that
arrive alongside, bridge/recorder.py), then GitHub gets its answer (it gives
up after 10 s and does not retry on its own), and the worker does the rest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import JSONResponse

from bridge import log
from bridge.attachments import trigger_attachments
from bridge.compose import create_task_request, task_title
from bridge.jsoncodec import loads
from bridge.recorder import NotRecorded
from bridge.signature import SignatureError, verify
from bridge.store import (
    DeliveryMeta,
    Pending,
    bounded_key,
    count_refused_signature,
)
from bridge.triggers import Decision, Rules, decide, fits, to_snapshot

MAX_BODY_BYTES = 25 * 1024 * 1024
# Deliveries above this size (or of unknown size) are handled one at a time.
LARGE_BODY_BYTES = 1024 * 1024


class BodyTooLarge(Exception):
    """The request body is over MAX_BODY_BYTES."""


def problem(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """A JSON error answer: `{"error": {"code": ..., "message": ...}}`."""
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}}, status_code=status
    )


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytearray:
    """The raw body, refusing to hold more than `limit` bytes in memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    # One growing buffer: a list of chunks joined at the end holds the body twice.
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge
        body += chunk
    return body


async def receive_webhook(request: Request) -> JSONResponse:
    """Handle one delivery from GitHub; large ones one at a time.

    A large delivery costs several times its size while it is parsed and
    recorded, so they take turns, and the memory they need stays that of one
    (uvicorn stops reading a request's socket while its body is not read).
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= LARGE_BODY_BYTES:
        return await _receive_webhook(request)
    async with request.app.state.large_deliveries:
        return await _receive_webhook(request)


def parse_payload(body: bytes | bytearray, content_type: str) -> Any:
    """The JSON payload of a delivery, sent raw or as a form's `payload` field."""
    if (
        content_type.split(";", 1)[0].strip().lower()
        == "application/x-www-form-urlencoded"
    ):
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        values = fields.get("payload")
        if not values:
            raise ValueError("the form has no payload field")
        text = values[0]
        payload = json.loads(text)
        nul = "\\u0000" in text
    else:
        payload = loads(body)
        nul = b"\\u0000" in body
    # PostgreSQL text cannot hold U+0000, which JSON can carry as an escape.
    return _without_nul(payload) if nul else payload


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


async def _receive_webhook(request: Request) -> JSONResponse:
    state = request.app.state
    settings = state.settings
    try:
        body = await read_body(request)
    except BodyTooLarge:
        state.metrics.delivery(request.headers.get("x-github-event", ""), "too_large")
        return problem(413, "too_large", f"the body is over {MAX_BODY_BYTES} bytes")

    headers = request.headers
    try:
        verify(
            body,
            [secret.reveal() for secret in settings.webhook_secrets],
            headers.get("x-hub-signature-256"),
            headers.get("x-hub-signature"),
            allow_sha1=settings.allow_sha1,
        )
    except SignatureError as error:
        state.counters["refused_signatures"] += 1
        state.metrics.delivery(headers.get("x-github-event", ""), "bad_signature")
        # One upsert: the dashboard's count must survive restarts and add up
        # across replicas, and the 401 must stay cheap for a flood of them.
        # A database that cannot take it loses the count, never the answer.
        try:
            async with state.sessions() as session:
                await count_refused_signature(session)
        except (SQLAlchemyError, OSError) as failure:
            log.warning("refused signature not counted", error=type(failure).__name__)
        log.warning(
            "delivery refused",
            reason=error.reason,
            delivery_id=headers.get("x-github-delivery"),
        )
        return problem(401, "bad_signature", error.reason)

    event = headers.get("x-github-event", "").strip()
    delivery_id = headers.get("x-github-delivery", "").strip()
    if not event or not delivery_id or len(delivery_id) > 100:
        state.metrics.delivery(event, "bad_headers")
        return problem(
            400, "bad_headers", "X-GitHub-Event and X-GitHub-Delivery are required"
        )
    try:
        payload = parse_payload(body, headers.get("content-type", ""))
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: JSON nested deeper than Python's parser will follow.
        state.metrics.delivery(event, "bad_json")
        return problem(400, "bad_json", "the body is not valid JSON")
    if not isinstance(payload, dict):
        state.metrics.delivery(event, "bad_json")
        return problem(400, "bad_json", "the payload is not a JSON object")

    meta = _meta(delivery_id, event, payload, len(body))
    decision = (
        Decision("ignore", "ping")
        if event == "ping"
        else decide(event, payload, _rules_for(state, meta.repository))
    )
    dispatch, reply = _work_for(decision, meta, settings)
    outcome = "queued" if dispatch else ("replied" if reply else "ignored")
    try:
        # Committed (with the deliveries that arrived alongside) before we answer.
        recorded = await state.recorder.record(
            Pending(meta, outcome, decision.reason, dispatch, reply)
        )
    except NotRecorded:
        state.metrics.delivery(event, "not_recorded")
        return problem(
            503,
            "not_recorded",
            "the delivery could not be recorded; redeliver it later",
        )
    log.info(
        "delivery recorded",
        delivery_id=delivery_id,
        event=event,
        action=meta.action,
        repository=meta.repository,
        issue=meta.issue_number,
        outcome=recorded.outcome,
        dispatch_id=recorded.dispatch_id,
    )
    state.metrics.delivery(event, recorded.outcome)
    if recorded.outcome in ("queued", "replied") and state.worker is not None:
        state.worker.wake()
    answer = {
        "delivery": delivery_id,
        "outcome": recorded.outcome,
        "reason": recorded.reason,
    }
    if recorded.dispatch_id is not None:
        answer["dispatch"] = recorded.dispatch_id
    return JSONResponse(
        answer, status_code=202 if recorded.outcome == "queued" else 200
    )


def _rules_for(state: Any, repository: str | None) -> Rules:
    """The global rules, with the repository's own label table when it is known.

    When it is not known yet (the worker reads .github/twill.yml), an unknown
    label gives a tentative dispatch that the worker drops if the file does not
    name it; in dry-run there is no GitHub to ask, and the global table is final.
    """
    rules: Rules = state.rules
    if state.configs is None or repository is None:
        return rules
    config = state.configs.cached(repository)
    if config is None:
        return replace(rules, labels_final=False)
    labels = config.labels if config.labels is not None else rules.labels
    return replace(rules, labels=labels)


def _meta(
    delivery_id: str, event: str, payload: Mapping[str, Any], size: int
) -> DeliveryMeta:
    def get(*path: str) -> Any:
        value: Any = payload
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        return value

    installation = get("installation", "id")
    number = get("issue", "number")
    action, repo, sender = (
        get("action"),
        get("repository", "full_name"),
        get("sender", "login"),
    )
    return DeliveryMeta(
        delivery_id=delivery_id,
        event=event[:64],
        action=action[:64] if isinstance(action, str) else None,
        installation_id=installation if fits(installation, 63) else None,
        repository=repo[:200] if isinstance(repo, str) else None,
        issue_number=number if fits(number, 31) else None,
        sender=sender[:100] if isinstance(sender, str) else None,
        body_bytes=size,
    )


def _work_for(
    decision: Decision,
    meta: DeliveryMeta,
    settings: Any,
    compose: bool | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The dispatch or reply row a decision asks for, as column values.

    The create-task request is composed here only when `compose` is true (by
    default: in dry-run). A live dispatch keeps the snapshot, and the worker
    composes its request from it once the checks have run (bridge/prepare.py),
    so composing it on receipt would be work and bytes thrown away; in dry-run
    the checks never run, and the stored request is what the dispatch shows.
    """
    issue, trigger = decision.issue, decision.trigger
    if decision.outcome == "dispatch" and issue is not None and trigger is not None:
        cancel = trigger.action == "cancel"
        # A cancel names its task once the worker knows which one is running.
        request: dict[str, Any] = {}
        if not cancel and (settings.dry_run if compose is None else compose):
            attachments = trigger_attachments(issue, trigger, settings.github_web_host)
            request = create_task_request(
                issue, trigger, attachments, settings.command_max_chars
            )
        return {
            "action": "cancel" if cancel else "create",
            "trigger_key": bounded_key(trigger.key),
            "delivery_id": meta.delivery_id,
            "installation_id": meta.installation_id,
            "repository": issue.repository,
            "repository_id": issue.repository_id,
            "issue_number": issue.number,
            "issue_title": issue.title,
            "issue_url": issue.url,
            "is_pull_request": issue.is_pull_request,
            "trigger_kind": trigger.kind,
            "trigger_label": trigger.label,
            "trigger_comment_id": trigger.comment_id,
            "requester": trigger.requester,
            "intent": trigger.intent,
            "agent": trigger.agent,
            "title": request.get("title") or task_title(issue),
            "command": request.get("command", ""),
            "files": request.get("files", []),
            "request": request,
            "dry_run": settings.dry_run,
            "status": "not_sent" if settings.dry_run else "queued",
            "snapshot": to_snapshot(issue, trigger),
            "prepared": False,
        }, None
    if (
        decision.outcome == "reply"
        and issue is not None
        and decision.reply
        and decision.reply_key
    ):
        return None, {
            "key": bounded_key(decision.reply_key),
            "installation_id": meta.installation_id,
            "repository": issue.repository,
            "issue_number": issue.number,
            "body": decision.reply,
            "status": "not_sent" if settings.dry_run else "pending",
        }
    return None, None
