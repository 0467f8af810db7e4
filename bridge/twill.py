"""A thin client for Twill's REST API, and the errors that say what to do next.

Contract: `bridge/contracts/twill-openapi.yaml` (creating a task) and
`twill-openapi-more.yaml` (reading, following up, cancelling). Twill has no idempotency key,
so the most important thing this module does is tell apart a request that
certainly did not reach Twill (safe to send again) from one that may have
(`TwillOutcomeUnknown`: never sent again without a person's say-so).
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from bridge.follow import JobView, read_job, read_task
from bridge.timing import Observe, timed, unobserved

USER_AGENT = "twill-github-bridge"
# The dispatches table keeps task and job ids up to this length.
ID_MAX = 100
# A Retry-After beyond a day is a peer's mistake; waiting a day is bound enough.
MAX_RETRY_AFTER = 86_400.0


class TwillError(Exception):
    """Twill did not create the task; subclasses say whether to retry."""

    retryable = False

    def __init__(
        self,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
        response: httpx.Response | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.response = response


class TwillInvalid(TwillError):
    """400: Twill refused the request's content; sending it again will not help."""


class TwillUnauthorized(TwillError):
    """401 or 403: the API key is missing, wrong or revoked; an admin must fix it."""


class TwillRefused(TwillError):
    """Another 4xx: a permanent refusal."""


class TwillMissing(TwillRefused):
    """404 or 405: no such task, or this Twill lacks the endpoint."""


class TwillRateLimited(TwillError):
    """429: wait `retry_after` seconds; the request was not acted on."""

    retryable = True


class TwillUnavailable(TwillError):
    """502, 503, 504 or no connection: the request was not acted on; retry later."""

    retryable = True


class TwillOutcomeUnknown(TwillError):
    """The request may have created a task (500, a timeout or a reset after sending)."""


class TwillUnreadable(TwillError):
    """A read answered 200 with a body that is not what the contract describes."""

    retryable = True


@dataclass(frozen=True)
class CreatedTask:
    """The parts of a 201 answer that the bridge keeps."""

    task_id: str
    slug: str
    url: str
    job_id: str
    job_status: str
    raw: dict[str, Any]


