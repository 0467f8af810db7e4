"""Dispatch benchmark: N queued triggers against a fake Twill that enforces its limits.

Twill allows 100 requests a minute and 1,000 an hour per key. Waiting real
minutes and hours is impractical, so both sides run on a clock scaled by
--scale (default 10: "a minute" lasts 6 s, "an hour" 6 minutes). The fake
answers 429 past either limit, as Twill does; the bridge is configured with
the same scaled figures. Nothing leaves 127.0.0.1.

    .venv/bin/python -m bench.dispatch [--triggers 1000] [--scale 30] [--workers 3]
        [--database-url URL] [--hourly]

The first run lifts the hourly limit on both sides, so only the minute's
binds: it shows how close the pacing gets to the cap. With --hourly a second
run keeps both limits, showing how a burst drains once the hour's allowance
is spent. The bridge's own throughput must stay above the scaled cap for the
figures to mean anything: at --scale 10 the cap is 1,000 requests a real
minute, well within it.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bridge.app import WorkerPool
from bridge.budget import HOURLY_SPARE, RateBudget
from bridge.db import create_engine, migrate, sessionmaker
from bridge.settings import Secret, Settings
from bridge.store import DeliveryMeta, record_delivery
from bridge.twill import TwillClient
from bridge.worker import Worker
from tests.fakes.twill import FakeTwill
from tests.live import serve_in_thread


async def enqueue(sessions, count: int) -> None:  # type: ignore[no-untyped-def]
    for n in range(count):
        meta = DeliveryMeta(
            f"bench-{n}", "issues", "labeled", 1, "bench/repo", n, "bench", 0
        )
        request = {
            "command": f"bench task {n}",
            "title": f"bench/repo#{n}: bench",
            "userIntent": "SWE",
        }
        values = {
            "trigger_key": f"bench:{n}",
            "delivery_id": meta.delivery_id,
            "repository": "bench/repo",
            "issue_number": n,
            "trigger_kind": "label",
            "requester": "bench",
            "intent": "SWE",
            "title": request["title"],
            "command": request["command"],
            "request": request,
            "status": "queued",
            "prepared": True,  # the checks before sending are not what is measured
        }
        async with sessions() as session:
            await record_delivery(session, meta, "queued", "bench", dispatch=values)


async def run(
    url: str, triggers: int, scale: float, workers: int, hourly: bool
) -> dict[str, float]:
    per_minute, per_hour = 100, 1000 if hourly else 10**9
    fake = FakeTwill(
        api_key="bench-key",
        per_minute=per_minute,
        per_hour=per_hour,
        window_scale=1 / scale,
    )
    engine = create_engine(url)
    sessions = sessionmaker(engine)
    await enqueue(sessions, triggers)
    with serve_in_thread(fake.app()) as base:
        settings = replace(
            Settings(),
            twill_api_key=Secret("bench-key"),
            twill_api_url=f"{base}/api/v1",
            database_url=url,
            worker_poll_seconds=0.02,
            twill_rate_per_minute=int(per_minute * scale),
            twill_rate_per_hour=int(per_hour * scale) if hourly else 10**9,
        )
        twill = TwillClient(settings.twill_api_url, "bench-key")
        budget = RateBudget(
            sessions, settings.twill_rate_per_minute, settings.twill_rate_per_hour
        )
        pool = WorkerPool(
            [
                Worker(settings, sessions, f"bench-{n}", twill, None, budget)
                for n in range(workers)
            ]
        )
        started = time.monotonic()
        pool.start()
        while len(fake.tasks) < triggers and time.monotonic() - started < 3600:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        drained = time.monotonic() - started
        await pool.stop(5)
        await twill.aclose()
    await engine.dispose()
    times = sorted(fake.accepted_at)
    window = 60 / scale
    # The rate while the minute limit binds: until the hour's allowance is spent.
    paced = len(times) if not hourly else min(len(times), per_hour - HOURLY_SPARE)
    rate = (paced - 1) / (times[paced - 1] - times[0]) * window if paced > 1 else 0.0
    busiest = max(sum(1 for t in times if s <= t < s + window) for s in times)
    return {
        "tasks": len(fake.tasks),
        "duplicates": len(fake.requests) - len({r["title"] for r in fake.requests}),
        "http_429": fake.rejected_429,
        "drain_seconds": drained,
        "drain_scaled_minutes": drained / window,
        "rate_per_minute": rate,
        "cap_per_minute": per_minute,
        "busiest_minute": busiest,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument(
        "--hourly",
        action="store_true",
        help="also run with the hourly limit binding (takes a scaled hour)",
    )
    args = parser.parse_args()
    print(
        f"dispatch benchmark: {args.triggers} triggers, {args.workers} workers, clock scaled x{args.scale:g} "
        f"(a minute lasts {60 / args.scale:g} s, an hour {3600 / args.scale:g} s)"
    )
    for hourly in (False, True) if args.hourly else (False,):
        folder = Path(tempfile.mkdtemp())
        url = args.database_url or f"sqlite+aiosqlite:///{folder / 'bench.db'}"
        if args.database_url:
            print(
                "note: --database-url must point at an empty, migrated database",
                file=sys.stderr,
            )
        else:
            migrate(url)
        result = asyncio.run(run(url, args.triggers, args.scale, args.workers, hourly))
        shutil.rmtree(folder, ignore_errors=True)
        label = "minute and hour limits" if hourly else "minute limit only"
        print(
            f"{label:>24}: {result['tasks']} tasks, {result['duplicates']} duplicates, "
            f"{result['http_429']} x 429, rate {result['rate_per_minute']:.1f}/min "
            f"({result['rate_per_minute'] / result['cap_per_minute']:.1%} of the cap), "
            f"busiest minute {result['busiest_minute']}, drained in {result['drain_seconds']:.1f} s "
            f"= {result['drain_scaled_minutes']:.1f} scaled minutes"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
