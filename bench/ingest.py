"""Ingest benchmark: how fast `twill-bridge serve` acknowledges signed deliveries.

Starts the bridge as a process on loopback (SQLite in a temporary folder, or
--database-url), with its worker off so only the webhook path is measured,
then sends real-shaped, signed, ~12 KB `issues.labeled` deliveries, each with
a unique delivery id, and reports the acknowledgement latency and rate.
Afterwards it checks that every delivery was recorded.

    .venv/bin/python -m bench.ingest [--requests 2000] [--concurrency 1,8]
        [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bridge.db import create_engine, migrate, sessionmaker
from bridge.models import Delivery
from bridge.signature import sign
from tests import payloads
from tests.live import BridgeProcess

SECRET = "bench-secret"


def delivery_body(number: int) -> bytes:
    """An issues.labeled payload padded to about 12 KB, as real ones often are."""
    payload = payloads.issues_labeled(
        "twill", number=number, body="Steps to reproduce.\n" + "x" * 9000
    )
    return json.dumps(payload).encode()


async def send_all(url: str, total: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency
    )
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one_worker() -> None:
            for n in counter:
                body = delivery_body(n)
                headers = {
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "issues",
                    "X-GitHub-Delivery": str(uuid.uuid4()),
                    "X-Hub-Signature-256": sign(SECRET, body),
                }
                started = time.perf_counter()
                answer = await client.post(
                    "/api/github/webhooks", content=body, headers=headers
                )
                latencies.append(time.perf_counter() - started)
                if answer.status_code not in (200, 202):
                    raise RuntimeError(
                        f"unexpected {answer.status_code}: {answer.text}"
                    )

        await asyncio.gather(*[one_worker() for _ in range(concurrency)])
    return latencies


async def recorded(url: str) -> int:
    engine = create_engine(url)
    async with sessionmaker(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(Delivery))
    await engine.dispose()
    return int(count or 0)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    migrate(url)
    before = asyncio.run(recorded(url))
    env = {
        "DATABASE_URL": url,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "BRIDGE_WORKER": "false",
        "BRIDGE_LOG_LEVEL": "warning",
    }
    bridge = BridgeProcess(env, folder).start()
    sent = 0
    print(
        f"ingest benchmark: {len(delivery_body(0)):,}-byte deliveries, database {url.split(':', 1)[0]}"
    )
    try:
        asyncio.run(send_all(bridge.url, 50, 4))  # warm up connections and caches
        sent += 50
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            started = time.perf_counter()
            latencies = asyncio.run(send_all(bridge.url, args.requests, concurrency))
            elapsed = time.perf_counter() - started
            sent += args.requests
            print(
                f"  concurrency {concurrency:>3}: {args.requests / elapsed:8.0f} deliveries/s, "
                f"p50 {statistics.median(latencies) * 1000:6.2f} ms, "
                f"p99 {percentile(latencies, 0.99) * 1000:6.2f} ms, "
                f"max {max(latencies) * 1000:6.2f} ms"
            )
    finally:
        bridge.terminate()
    count = asyncio.run(recorded(url)) - before
    print(f"  recorded {count} of {sent} deliveries")
    return 0 if count == sent else 1


if __name__ == "__main__":
    sys.exit(main())
