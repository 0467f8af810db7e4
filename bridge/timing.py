"""Timing calls to Twill and GitHub, for whoever keeps the figures (bridge/metrics.py).

The clients know nothing of Prometheus: they are handed an `Observe`
callable and tell it the method, the path they called (relative to the
peer's base URL), the status code or the transport error's class name, and
the seconds the call took.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx

Observe = Callable[[str, str, str, float], None]


async def timed(
    observe: Observe, method: str, path: str, call: Awaitable[httpx.Response]
) -> httpx.Response:
    """Await one HTTP call and report (method, path, status or error, seconds)."""
    started = time.perf_counter()
    try:
        response = await call
    except httpx.TransportError as error:
        observe(method, path, type(error).__name__, time.perf_counter() - started)
        raise
    observe(method, path, str(response.status_code), time.perf_counter() - started)
    return response


def unobserved(method: str, path: str, status: str, seconds: float) -> None:
    """An observer that keeps nothing (clients built without metrics)."""
