"""Metrics benchmark: GET /metrics over a large dispatch table, timed on the server.

Fills a fresh database the way bench/dashboard.py does (--rows dispatches,
statuses weighted as in production, 1 % of them queued), then times, in the
server's own process and with no network, 20 times each:

- a scrape that recounts everything (what one scrape a minute costs),
- a scrape between those (the settled statuses counted less than a minute
  ago: what the other scrapes cost).

The two-second cache between scrapes is skipped, so each one reads the
database. Nothing leaves 127.0.0.1.

    .venv/bin/python -m bench.metrics --rows 1000000 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_metrics

A PostgreSQL database named in --database-url is created and dropped (--keep
and --reuse skip both, to time a filled database again).
"""

from __future__ import annotations

import asyncio
import sys
import time

import httpx

from bench.dashboard import filled_database, filled_database_args, ms
from bridge.app import create_app
from bridge.settings import Settings

RUNS = 20


async def measure(url: str) -> list[tuple[str, str, str]]:
    app = create_app(Settings(database_url=url, worker_enabled=False))
    results = []
    async with app.router.lifespan_context(app):
        metrics = app.state.metrics
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench.test"
        )
        await client.get("/metrics")  # warm the connection pool
        for name, recount in (("recounting everything", True), ("between", False)):
            scrapes, reads = [], []
            for _ in range(RUNS):
                metrics.reading.at = float("-inf")
                if recount:
                    metrics.reading.settled_at = float("-inf")
                began = time.perf_counter()
                answer = await client.get("/metrics")
                scrapes.append(time.perf_counter() - began)
                reads.append(metrics.reading.seconds)
                assert answer.status_code == 200 and metrics.reading.ok
            results.append((name, ms(reads), ms(scrapes)))
        await client.aclose()
    return results


def main() -> int:
    args = filled_database_args(__doc__.split("\n\n")[0]).parse_args()
    with filled_database(args, "bench-metrics-") as url:
        print("| scrape | database reading | whole scrape |")
        print("|---|---|---|")
        for name, reading, scrape in asyncio.run(measure(url)):
            print(f"| {name} | {reading} | {scrape} |")
        print(f"(median / p95 in ms over {RUNS} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
