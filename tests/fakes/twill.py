"""A fake Twill that answers like the real API and remembers what it was asked.

It checks every create-task body against the contract in
bridge/contracts/twill-openapi.yaml, enforces per-key rate limits the way
Twill documents them (429 with Retry-After), and can be told to fail.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CONTRACT = (
    Path(__file__).resolve().parents[2] / "bridge" / "contracts" / "twill-openapi.yaml"
)


def create_task_validator() -> jsonschema.Draft7Validator:
    """A validator for CreateTaskRequest, with the contract's $refs resolved."""
    spec = yaml.safe_load(CONTRACT.read_text())
    schemas = spec["components"]["schemas"]
    # The contract's $refs point at #/components/schemas/..., so keep that path.
    schema = {**schemas["CreateTaskRequest"], "components": {"schemas": schemas}}
    return jsonschema.Draft7Validator(schema)


@dataclass
class Fault:
    """One scripted misbehaviour for the next create-task call."""

    status: int | None = None  # answer this status instead of creating
    retry_after: str | None = None
    delay: float = 0.0  # seconds to wait before answering
    create_anyway: bool = False  # create the task, then answer `status` (a lost 201)
    body: Any = None


@dataclass
class FakeTwill:
    """State of the fake: tasks made, requests seen, faults to play, limits."""

    api_key: str = "twill-test-key"
    per_minute: int | None = None
    per_hour: int | None = None
    window_scale: float = 1.0  # 0.1 makes "a minute" last 6 s, for benchmarks
    tasks: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    rejected_429: int = 0
    accepted_at: list[float] = field(
        default_factory=list
    )  # monotonic, per call let through
    contract_errors: list[str] = field(default_factory=list)
    me_requests: int = 0
    _times: deque[float] = field(default_factory=deque)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.validator = create_task_validator()

    def fail(self, *faults: Fault) -> None:
        """Play these faults, one per call, before answering normally again."""
        self.faults.extend(faults)

    def app(self, base_path: str = "/api/v1") -> Starlette:
        """The ASGI app serving this fake under `base_path`."""
        return Starlette(
            routes=[
                Route(f"{base_path}/tasks", self._create, methods=["POST"]),
                Route(f"{base_path}/auth/me", self._me, methods=["GET"]),
            ]
        )

    def _limited(self) -> float | None:
        """Seconds until a slot frees, if a limit is reached; records the call if not."""
        now = time.monotonic()
        minute, hour = 60 * self.window_scale, 3600 * self.window_scale
        while self._times and now - self._times[0] > hour:
            self._times.popleft()
        recent = [t for t in self._times if now - t <= minute]
        if self.per_minute is not None and len(recent) >= self.per_minute:
            return minute - (now - recent[0])
        if self.per_hour is not None and len(self._times) >= self.per_hour:
            return hour - (now - self._times[0])
        self._times.append(now)
        self.accepted_at.append(now)
        return None

    async def _me(self, request: Request) -> Response:
        # getMe in bridge/contracts/twill-openapi-more.yaml; counted like any call.
        self.me_requests += 1
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "unauthorized", "Invalid or missing API key")
        if self._limited() is not None:
            self.rejected_429 += 1
            return _error(
                429, "rate_limited", "Rate limit exceeded.", {"Retry-After": "1"}
            )
        return JSONResponse(
            {
                "workspaceId": "ws_1",
                "workspaceName": "Octo",
                "workspaceSlug": "octo",
                "userId": "usr_1",
                "apiKeyId": "key_1",
            }
        )

    async def _create(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "unauthorized", "Invalid or missing API key")
        wait = self._limited()
        if wait is not None:
            self.rejected_429 += 1
            return _error(
                429,
                "rate_limited",
                "Rate limit exceeded. Max 100 requests per minute.",
                {"Retry-After": str(max(1, int(wait + 0.999)))},
            )
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "validation_error", "Invalid request body")
        self.requests.append(body)
        problems = [error.message for error in self.validator.iter_errors(body)]
        if problems:
            self.contract_errors.extend(problems)
            return _error(
                400,
                "validation_error",
                "Invalid request body",
                None,
                {"issues": [{"field": "body", "message": p} for p in problems]},
            )
        fault = self.faults.popleft() if self.faults else None
        if fault and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault and fault.status and not fault.create_anyway:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return _error(
                fault.status,
                "scripted",
                f"scripted {fault.status}",
                headers,
                body=fault.body,
            )
        task = self._make_task(body)
        if fault and fault.status:
            return _error(fault.status, "internal_error", "Server error")
        return JSONResponse(task, status_code=201)

    def _make_task(self, body: dict[str, Any]) -> dict[str, Any]:
        number = next(self._ids)
        slug = f"task-{number}"
        answer = {
            "task": {
                "id": f"tsk_{number}",
                "slug": slug,
                "title": body.get("title") or "generated",
                "url": f"https://twill.ai/tasks/{slug}",
                "repositoryUrl": "https://github.com/octo/widgets",
                "baseBranch": "main",
            },
            "job": {"id": f"job_{number}", "status": "PENDING"},
        }
        self.tasks.append({"request": body, **answer})
        return answer


def _error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: Any = None,
    body: Any = None,
) -> Response:
    if body is not None:
        return Response(
            body if isinstance(body, (bytes, str)) else str(body),
            status_code=status,
            headers=headers,
        )
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)
