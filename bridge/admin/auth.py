"""Who may use the dashboard: signed session cookies, CSRF tokens, sign-in checks.

A session is a small JSON object in a cookie signed with the session secret
(itsdangerous), HttpOnly and SameSite=Lax. Lax rather than Strict because
GitHub's OAuth redirect back to us is a cross-site navigation that must carry
the cookie holding the `state` we check. Nothing secret is ever put in it:
the GitHub user token is used once to read the login and then dropped.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from bridge.settings import Settings

COOKIE = "twill_bridge_session"
SESSION_SECONDS = 12 * 3600
# The actor recorded for a password sign-in, which names no one.
SHARED_ACTOR = "admin (password)"


class SignInRefused(Exception):
    """Sign-in did not succeed; the message is safe to show on the page."""


@dataclass
class Sessions:
    """Reads and writes the signed session cookie."""

    secret: str

    def __post_init__(self) -> None:
        self._serializer = URLSafeTimedSerializer(
            self.secret, salt="twill-bridge admin session"
        )

    def read(self, request: Request) -> dict[str, Any]:
        """The session's contents; empty when absent, forged or expired."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return {}
        try:
            data = self._serializer.loads(raw, max_age=SESSION_SECONDS)
        except BadSignature:
            return {}
        return data if isinstance(data, dict) else {}

    def encode(self, data: dict[str, Any]) -> str:
        """The signed cookie value holding `data`."""
        return str(self._serializer.dumps(data))

    def write(self, response: Response, data: dict[str, Any], secure: bool) -> None:
        """Set the cookie to hold `data`; `secure` when the browser uses https."""
        response.set_cookie(
            COOKIE,
            self.encode(data),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="lax",
            secure=secure,
        )

    def clear(self, response: Response, secure: bool) -> None:
        """Remove the cookie."""
        response.delete_cookie(
            COOKIE, path="/", httponly=True, samesite="lax", secure=secure
        )


def new_session(**values: Any) -> dict[str, Any]:
    """A fresh session with its own id and CSRF token (new ones at every sign-in)."""
    return {"csrf": secrets.token_urlsafe(32), "sid": secrets.token_hex(16), **values}


def password_mark(settings: Settings) -> str:
    """A short keyed fingerprint of the current password, kept in its sessions.

    Changing BRIDGE_ADMIN_PASSWORD changes the mark, which ends every session
    that the old password opened.
    """
    if settings.admin_password is None or settings.session_secret is None:
        return ""
    key = settings.session_secret.reveal().encode()
    return hmac.new(
        key, settings.admin_password.reveal().encode(), "sha256"
    ).hexdigest()[:16]


def still_allowed(settings: Settings, session: dict[str, Any]) -> bool:
    """Whether the session's sign-in would still succeed under today's settings.

    Checked on every request, so a login dropped from BRIDGE_ADMIN_LOGINS, a
    changed password or a switch from password to OAuth takes effect at once.
    """
    login, via = session.get("login"), session.get("via")
    if not isinstance(login, str):
        return False
    if via == "github":
        return settings.oauth_enabled and login.lower() in settings.admin_logins
    if via == "password":
        mark = session.get("pw")
        return (
            not settings.oauth_enabled
            and settings.admin_password is not None
            and isinstance(mark, str)
            and hmac.compare_digest(mark, password_mark(settings))
        )
    return False


def csrf_ok(session: dict[str, Any], sent: object) -> bool:
    """True when `sent` is this session's CSRF token."""
    expected = session.get("csrf")
    return (
        isinstance(expected, str)
        and isinstance(sent, str)
        and hmac.compare_digest(expected.encode(), sent.encode())
    )


def bearer_ok(settings: Settings, request: Request) -> bool:
    """True when the request carries `Authorization: Bearer <BRIDGE_ADMIN_TOKEN>`."""
    if settings.admin_token is None:
        return False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(
        token.strip().encode(), settings.admin_token.reveal().encode()
    )


def password_ok(settings: Settings, password: str) -> bool:
    """True when password sign-in is on (no OAuth) and `password` is the one set."""
    if settings.oauth_enabled or settings.admin_password is None:
        return False
    return hmac.compare_digest(
        password.encode(), settings.admin_password.reveal().encode()
    )


def authorize_url(settings: Settings, state: str, redirect_uri: str) -> str:
    """Where to send the browser to sign in with GitHub (OAuth web flow, step 1)."""
    query = urlencode(
        {
            "client_id": settings.github_client_id,
            "redirect_uri": redirect_uri,
            "state": state,
            # No scope: reading the signed-in user's login needs none.
            "allow_signup": "false",
        }
    )
    return f"{settings.github_web_url}/login/oauth/authorize?{query}"


async def github_login(
    settings: Settings, client: httpx.AsyncClient, code: str, redirect_uri: str
) -> str:
    """The GitHub login behind an OAuth `code`, if it may use the dashboard.

    Exchanges the code for a user token, reads `GET /user` with it, and drops
    the token. Raises SignInRefused with a sentence fit for the page.
    """
    assert settings.github_client_id and settings.github_client_secret
    try:
        exchanged = await client.post(
            f"{settings.github_web_url}/login/oauth/access_token",
            data={
                "client_id": settings.github_client_id,
                "client_secret": settings.github_client_secret.reveal(),
                "code": code,
                "redirect_uri": redirect_uri,
            },
            headers={"Accept": "application/json"},
        )
        # GitHub answers a bad code with 200 and an `error` field.
        token = exchanged.json().get("access_token") if exchanged.is_success else None
        if not isinstance(token, str) or not token:
            raise SignInRefused("GitHub did not accept the sign-in; try again")
        user = await client.get(
            f"{settings.github_api_url}/user",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        login = user.json().get("login") if user.is_success else None
    except (httpx.HTTPError, ValueError, AttributeError) as error:
        raise SignInRefused("GitHub could not be reached; try again") from error
    if not isinstance(login, str) or not login:
        raise SignInRefused("GitHub did not say who you are; try again")
    if login.lower() not in settings.admin_logins:
        raise SignInRefused(f"{login} is not allowed into this dashboard")
    return login
