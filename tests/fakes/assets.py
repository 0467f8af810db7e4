"""A fake of GitHub's attachment storage: the hosts signed links point at.

It serves objects by full URL (host and path, query ignored except `jwt`),
answers redirects, expired links and missing objects as GitHub's storage does,
and records every request with its headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)

PUBLIC_IPS = {
    "github.com": ["140.82.112.3"],
    "private-user-images.githubusercontent.com": ["185.199.108.154"],
    "user-images.githubusercontent.com": ["185.199.109.133"],
    "objects.githubusercontent.com": ["185.199.110.133"],
    "github-production-user-asset-6210df.s3.amazonaws.com": ["52.217.1.1"],
}


@dataclass
class FakeAssets:
    """Objects by URL without query, redirects by URL, and what was asked."""

    objects: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    expired_jwts: set[str] = field(default_factory=set)
    streamed: set[str] = field(default_factory=set)  # served chunked, no Content-Length
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    addresses: dict[str, list[str]] = field(default_factory=lambda: dict(PUBLIC_IPS))

    async def resolve(self, host: str) -> list[str]:
        """A resolver for the bridge's Fetcher: no DNS, just this table."""
        if host not in self.addresses:
            raise OSError(f"unknown host {host}")
        return self.addresses[host]

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        request = Request(scope, receive)
        response = await self._answer(request)
        await response(scope, receive, send)

    async def _answer(self, request: Request) -> Response:
        url = f"{request.url.scheme}://{request.url.hostname}{request.url.path}"
        self.requests.append((str(request.url), dict(request.headers)))
        if url in self.redirects:
            return RedirectResponse(self.redirects[url], status_code=302)
        jwt = request.query_params.get("jwt")
        if jwt in self.expired_jwts:
            return JSONResponse({"message": "token expired"}, status_code=404)
        found = self.objects.get(url)
        if found is None:
            return Response(
                b"<Error><Code>NoSuchKey</Code></Error>",
                status_code=404,
                media_type="application/xml",
            )
        content, media_type = found
        if url in self.streamed:

            async def chunks():  # type: ignore[no-untyped-def]
                for start in range(0, len(content), 1024):
                    yield content[start : start + 1024]

            return StreamingResponse(chunks(), media_type=media_type)
        return Response(content, media_type=media_type)
