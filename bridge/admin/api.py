"""The dashboard's JSON API: the same lists and filters as the pages, for scripts."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.admin import queries
from bridge.admin.web import api, bad_query
from bridge.models import Delivery, Dispatch, DispatchEvent
from bridge.webhooks import problem


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def dispatch_summary(d: Dispatch) -> dict[str, Any]:
    """A dispatch as a list shows it."""
    return {
        "id": d.id,
        "status": d.status,
        "repository": d.repository,
        "issue_number": d.issue_number,
        "issue_title": d.issue_title,
        "issue_url": d.issue_url,
        "is_pull_request": d.is_pull_request,
        "intent": d.intent,
        "agent": d.agent,
        "trigger_kind": d.trigger_kind,
        "trigger_label": d.trigger_label,
        "requester": d.requester,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "twill_task_id": d.twill_task_id,
        "twill_task_url": d.twill_task_url,
        "twill_job_status": d.twill_job_status,
        "comment_id": d.comment_id,
        "comment_url": comment_url(d),
        "delivery_id": d.delivery_id,
        "created_at": _time(d.created_at),
        "updated_at": _time(d.updated_at),
    }


def comment_url(d: Dispatch) -> str | None:
    """The tracking comment's address on the issue, once it exists."""
    if d.comment_id is None or not d.issue_url:
        return None
    return f"{d.issue_url}#issuecomment-{d.comment_id}"


def _event(e: DispatchEvent) -> dict[str, Any]:
    return {"at": _time(e.at), "status": e.status, "reason": e.reason, "actor": e.actor}


def delivery_summary(d: Delivery) -> dict[str, Any]:
    """A delivery as the list shows it."""
    return {
        "delivery_id": d.delivery_id,
        "event": d.event,
        "action": d.action,
        "repository": d.repository,
        "issue_number": d.issue_number,
        "sender": d.sender,
        "outcome": d.outcome,
        "reason": d.reason,
        "dispatch_id": d.dispatch_id,
        "repeats": d.repeats,
        "received_at": _time(d.received_at),
    }


@api
async def list_dispatches(request: Request) -> Response:
    """`GET /api/dispatches`: filters as query parameters, `cursor` for the next page."""
    params = request.query_params
    try:
        where = queries.parse_filter(params)
        limit = queries.page_size(params)
        async with request.app.state.sessions() as session:
            found = await queries.dispatch_page(
                session, where, params.get("cursor"), limit
            )
            counts = (
                await queries.status_counts(session, where)
                if queries.counts_shown(where)
                else None
            )
    except queries.BadQuery as error:
        return bad_query(str(error))
    return JSONResponse(
        {
            "dispatches": [dispatch_summary(d) for d in found.rows],
            "next_cursor": found.next_cursor,
            "counts": counts,
            # A count above this means "more than this" (see queries.status_counts).
            "counts_capped_at": queries.COUNT_CAP,
        }
    )


@api
async def get_dispatch(request: Request) -> Response:
    """`GET /api/dispatches/{id}`: the request sent, Twill's answer, timeline, deliveries."""
    dispatch_id = request.path_params["dispatch_id"]
    async with request.app.state.sessions() as session:
        detail = await queries.dispatch_detail(session, dispatch_id)
    if detail is None:
        return problem(404, "not_found", f"there is no dispatch {dispatch_id}")
    d = detail.dispatch
    return JSONResponse(
        {
            **dispatch_summary(d),
            # False while a queued dispatch waits for its checks, which compose it.
            "composed": d.composed,
            "command": d.command,
            "files": d.files,
            "request": d.request,
            "twill_response": d.twill_response,
            "dry_run": d.dry_run,
            "report_error": d.report_error,
            "events": [_event(e) for e in detail.events],
            "deliveries": [delivery_summary(x) for x in detail.deliveries],
        }
    )


@api
async def list_deliveries(request: Request) -> Response:
    """`GET /api/deliveries`: `outcome`, `event`, `repository` filters; `cursor`."""
    params = request.query_params
    try:
        where = queries.parse_delivery_filter(params)
        limit = queries.page_size(params)
        async with request.app.state.sessions() as session:
            found = await queries.delivery_page(
                session, where, params.get("cursor"), limit
            )
            refused = await queries.refused_signatures(session)
            outcomes = await queries.outcome_counts(session)
    except queries.BadQuery as error:
        return bad_query(str(error))
    return JSONResponse(
        {
            "deliveries": [delivery_summary(d) for d in found.rows],
            "next_cursor": found.next_cursor,
            "counts": outcomes,
            "refused_signatures": refused,
        }
    )
