"""GitHub App authentication and the few REST calls the bridge makes.

Sources: docs.github.com "Generating a JSON Web Token (JWT) for a GitHub App",
"Authenticating as a GitHub App installation", "Best practices for using the
REST API" (serialise writes, wait a second between them, honour retry-after
and x-ratelimit-reset).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import jwt

from bridge.timing import Observe, timed, unobserved
from bridge.twill import retry_after_seconds

API_VERSION = "2022-11-28"
USER_AGENT = "twill-github-bridge"
# Installation tokens live an hour; refresh well before, since clocks drift.
TOKEN_REFRESH_MARGIN = 300.0


def jwt_claims(app_id: int, now: float) -> dict[str, Any]:
    """The claims of an App JWT: issued 60 s back (clock drift), valid 9 minutes."""
    issued = int(now) - 60
    return {"iat": issued, "exp": int(now) + 540, "iss": str(app_id)}


def app_jwt(app_id: int, private_key: str, now: float) -> str:
    """An RS256-signed App JWT."""
    return jwt.encode(jwt_claims(app_id, now), private_key, algorithm="RS256")


class GitHubError(Exception):
    """A GitHub call failed; `retry_at` (epoch seconds) says when to try again."""

    retryable = False

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_at: float | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_at = retry_at
        self.response = response


class GitHubRateLimited(GitHubError):
    """403 or 429 with a rate-limit signal; wait until `retry_at`."""

    retryable = True


class GitHubUnavailable(GitHubError):
    """5xx or no connection; try again later."""

    retryable = True


class GitHubUnauthorized(GitHubError):
    """401: the JWT or token was refused."""


class GitHubNotFound(GitHubError):
    """404: no such thing, or the App cannot see it."""


class GitHubRefused(GitHubError):
    """Another 4xx: a permanent refusal (permissions, validation)."""


@dataclass
class _Token:
    value: str
    expires_at: float


class GitHubClient:
    """GitHub's REST API as the App and as its installations."""

    def __init__(
        self,
        api_url: str,
        app_id: int,
        private_key: str,
        transport: httpx.AsyncBaseTransport | None = None,
        write_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        timeout: float = 15.0,
        pace: Callable[[int], Awaitable[None]] | None = None,
        observe: Observe = unobserved,
    ) -> None:
        # Told (method, path, status or error, seconds) after every call.
        self._observe = observe
        self._http = httpx.AsyncClient(
            base_url=api_url.rstrip("/") + "/",
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": USER_AGENT,
            },
            timeout=timeout,
            transport=transport,
        )
        self._app_id = app_id
        self._private_key = private_key
        self._clock = clock
        self._tokens: dict[int, _Token] = {}
        self._token_locks: dict[int, asyncio.Lock] = {}
        self._write_locks: dict[int, asyncio.Lock] = {}
        self._last_write: dict[int, float] = {}
        self._write_interval = write_interval
        # Waits for this installation's next write slot across all replicas.
        self._pace = pace

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # App-level calls, authenticated with the JWT.

    async def repo_installation(self, repository: str) -> int:
        """The id of the App's installation on `owner/repo`."""
        response = await self._send(
            "GET", f"repos/{repository}/installation", self._jwt_header()
        )
        return int(response.json()["id"])

    async def installation_token(
        self, installation_id: int, refresh: bool = False
    ) -> str:
        """A cached installation token, renewed a few minutes before it expires."""
        lock = self._token_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            token = self._tokens.get(installation_id)
            if (
                token
                and not refresh
                and token.expires_at - TOKEN_REFRESH_MARGIN > self._clock()
            ):
                return token.value
            response = await self._send(
                "POST",
                f"app/installations/{installation_id}/access_tokens",
                self._jwt_header(),
            )
            body = response.json()
            expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
            self._tokens[installation_id] = _Token(body["token"], expires.timestamp())
            return body["token"]

    async def app(self) -> dict[str, Any]:
        """`GET /app`: the App itself (slug, owner, permissions, events)."""
        response = await self._send("GET", "app", self._jwt_header())
        return dict(response.json())

    async def hook_config(self) -> dict[str, Any]:
        """`GET /app/hook/config`: where the App's webhook points (secret masked)."""
        response = await self._send("GET", "app/hook/config", self._jwt_header())
        return dict(response.json())

    async def installations(self, limit: int = 1000) -> list[dict[str, Any]]:
        """The App's installations, at most `limit` of them (paged by 100)."""
        found: list[dict[str, Any]] = []
        page = 1
        while len(found) < limit:
            response = await self._send(
                "GET",
                "app/installations",
                self._jwt_header(),
                params={"per_page": 100, "page": page},
            )
            batch = response.json()
            found.extend(batch)
            if len(batch) < 100:
                break
            page += 1
        return found[:limit]

    async def hook_deliveries(
        self, cursor: str | None = None, per_page: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the App's webhook deliveries, newest first, and the next cursor.

        GitHub pages this list by cursor, given in the `Link` header's
        `rel="next"` URL (docs.github.com, "List deliveries for an app webhook").
        """
        params: dict[str, Any] = {"per_page": per_page}
        if cursor:
            params["cursor"] = cursor
        response = await self._send(
            "GET", "app/hook/deliveries", self._jwt_header(), params=params
        )
        following = response.links.get("next", {}).get("url")
        next_cursor = httpx.URL(following).params.get("cursor") if following else None
        return list(response.json()), next_cursor

    async def redeliver(self, hook_delivery_id: int) -> None:
        """Ask GitHub to send delivery attempt `hook_delivery_id` again (202)."""
        await self._send(
            "POST",
            f"app/hook/deliveries/{int(hook_delivery_id)}/attempts",
            self._jwt_header(),
        )

    # Installation-level calls.

    async def create_comment(
        self, installation_id: int, repository: str, number: int, body: str
    ) -> int:
        """Post a comment on issue or pull request `number`; its id."""
        response = await self._write(
            installation_id,
            "POST",
            f"repos/{repository}/issues/{number}/comments",
            {"body": body},
        )
        return int(response.json()["id"])

    async def update_comment(
        self, installation_id: int, repository: str, comment_id: int, body: str
    ) -> None:
        """Replace the body of comment `comment_id`."""
        await self._write(
            installation_id,
            "PATCH",
            f"repos/{repository}/issues/comments/{comment_id}",
            {"body": body},
        )

    async def find_comment(
        self, installation_id: int, repository: str, number: int, marker: str
    ) -> int | None:
        """The id of the first comment on the issue whose body contains `marker`."""
        page = 1
        while page <= 30:
            response = await self._as_installation(
                installation_id,
                "GET",
                f"repos/{repository}/issues/{number}/comments",
                params={"per_page": 100, "page": page},
            )
            comments = response.json()
            for comment in comments:
                if marker in (comment.get("body") or "") and self._ours(comment):
                    return int(comment["id"])
            if len(comments) < 100:
                return None
            page += 1
        return None

    def _ours(self, comment: dict[str, Any]) -> bool:
        """Whether this App wrote `comment`: anyone can paste our hidden marker."""
        via = comment.get("performed_via_github_app")
        if isinstance(via, dict) and via.get("id") is not None:
            return bool(via.get("id") == self._app_id)
        # Without GitHub's note of the App, at least a bot must have written it.
        user = comment.get("user")
        return isinstance(user, dict) and user.get("type") == "Bot"

    async def permission(
        self, installation_id: int, repository: str, username: str
    ) -> tuple[str, str]:
        """(role_name, permission) of `username` on the repository; ("none", "none")
        when GitHub does not know them as a collaborator."""
        try:
            response = await self._as_installation(
                installation_id,
                "GET",
                f"repos/{repository}/collaborators/{quote(username, safe='')}/permission",
            )
        except GitHubNotFound:
            return "none", "none"
        body = response.json()
        return str(body.get("role_name") or ""), str(body.get("permission") or "none")

    async def file_text(
        self, installation_id: int, repository: str, path: str
    ) -> tuple[str, str] | None:
        """(sha, text) of a file on the default branch, or None if there is none."""
        try:
            response = await self._as_installation(
                installation_id, "GET", f"repos/{repository}/contents/{path}"
            )
        except GitHubNotFound:
            return None
        body = response.json()
        if not isinstance(body, dict) or body.get("type") != "file":
            return None
        raw = base64.b64decode(body.get("content") or "")
        return str(body.get("sha") or ""), raw.decode("utf-8", errors="replace")

    async def rendered_html(
        self,
        installation_id: int,
        repository: str,
        number: int,
        comment_id: int | None = None,
    ) -> str:
        """GitHub's HTML rendering of an issue (or one of its comments).

        With `application/vnd.github.full+json`, `body_html` carries signed
        image URLs that open without auth for a few minutes.
        """
        path = (
            f"repos/{repository}/issues/comments/{comment_id}"
            if comment_id is not None
            else f"repos/{repository}/issues/{number}"
        )
        response = await self._as_installation(
            installation_id, "GET", path, accept="application/vnd.github.full+json"
        )
        return str(response.json().get("body_html") or "")

    async def pull_request(
        self, installation_id: int, repository: str, number: int
    ) -> dict[str, Any]:
        """The pull request `number`."""
        response = await self._as_installation(
            installation_id, "GET", f"repos/{repository}/pulls/{number}"
        )
        return dict(response.json())

    async def react(
        self,
        installation_id: int,
        repository: str,
        content: str,
        issue_number: int,
        comment_id: int | None = None,
    ) -> None:
        """Add a reaction to a comment, or to the issue itself when no comment."""
        target = (
            f"repos/{repository}/issues/comments/{comment_id}/reactions"
            if comment_id is not None
            else f"repos/{repository}/issues/{issue_number}/reactions"
        )
        await self._write(installation_id, "POST", target, {"content": content})

    # Plumbing.

    def _jwt_header(self) -> dict[str, str]:
        token = app_jwt(self._app_id, self._private_key, self._clock())
        return {"Authorization": f"Bearer {token}"}

    async def _write(
        self, installation_id: int, method: str, path: str, body: dict[str, Any]
    ) -> httpx.Response:
        # GitHub asks integrators to make writes one at a time and a second apart;
        # bursts of them trip its secondary rate limits.
        lock = self._write_locks.setdefault(installation_id, asyncio.Lock())
        async with lock:
            wait = (
                self._last_write.get(installation_id, 0.0)
                + self._write_interval
                - time.monotonic()
            )
            if wait > 0:
                await asyncio.sleep(wait)
            if self._pace is not None:
                # Token first: its own request must not eat into the slot.
                await self.installation_token(installation_id)
                await self._pace(installation_id)
            try:
                return await self._as_installation(
                    installation_id, method, path, json=body
                )
            finally:
                self._last_write[installation_id] = time.monotonic()

    async def _as_installation(
        self,
        installation_id: int,
        method: str,
        path: str,
        accept: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        token = await self.installation_token(installation_id)
        headers = {"Accept": accept} if accept else {}
        try:
            return await self._send(
                method, path, {**headers, "Authorization": f"token {token}"}, **kwargs
            )
        except GitHubUnauthorized:
            # Revoked or rotated early: fetch a new token once, then give up.
            token = await self.installation_token(installation_id, refresh=True)
            return await self._send(
                method, path, {**headers, "Authorization": f"token {token}"}, **kwargs
            )

    async def _send(
        self, method: str, path: str, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await timed(
                self._observe,
                method,
                path,
                self._http.request(method, path, headers=headers, **kwargs),
            )
        except httpx.TransportError as error:
            raise GitHubUnavailable(
                f"GitHub could not be reached: {type(error).__name__}"
            ) from error
        if response.is_success:
            return response
        raise error_for(response, self._clock())


async def convert_manifest(
    api_url: str,
    code: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """`POST /app-manifests/{code}/conversions`: the App GitHub just registered.

    The last step of the manifest flow (docs.github.com, "Registering a GitHub
    App from a manifest"): no credentials, only the one-hour `code`. The answer
    holds the App's id, slug, `pem`, `webhook_secret`, `client_id` and
    `client_secret`; GitHub gives them this once.
    """
    async with httpx.AsyncClient(
        base_url=api_url.rstrip("/") + "/",
        headers={
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        },
        timeout=15.0,
        transport=transport,
    ) as client:
        try:
            response = await client.post(
                f"app-manifests/{quote(code, safe='')}/conversions"
            )
        except httpx.TransportError as error:
            raise GitHubUnavailable(
                f"GitHub could not be reached: {type(error).__name__}"
            ) from error
    if not response.is_success:
        raise error_for(response, time.time())
    try:
        body = response.json()
    except ValueError as error:
        raise GitHubUnavailable("GitHub's answer was not JSON") from error
    if not isinstance(body, dict):
        raise GitHubUnavailable("GitHub's answer was not a JSON object")
    return body


def error_for(response: httpx.Response, now: float) -> GitHubError:
    """The GitHubError a non-success answer stands for."""
    status = response.status_code
    headers = response.headers
    retry_after = retry_after_seconds(headers.get("retry-after"), now)
    try:
        body = response.json()
    except ValueError:
        body = None
    message = str(body.get("message") or "")[:300] if isinstance(body, dict) else ""
    text = f"GitHub answered HTTP {status}" + (f": {message}" if message else "")
    if status in (403, 429):
        if retry_after is not None:
            return GitHubRateLimited(text, status, now + retry_after, response)
        if (
            headers.get("x-ratelimit-remaining") == "0"
            and headers.get("x-ratelimit-reset", "").isdigit()
        ):
            return GitHubRateLimited(
                text, status, float(headers["x-ratelimit-reset"]), response
            )
        if status == 429 or "secondary rate limit" in message.lower():
            # GitHub: without a header, wait at least a minute.
            return GitHubRateLimited(text, status, now + 60, response)
    if status == 401:
        return GitHubUnauthorized(text, status, response=response)
    if status == 404:
        return GitHubNotFound(text, status, response=response)
    if status >= 500:
        return GitHubUnavailable(text, status, response=response)
    return GitHubRefused(text, status, response=response)
