"""Downloading attachments from GitHub's storage, safely.

Every hop of a download (the first URL and each redirect) must pass
`files.refuse_url` and resolve to public addresses only; no Authorization
header is ever sent (signed URLs need none, and a token must never reach a CDN
or S3); the body is streamed and cut off at the size cap; every step has a
timeout.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from bridge.files import address_allowed, refuse_url

MAX_REDIRECTS = 3
Resolver = Callable[[str], Awaitable[list[str]]]


class FetchRefused(Exception):
    """The file was not downloaded; the message says why, for the command."""


@dataclass(frozen=True)
class Fetched:
    """A downloaded file."""

    content: bytes
    media_type: str


async def system_resolver(host: str) -> list[str]:
    """The host's addresses, as the system resolver gives them."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, None, type=socket.SOCK_STREAM
    )
    return [str(info[4][0]) for info in infos]


class Fetcher:
    """Downloads attachments within the safety rules above."""

    def __init__(
        self,
        max_bytes: int,
        configured_hosts: Iterable[str] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver = system_resolver,
        timeout: float = 20.0,
        deadline: float = 60.0,
    ) -> None:
        self.max_bytes = max_bytes
        # `timeout` bounds each read; `deadline` the whole download, so a
        # storage server dripping bytes cannot hold a worker past its lease.
        self.deadline = deadline
        # The operator's own GitHub hosts may be private (Enterprise, or tests).
        self.configured_hosts = {h.lower() for h in configured_hosts}
        self.resolver = resolver
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
            headers={"User-Agent": "twill-github-bridge"},
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def fetch(self, url: str) -> Fetched:
        """The file at `url`; raises FetchRefused with a reason otherwise."""
        try:
            async with asyncio.timeout(self.deadline):
                return await self._fetch(url)
        except TimeoutError as error:
            raise FetchRefused(
                f"the download took over {self.deadline:.0f} s"
            ) from error
        except FetchRefused:
            raise
        except (
            httpx.InvalidURL,
            ValueError,
            UnicodeError,
            OSError,
            ExceptionGroup,
        ) as error:
            # Malformed links (bad ports, control characters, broken IDNA)
            # fail in httpx or idna; the attachment is listed, the task goes.
            raise FetchRefused(
                f"the link is not usable ({type(error).__name__})"
            ) from error

    async def _fetch(self, url: str) -> Fetched:
        for _ in range(MAX_REDIRECTS + 1):
            await self._check(url)
            try:
                async with self._http.stream("GET", url) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchRefused("GitHub redirected without a location")
                        url = urljoin(url, location)
                        continue
                    if response.status_code in (401, 403, 404, 410):
                        raise FetchRefused(
                            f"GitHub answered {response.status_code} (the link may have expired)"
                        )
                    if not response.is_success:
                        raise FetchRefused(f"GitHub answered {response.status_code}")
                    return Fetched(await self._read(response), _media_type(response))
            except httpx.HTTPError as error:
                raise FetchRefused(
                    f"the download failed ({type(error).__name__})"
                ) from error
        raise FetchRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _check(self, url: str) -> None:
        reason = refuse_url(url, self.configured_hosts)
        if reason:
            raise FetchRefused(reason)
        host = (urlsplit(url).hostname or "").lower()
        if host in self.configured_hosts:
            return
        try:
            addresses = await self.resolver(host)
        except OSError as error:
            raise FetchRefused(f"{host} could not be resolved") from error
        if not addresses or not all(address_allowed(a) for a in addresses):
            raise FetchRefused(f"{host} resolves to a private or local address")

    async def _read(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchRefused(f"it is over the {self.max_bytes:,}-byte limit")
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchRefused(f"it is over the {self.max_bytes:,}-byte limit")
            chunks.append(chunk)
        return b"".join(chunks)


def _media_type(response: httpx.Response) -> str:
    return (
        response.headers.get("content-type", "application/octet-stream")
        .split(";", 1)[0]
        .strip()
        .lower()
    )
