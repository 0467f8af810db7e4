"""The dashboard's HTML pages and forms under /admin.

Views read and render; forms validate, act through bridge/admin_ops.py, and
redirect (303). The sign-in pages are the only ones open without a session.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete
from starlette.requests import Request
from starlette.responses import Response

from bridge import log
from bridge.admin import queries
from bridge.admin.auth import (
    SESSION_SECONDS,
    SHARED_ACTOR,
    SignInRefused,
    authorize_url,
    csrf_ok,
    github_login,
    new_session,
    password_mark,
    password_ok,
)
from bridge.admin.chart import stacked_bars
from bridge.admin.web import (
    action,
    admin_of,
    message,
    over_https,
    own_url,
    page,
    read_form,
    redirect,
    refused_csrf,
    render,
    session_of,
)
from bridge.admin_ops import DismissRefused, RetryRefused, dismiss, requeue
from bridge.models import RevokedSession, utcnow
from bridge.store import insert_ignoring_conflict

NOTICES = {
    "retried": "Queued again: a worker will send it.",
    "dismissed": "Dismissed.",
    "refused": "Not done: the dispatch is not in a state that allows it.",
}


# Signing in and out.


async def sign_in_page(request: Request) -> Response:
    """The sign-in page: GitHub's button, or the password form without OAuth."""
    session = session_of(request)
    if isinstance(session.get("login"), str):
        return redirect("/admin")
    return _sign_in(request, session, error=None)


def _sign_in(
    request: Request, session: dict[str, Any], error: str | None, status: int = 200
) -> Response:
    # Even the password form posts a CSRF token, tied to a pre-sign-in session.
    if "csrf" not in session:
        session = new_session()
    settings = request.app.state.settings
    response = render(
        request,
        "sign_in.html",
        {
            "oauth": settings.oauth_enabled,
            "password": settings.admin_password is not None,
            "error": error,
            "form_csrf": session["csrf"],
        },
        status=status,
    )
    admin_of(request).sessions.write(response, session, over_https(request))
    return response


async def sign_in_with_password(request: Request) -> Response:
    """Check the password form; a good password starts a session."""
    session = session_of(request)
    form = await read_form(request)
    if not csrf_ok(session, form.get("csrf")):
        return refused_csrf(request)
    password = form.get("password")
    if not isinstance(password, str) or not password_ok(
        request.app.state.settings, password
    ):
        log.warning("dashboard sign-in refused", via="password")
        return _sign_in(request, session, "That password is not the one set.", 401)
    return _signed_in(request, SHARED_ACTOR, "password")


def _signed_in(request: Request, login: str, via: str) -> Response:
    log.info("dashboard sign-in", login=login, via=via)
    response = redirect("/admin")
    # A new session (and CSRF token) at sign-in, so a planted cookie buys nothing.
    values: dict[str, Any] = {"login": login, "via": via}
    if via == "password":
        values["pw"] = password_mark(request.app.state.settings)
    admin_of(request).sessions.write(
        response, new_session(**values), over_https(request)
    )
    return response


async def oauth_start(request: Request) -> Response:
    """Send the browser to GitHub to sign in, remembering a fresh `state`."""
    settings = request.app.state.settings
    if not settings.oauth_enabled:
        return redirect("/admin/login")
    state = secrets.token_urlsafe(24)
    session = {**session_of(request), "oauth_state": state}
    session.setdefault("csrf", new_session()["csrf"])
    response = redirect(authorize_url(settings, state, _callback_url(request)))
    admin_of(request).sessions.write(response, session, over_https(request))
    return response


def _callback_url(request: Request) -> str:
    # The same address on the way out and back: GitHub checks they match.
    return own_url(request, "oauth_callback")


async def oauth_callback(request: Request) -> Response:
    """GitHub sent the browser back: check `state`, learn the login, sign in."""
    settings = request.app.state.settings
    session = session_of(request)
    expected = session.pop("oauth_state", None)
    code, state = request.query_params.get("code"), request.query_params.get("state")
    if not settings.oauth_enabled or not code or not expected or state != expected:
        return _sign_in(request, session, "The sign-in expired; try again.", 400)
    client = admin_of(request).oauth_client
    assert client is not None
    try:
        login = await github_login(settings, client, code, _callback_url(request))
    except SignInRefused as refusal:
        log.warning("dashboard sign-in refused", via="github", reason=str(refusal))
        return _sign_in(request, session, str(refusal), 403)
    return _signed_in(request, login, "github")


