"""Memory while receiving the largest delivery GitHub sends (25 MB).

Starts `twill-bridge serve` (SQLite, worker off), samples its VmRSS every
5 ms, and sends, one at a time, signed deliveries of about --megabytes MB:
an event the bridge ignores (a `push` with thousands of commits, the usual
way a delivery gets this big), and an `issues.labeled` whose issue body
takes the whole size (GitHub caps issue bodies far lower, but a signed
delivery may carry anything). Then several of each at once. Reports the
resident memory before, at its peak, and after each.

    .venv/bin/python -m bench.bigbody [--megabytes 24.9] [--concurrent 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench import load
from bridge.db import migrate
from tests import payloads


def push_body(size: int) -> bytes:
    """A `push` delivery of about `size` bytes: its commits make the size."""
    commit = {
        "id": "0" * 40,
        "message": "Fix the widget\n\n" + "Details of the change. " * 20,
        "timestamp": "2026-12-01T10:00:00Z",
        "author": {"name": "A Person", "email": "a@example.com", "username": "a"},
        "added": [f"src/file_{n}.py" for n in range(5)],
        "removed": [],
        "modified": [f"src/other_{n}.py" for n in range(5)],
    }
    one = len(json.dumps(commit)) + 2
    data = {
        "ref": "refs/heads/main",
        "repository": payloads.repository(),
        "sender": payloads.user("maintainer"),
        "commits": [commit] * max(1, size // one),
    }
    return json.dumps(data).encode()


def issue_body(size: int) -> bytes:
    """An `issues.labeled` delivery of about `size` bytes, nearly all issue body."""
    return json.dumps(
        payloads.issues_labeled("twill", number=7, body="x" * (size - 5000))
    ).encode()


def send(url: str, event: str, body: bytes) -> int:
    answer = httpx.post(
        f"{url}{load.WEBHOOK}",
        content=body,
        headers={**load.headers(body, str(uuid.uuid4())), "X-GitHub-Event": event},
        timeout=120,
    )
    return answer.status_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=24.9)
    parser.add_argument("--concurrent", type=int, default=4)
    args = parser.parse_args()
    size = int(args.megabytes * 2**20)
    folder = Path(tempfile.mkdtemp(prefix="bench-bigbody-"))
    url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    migrate(url)
    server = load.bridge_server(url)
    print(f"big-delivery benchmark: {size:,}-byte deliveries, {load.machine()}")
    ok = True
    try:
        for event, make in (("push", push_body), ("issues", issue_body)):
            body = make(size)
            for count in (1, args.concurrent):
                before = load.MemorySampler(server.pid).rss()
                with load.MemorySampler(server.pid, 0.005) as memory:
                    started = time.perf_counter()
                    with ThreadPoolExecutor(count) as pool:
                        statuses = list(
                            pool.map(
                                send,
                                [server.url] * count,
                                [event] * count,
                                [body] * count,
                            )
                        )
                    elapsed = time.perf_counter() - started
                time.sleep(1)
                after = load.MemorySampler(server.pid).rss()
                ok &= all(200 <= s < 300 for s in statuses)
                print(
                    f"  {count} x {event:<7} {len(body) / 2**20:5.1f} MB: answers {statuses}, "
                    f"{elapsed:5.2f} s; RSS before {before / 2**20:6.1f} MB, "
                    f"peak {memory.peak / 2**20:6.1f} MB, 1 s after {after / 2**20:6.1f} MB",
                    flush=True,
                )
    finally:
        server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
