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

CONTRACTS = Path(__file__).resolve().parents[2] / "bridge" / "contracts"
CONTRACT = CONTRACTS / "twill-openapi.yaml"
MORE = CONTRACTS / "twill-openapi-more.yaml"


def create_task_validator() -> jsonschema.Draft7Validator:
    """A validator for CreateTaskRequest, with the contract's $refs resolved."""
    spec = yaml.safe_load(CONTRACT.read_text())
    schemas = spec["components"]["schemas"]
    # The contract's $refs point at #/components/schemas/..., so keep that path.
    schema = {**schemas["CreateTaskRequest"], "components": {"schemas": schemas}}
    return jsonschema.Draft7Validator(schema)


def more_validator(path: str, method: str, part: str) -> jsonschema.Draft7Validator:
    """A validator for one request body ("request") or 200 answer ("response")
    of twill-openapi-more.yaml, with its $refs resolved."""
    spec = yaml.safe_load(MORE.read_text())
    operation = spec["paths"][path][method]
    if part == "request":
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
    else:
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    return jsonschema.Draft7Validator(
        _nullable({**schema, "components": {"schemas": spec["components"]["schemas"]}})
    )


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` in JSON Schema's words (null is allowed)."""
    if isinstance(schema, list):
        return [_nullable(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _nullable(value) for key, value in schema.items() if key != "nullable"}
    if schema.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


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
    # Following tasks: "older" answers `pr`, "newer" answers `prs[]` and
    # `finalAnswer`; `missing` (404 or 405) plays a Twill without these
    # endpoints; `calls` records (method, path) of every call let through.
    shape: str = "newer"
    missing: int | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    call_times: list[float] = field(default_factory=list)  # monotonic, per call
    messages: list[dict[str, Any]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    read_faults: deque[Fault] = field(default_factory=deque)
    deleted: set[str] = field(default_factory=set)  # task ids Twill no longer has
    me_requests: int = 0
    _times: deque[float] = field(default_factory=deque)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _job_ids: Any = field(default_factory=lambda: itertools.count(1000))

    def __post_init__(self) -> None:
        self.validator = create_task_validator()
        self._checks = {
            "message": more_validator("/tasks/{taskId}/messages", "post", "request"),
            "task": more_validator("/tasks/{taskIdOrSlug}", "get", "response"),
            "jobs": more_validator("/tasks/{taskId}/jobs", "get", "response"),
            "sent": more_validator("/tasks/{taskId}/messages", "post", "response"),
            "cancel": more_validator("/tasks/{taskId}/cancel", "post", "response"),
        }

    def task(self, task_id: str) -> dict[str, Any]:
        """The task made with id `task_id` (as kept: request, task, jobs)."""
        return next(t for t in self.tasks if t["task"]["id"] == task_id)

    def advance(self, task_id: str, status: str, **fields: Any) -> dict[str, Any]:
        """Move the task's latest job to `status`, setting Twill's job fields
        (`plan`, `finalAnswer`, `error`, `pr=(url, number, title)`, ...)."""
        job = self.task(task_id)["jobs"][-1]
        job["status"] = status
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if status == "IN_PROGRESS":
            job.setdefault("startedAt", now)
        if status in ("COMPLETED", "FAILED", "CANCELLED"):
            job.setdefault("startedAt", now)
            job.setdefault("completedAt", now)
        job.update(fields)
        return job

    def fail(self, *faults: Fault) -> None:
        """Play these faults, one per call, before answering normally again."""
        self.faults.extend(faults)

    def app(self, base_path: str = "/api/v1") -> Starlette:
        """The ASGI app serving this fake under `base_path`."""
        return Starlette(
            routes=[
                Route(f"{base_path}/tasks", self._create, methods=["POST"]),
                Route(f"{base_path}/auth/me", self._me, methods=["GET"]),
                Route(f"{base_path}/tasks/{{task}}", self._get_task, methods=["GET"]),
                Route(
                    f"{base_path}/tasks/{{task}}/jobs", self._list_jobs, methods=["GET"]
                ),
                Route(
                    f"{base_path}/tasks/{{task}}/messages",
                    self._message,
                    methods=["POST"],
                ),
                Route(
                    f"{base_path}/tasks/{{task}}/cancel", self._cancel, methods=["POST"]
                ),
            ]
        )

    # Following tasks (twill-openapi-more.yaml).

    async def _gate(self, request: Request) -> Response | dict[str, Any] | None:
        """The missing-endpoint switch, auth, limits and the task; an error or the task."""
        if self.missing == 405:
            return Response("Method Not Allowed", status_code=405)
        if self.missing == 404:
            # A Twill without the endpoint: the framework's page, not Twill's error.
            return Response(
                "<h1>Not Found</h1>", status_code=404, media_type="text/html"
            )
        refused = self._admit(request)
        if refused is not None:
            return refused
        wanted = request.path_params["task"]
        if wanted in self.deleted:
            return _error(404, "not_found", "Task not found")
        for task in self.tasks:
            if wanted in (task["task"]["id"], task["task"]["slug"]):
                return task
        return _error(404, "not_found", "Task not found")

    def _admit(self, request: Request) -> Response | None:
        """Twill's key check and rate limits, as every endpoint has them; None
        (and the call recorded) when the call may go on."""
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
        self._record(request)
        return None

    def _record(self, request: Request) -> None:
        self.calls.append((request.method, request.url.path))
        self.call_times.append(time.monotonic())

    def _answer(self, check: str, body: dict[str, Any]) -> JSONResponse:
        self.contract_errors.extend(
            f"{check} answer: {e.message}"
            for e in self._checks[check].iter_errors(body)
        )
        return JSONResponse(body)

    def _job_json(self, job: dict[str, Any]) -> dict[str, Any]:
        """A job as this fake's Twill version writes it."""
        out = {k: v for k, v in job.items() if k not in ("prs", "finalAnswer")}
        prs = job.get("prs") or []
        if self.shape == "older":
            first = prs[0] if prs else None
            out["pr"] = (
                {
                    "url": first["prUrl"],
                    "number": first["prNumber"],
                    "title": first["title"],
                }
                if first
                else None
            )
        else:
            out["prs"] = prs
            out["finalAnswer"] = job.get("finalAnswer")
        return out

    async def _get_task(self, request: Request) -> Response:
        found = await self._gate(request)
        if not isinstance(found, dict):
            return found
        fault = self.read_faults.popleft() if self.read_faults else None
        if fault and fault.status:
            return _error(
                fault.status, "scripted", f"scripted {fault.status}", body=fault.body
            )
        jobs = found["jobs"]
        return self._answer(
            "task",
            {
                "task": found["task"],
                "latestJob": self._job_json(jobs[-1]) if jobs else None,
            },
        )

    async def _list_jobs(self, request: Request) -> Response:
        found = await self._gate(request)
        if not isinstance(found, dict):
            return found
        jobs = [self._job_json(job) for job in found["jobs"]]
        return self._answer("jobs", {"jobs": jobs, "nextCursor": None})

    async def _message(self, request: Request) -> Response:
        found = await self._gate(request)
        if not isinstance(found, dict):
            return found
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "validation_error", "Invalid request body")
        problems = [e.message for e in self._checks["message"].iter_errors(body)]
        if problems:
            self.contract_errors.extend(problems)
            return _error(400, "validation_error", "Invalid request body")
        fault = self.faults.popleft() if self.faults else None
        if fault and fault.status and not fault.create_anyway:
            return _error(
                fault.status, "scripted", f"scripted {fault.status}", body=fault.body
            )
        # A follow-up cancels the job in flight and starts a new run.
        for job in found["jobs"]:
            if job["status"] in ("PENDING", "IN_PROGRESS"):
                job["status"] = "CANCELLED"
        job = {
            "id": f"job_{next(self._job_ids)}",
            "status": "PENDING",
            "type": body.get("userIntent"),
        }
        found["jobs"].append(job)
        self.messages.append({"task": found["task"]["id"], **body})
        if fault and fault.status:
            return _error(fault.status, "internal_error", "Server error")
        return self._answer("sent", {"job": {"id": job["id"], "status": "PENDING"}})

    async def _cancel(self, request: Request) -> Response:
        found = await self._gate(request)
        if not isinstance(found, dict):
            return found
        fault = self.faults.popleft() if self.faults else None
        if fault and fault.status:
            return _error(
                fault.status, "scripted", f"scripted {fault.status}", body=fault.body
            )
        for job in found["jobs"]:
            if job["status"] in ("PENDING", "IN_PROGRESS"):
                job["status"] = "CANCELLED"
        self.cancelled.append(found["task"]["id"])
        return self._answer(
            "cancel", {"success": True, "task": {"id": found["task"]["id"]}}
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
        refused = self._admit(request)
        if refused is not None:
            return refused
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
        first_job = {
            "id": f"job_{number}",
            "status": "PENDING",
            "type": body.get("userIntent"),
        }
        self.tasks.append({"request": body, **answer, "jobs": [first_job]})
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
