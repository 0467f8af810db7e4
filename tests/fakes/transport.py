"""An httpx transport into an in-process ASGI fake, with network faults on demand.

Faults are played in order, one per request:
- "connect": the connection is refused; the server never sees the request.
- "read_timeout": the server handles the request, then the answer never comes.
- "reset": the server handles the request, then the connection is reset.
"""

from __future__ import annotations

from collections import deque

import httpx
from starlette.types import ASGIApp


class FaultyTransport(httpx.AsyncBaseTransport):
    """Routes requests into `app`, playing scripted network faults first."""

    def __init__(self, app: ASGIApp) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.plan: deque[str] = deque()
        self.requests: list[httpx.Request] = []

    def fail_next(self, *kinds: str) -> None:
        """Queue network faults for the next requests."""
        for kind in kinds:
            assert kind in ("connect", "read_timeout", "reset"), kind
        self.plan.extend(kinds)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        kind = self.plan.popleft() if self.plan else None
        if kind == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if kind == "read_timeout":
            await response.aclose()
            raise httpx.ReadTimeout("timed out reading the answer", request=request)
        if kind == "reset":
            await response.aclose()
            raise httpx.ReadError("connection reset by peer", request=request)
        return response