class TwillClient:
    """Calls Twill with the Bearer key; one instance per process, shared."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        observe: Observe = unobserved,
    ) -> None:
        # Told (method, path, status or error, seconds) after every call.
        self._observe = observe
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def create_task(self, request: dict[str, Any]) -> CreatedTask:
        """POST /tasks; a CreatedTask on 201, else a TwillError subclass."""
        response = await self._send("POST", "tasks", request)
        if response.status_code == 201:
            return _created(response)
        raise error_for(response)

    async def get_task(self, task_id: str) -> JobView | None:
        """GET /tasks/{id}: the task's latest job (None before it has one)."""
        response = await self._send("GET", f"tasks/{quote(task_id, safe='')}")
        if response.status_code != 200:
            raise error_for(response)
        try:
            return read_task(response.json())
        except ValueError as error:
            raise TwillUnreadable(
                "Twill's task answer could not be read", 200, response=response
            ) from error

    async def send_message(self, task_id: str, message: dict[str, Any]) -> JobView:
        """POST /tasks/{id}/messages: a follow-up; the new job Twill started."""
        response = await self._send(
            "POST", f"tasks/{quote(task_id, safe='')}/messages", message
        )
        if response.status_code not in (200, 201):
            raise error_for(response)
        try:
            return read_job(response.json()["job"])
        except (ValueError, KeyError, TypeError) as error:
            # The message went in; which job it started is unknown.
            raise TwillOutcomeUnknown(
                f"Twill answered {response.status_code} with a body the bridge "
                "could not read",
                response.status_code,
                response=response,
            ) from error

    async def cancel_task(self, task_id: str) -> None:
        """POST /tasks/{id}/cancel; returns once Twill says it is cancelled."""
        response = await self._send("POST", f"tasks/{quote(task_id, safe='')}/cancel")
        if response.status_code not in (200, 201, 204):
            raise error_for(response)

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        """One request; transport failures sorted by whether Twill may have seen it."""
        try:
            return await self._request(method, path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            # Nothing was written to a connection: Twill cannot have seen it.
            raise TwillUnavailable(
                f"could not connect to Twill: {_describe(error)}"
            ) from error
        except httpx.TransportError as error:
            raise TwillOutcomeUnknown(
                f"the connection failed after the request was sent: {_describe(error)}"
            ) from error

    async def whoami(self) -> dict[str, Any]:
        """`GET /auth/me`: the workspace the key belongs to; a cheap authenticated call.

        Raises TwillUnreadable when a 200 carries something else than an object.
        Contract: `bridge/contracts/twill-openapi-more.yaml` (getMe).
        """
        try:
            response = await self._request("GET", "auth/me")
        except httpx.TransportError as error:
            raise TwillUnavailable(
                f"could not reach Twill: {_describe(error)}"
            ) from error
        if not response.is_success:
            raise error_for(response)
        try:
            body = response.json()
        except ValueError as error:
            raise TwillUnreadable("Twill's answer was not JSON", 200) from error
        if not isinstance(body, dict):
            raise TwillUnreadable("Twill's answer was not a JSON object", 200)
        return body

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await timed(
            self._observe, method, path, self._http.request(method, path, **kwargs)
        )


def error_for(response: httpx.Response) -> TwillError:
    """The TwillError that a non-success answer stands for."""
    status = response.status_code
    message = _error_message(response)
    if status == 400:
        return TwillInvalid(
            f"Twill refused the request: {message}", status, response=response
        )
    if status in (401, 403):
        return TwillUnauthorized(
            "Twill refused the API key; an admin must fix TWILL_API_KEY",
            status,
            response=response,
        )
    if status == 429:
        return TwillRateLimited(
            "Twill's rate limit was reached",
            status,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
            response=response,
        )
    if status in (502, 503, 504):
        # Gateways answer these when the request never reached the application.
        return TwillUnavailable(
            f"Twill is unavailable (HTTP {status})", status, response=response
        )
    if status >= 500:
        return TwillOutcomeUnknown(
            f"Twill answered HTTP {status}; the task may or may not exist",
            status,
            response=response,
        )
    if status in (404, 405):
        return TwillMissing(
            f"Twill answered HTTP {status}: {message}", status, response=response
        )
    return TwillRefused(
        f"Twill answered HTTP {status}: {message}", status, response=response
    )


def task_not_found(error: TwillError) -> bool:
    """Whether `error` is Twill's own "no such task" answer (404, code not_found).

    Any other 404, such as a proxy's or a framework's page for a path it does
    not know, says the endpoint is missing, not the task.
    """
    if error.status != 404 or error.response is None:
        return False
    try:
        body = error.response.json()
    except ValueError:
        return False
    found = body.get("error") if isinstance(body, dict) else None
    return isinstance(found, dict) and found.get("code") == "not_found"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    current = time.time() if now is None else now
    return min(max(0.0, when.timestamp() - current), MAX_RETRY_AFTER)


def _created(response: httpx.Response) -> CreatedTask:
    try:
        body = response.json()
        task, job = body["task"], body["job"]
        task_id, job_id = str(task["id"]), str(job["id"])
        if not (0 < len(task_id) <= ID_MAX and 0 < len(job_id) <= ID_MAX):
            raise ValueError("an id longer than the bridge keeps")
        status = re.sub(r"[^A-Z_]", "", str(job.get("status") or "PENDING").upper())
        return CreatedTask(
            task_id=task_id,
            slug=str(task.get("slug") or "")[:200],
            url=str(task.get("url") or ""),
            job_id=job_id,
            # Twill's statuses are short words; a longer one is cut to the column.
            job_status=status[:20] or "PENDING",
            raw=body,
        )
    except (ValueError, KeyError, TypeError) as error:
        # The task exists, but we cannot tell which one: a person must look.
        raise TwillOutcomeUnknown(
            "Twill answered 201 with a body the bridge could not read",
            201,
            response=response,
        ) from error


def _error_message(response: httpx.Response) -> str:
    """Twill's `error.message` plus field messages, without echoing anything else."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    # Proxies and old versions answer other shapes: a string, a list, null.
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return f"HTTP {response.status_code}"
    message = str(error.get("message") or f"HTTP {response.status_code}")[:300]
    details = error.get("details")
    issues = details.get("issues") if isinstance(details, dict) else None
    if isinstance(issues, list):
        fields = [
            f"{item.get('field')}: {item.get('message')}"
            for item in issues[:10]
            if isinstance(item, dict)
        ]
        if fields:
            message += " (" + "; ".join(fields)[:500] + ")"
    return message


def _describe(error: Exception) -> str:
    return type(error).__name__