@action
async def sign_out(request: Request, login: str, form: dict[str, str]) -> Response:
    """End the session, here and for any copy of its cookie."""
    sid = session_of(request).get("sid")
    if isinstance(sid, str):
        async with request.app.state.sessions() as db:
            await insert_ignoring_conflict(
                db,
                RevokedSession,
                "sid",
                {
                    "sid": sid,
                    "expires_at": utcnow() + timedelta(seconds=SESSION_SECONDS),
                },
            )
            await db.execute(
                delete(RevokedSession).where(RevokedSession.expires_at < utcnow())
            )
            await db.commit()
    response = redirect("/admin/login")
    admin_of(request).sessions.clear(response, over_https(request))
    return response


# Pages.


@page
async def overview(request: Request, login: str) -> Response:
    """Dispatches per day by intent, and the last day's failures."""
    async with request.app.state.sessions() as session:
        daily = await queries.dispatches_per_day(session)
        failures = await queries.recent_failures(session)
        counts = await queries.status_counts(session, queries.DispatchFilter())
    return render(
        request,
        "overview.html",
        {
            "chart": stacked_bars(daily.days, daily.by_intent),
            "daily": daily,
            "failures": failures,
            "counts": counts,
            "cap": queries.COUNT_CAP,
        },
    )


@page
async def dispatch_list(request: Request, login: str) -> Response:
    """The dispatches, newest first, filtered and paged by cursor."""
    params = request.query_params
    try:
        where = queries.parse_filter(params)
        async with request.app.state.sessions() as session:
            found = await queries.dispatch_page(session, where, params.get("cursor"))
            counts = (
                await queries.status_counts(session, where)
                if queries.counts_shown(where)
                else None
            )
    except queries.BadQuery as error:
        return message(request, "Bad filter", str(error), 400)
    return render(
        request,
        "dispatches.html",
        {
            "page": found,
            "where": where,
            "params": where.as_params(),
            "counts": counts,
            "cap": queries.COUNT_CAP,
            "statuses": queries.STATUSES,
            "intents": queries.INTENTS,
            "kinds": queries.TRIGGER_KINDS,
            "deeper": bool(params.get("cursor")),
        },
    )


@page
async def dispatch_detail(request: Request, login: str) -> Response:
    """One dispatch: what was sent, what came back, its timeline and deliveries."""
    dispatch_id = request.path_params["dispatch_id"]
    async with request.app.state.sessions() as session:
        detail = await queries.dispatch_detail(session, dispatch_id)
    if detail is None:
        return message(
            request, "Not found", f"There is no dispatch {dispatch_id}.", 404
        )
    return render(
        request,
        "dispatch.html",
        {
            "detail": detail,
            "d": detail.dispatch,
            "notice": NOTICES.get(request.query_params.get("notice", "")),
        },
    )


@page
async def delivery_list(request: Request, login: str) -> Response:
    """Deliveries, newest first, with outcome counts and refused signatures."""
    params = request.query_params
    try:
        where = queries.parse_delivery_filter(params)
        async with request.app.state.sessions() as session:
            found = await queries.delivery_page(session, where, params.get("cursor"))
            outcomes = await queries.outcome_counts(session)
            refused = await queries.refused_signatures(session)
    except queries.BadQuery as error:
        return message(request, "Bad filter", str(error), 400)
    return render(
        request,
        "deliveries.html",
        {
            "page": found,
            "params": where.as_params(),
            "outcomes": outcomes,
            "all_outcomes": queries.OUTCOMES,
            "refused": refused,
        },
    )


# Actions.


@action
async def retry(request: Request, login: str, form: dict[str, str]) -> Response:
    """Queue a failed, uncertain or not-sent dispatch again, as `login`."""
    dispatch_id = request.path_params["dispatch_id"]
    try:
        await requeue(request.app.state.sessions, dispatch_id, by=login)
    except RetryRefused:
        return redirect(f"/admin/dispatches/{dispatch_id}?notice=refused")
    log.info("dispatch retried from the dashboard", dispatch_id=dispatch_id, by=login)
    worker = request.app.state.worker
    if worker is not None:
        worker.wake()
    return redirect(f"/admin/dispatches/{dispatch_id}?notice=retried")


@action
async def dismiss_dispatch(
    request: Request, login: str, form: dict[str, str]
) -> Response:
    """Close a failed or uncertain dispatch for good, as `login`."""
    dispatch_id = request.path_params["dispatch_id"]
    try:
        await dismiss(request.app.state.sessions, dispatch_id, by=login)
    except DismissRefused:
        return redirect(f"/admin/dispatches/{dispatch_id}?notice=refused")
    log.info("dispatch dismissed from the dashboard", dispatch_id=dispatch_id, by=login)
    return redirect(f"/admin/dispatches/{dispatch_id}?notice=dismissed")
