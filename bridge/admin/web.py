"""What every dashboard handler shares: templates, the sign-in guards, safe answers."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bridge.admin.auth import Sessions, bearer_ok, csrf_ok, still_allowed
from bridge.models import RevokedSession
from bridge.webhooks import BodyTooLarge, problem, read_body

# No script, and nothing from anywhere else: styles are inline, the chart is SVG.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self' {github}; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class Admin:
    """The dashboard's state on the app: cookies, templates, the OAuth client."""

    sessions: Sessions
    templates: Environment
    oauth_client: httpx.AsyncClient | None = None


def templates() -> Environment:
    """The Jinja2 environment over bridge/templates, escaping HTML everywhere."""
    env = Environment(
        loader=PackageLoader("bridge", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["href"] = safe_href
    env.filters["tally"] = lambda n, cap: f"{cap:,}+" if n > cap else f"{n:,}"
    env.filters["pretty"] = lambda value: json.dumps(
        value, indent=2, ensure_ascii=False
    )
    env.globals["query"] = lambda params, **more: (
        "?" + urlencode({k: v for k, v in {**params, **more}.items() if v})
    )
    return env


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def safe_href(url: str | None) -> str | None:
    """`url` when it is an http(s) link, else None: payload text never becomes script."""
    if not url or urlsplit(url).scheme not in ("http", "https"):
        return None
    return url


def own_url(request: Request, route: str) -> str:
    """The address of the bridge's own route `route`, as people and GitHub reach it.

    Under BRIDGE_PUBLIC_URL when it is set. The request's own address is the
    Host the proxy chose to send, and its scheme comes from X-Forwarded-Proto
    only when the proxy is in uvicorn's FORWARDED_ALLOW_IPS (127.0.0.1 by
    default), so behind an ingress or Docker's port proxy it reads as
    http://... or https://127.0.0.1:8000/..., and GitHub refuses an OAuth
    redirect_uri that is not under the App's registered callback URL.
    """
    public_url = request.app.state.settings.public_url
    if public_url:
        return public_url + request.app.url_path_for(route)
    return str(request.url_for(route))


def over_https(request: Request) -> bool:
    """Whether the browser reaches the bridge over https: cookies are Secure then."""
    public_url = request.app.state.settings.public_url
    if public_url:
        return urlsplit(public_url).scheme == "https"
    return request.url.scheme == "https"


def admin_of(request: Request) -> Admin:
    """The dashboard's state."""
    admin: Admin = request.app.state.admin
    return admin


def session_of(request: Request) -> dict[str, Any]:
    """The request's session, without its login when that no longer holds."""
    session = admin_of(request).sessions.read(request)
    if "login" in session and not still_allowed(request.app.state.settings, session):
        session = {k: v for k, v in session.items() if k not in ("login", "via", "pw")}
    return session


async def signed_in_login(request: Request) -> tuple[dict[str, Any], str | None]:
    """The session and its login, None when signed out, revoked or no longer allowed."""
    session = session_of(request)
    login = session.get("login")
    if not isinstance(login, str):
        return session, None
    sid = session.get("sid")
    async with request.app.state.sessions() as db:
        revoked = isinstance(sid, str) and await db.get(RevokedSession, sid) is not None
    return session, None if revoked or not isinstance(sid, str) else login


def render(
    request: Request, template: str, context: Mapping[str, Any], status: int = 200
) -> HTMLResponse:
    """A page from `template`, with the session's user and CSRF token at hand."""
    session = session_of(request)
    settings = request.app.state.settings
    page = (
        admin_of(request)
        .templates.get_template(template)
        .render(user=session.get("login"), csrf=session.get("csrf", ""), **context)
    )
    headers = dict(SECURITY_HEADERS)
    headers["Content-Security-Policy"] = headers["Content-Security-Policy"].format(
        github=settings.github_web_url
    )
    return HTMLResponse(page, status_code=status, headers=headers)


def message(request: Request, title: str, text: str, status: int) -> HTMLResponse:
    """A page that only says something: a refusal, a bad filter, a missing dispatch."""
    return render(request, "message.html", {"title": title, "message": text}, status)


def redirect(url: str) -> RedirectResponse:
    """303 See Other: what a POST answers after acting, and a guard after refusing."""
    return RedirectResponse(url, status_code=303)


Handler = Callable[[Request], Awaitable[Response]]
UserHandler = Callable[[Request, str], Awaitable[Response]]


def page(handler: UserHandler) -> Handler:
    """A page for signed-in people; anyone else is sent to sign in."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        _, login = await signed_in_login(request)
        if login is None:
            return redirect("/admin/login")
        return await handler(request, login)

    return guarded


FORM_LIMIT = 64 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields (first value of each); {} for anything else.

    The dashboard's forms are a few short fields, so they are parsed here
    rather than through python-multipart.
    """
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    try:
        body = await read_body(request, FORM_LIMIT)
        fields = parse_qs(body.decode("utf-8"), max_num_fields=50)
    except (BodyTooLarge, UnicodeDecodeError, ValueError):
        return {}
    return {name: values[0] for name, values in fields.items()}


def action(handler: Callable[..., Awaitable[Response]]) -> Handler:
    """A POST for signed-in people whose form carries the session's CSRF token.

    The handler gets the form as a third argument; a wrong or missing token
    is a 403, and nothing is done.
    """

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        session, login = await signed_in_login(request)
        if login is None:
            return redirect("/admin/login")
        form = await read_form(request)
        if not csrf_ok(session, form.get("csrf")):
            return refused_csrf(request)
        return await handler(request, login, form)

    return guarded


def refused_csrf(request: Request) -> HTMLResponse:
    """The 403 page for a POST without this session's CSRF token."""
    return message(
        request,
        "Refused",
        "This form has expired or did not come from this dashboard. "
        "Go back, reload the page and try again.",
        403,
    )


def api(handler: Handler) -> Handler:
    """A JSON endpoint for a signed-in session or the BRIDGE_ADMIN_TOKEN bearer."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        _, login = await signed_in_login(request)
        if login is None and not bearer_ok(request.app.state.settings, request):
            return problem(
                401,
                "unauthorized",
                "sign in to the dashboard or send Authorization: Bearer <token>",
            )
        answer = await handler(request)
        answer.headers["Cache-Control"] = "no-store"
        return answer

    return guarded


def bad_query(message: str) -> JSONResponse:
    """The JSON answer to a filter or cursor that cannot be used."""
    return problem(400, "bad_query", message)
