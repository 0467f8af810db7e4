"""Latency at a fixed rate: signed deliveries sent on a schedule, not as fast as possible.

An open-loop generator (bench/load.py `open_loop`, asyncio on raw sockets)
sends --rate deliveries a second for --seconds, each at its scheduled time
whatever the earlier ones are doing, and measures each latency from that
scheduled time, so a server that falls behind pays for the queue it causes.
Against the reference receiver and the bridge (SQLite, and PostgreSQL with
--postgres-url), one after the other; afterwards it checks that every
acknowledged delivery was recorded.

    .venv/bin/python -m bench.rate [--rate 1000] [--seconds 10]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_rate]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import load
from bench.ingest import drop_postgres, fresh_postgres, recorded
from bridge.db import migrate


def requests_for(count: int, prefix: str) -> list[tuple[str, bytes]]:
    """`count` distinct signed deliveries, as raw HTTP requests."""
    parts = load.template(stamp=f"2026-12-01T11:{time.time_ns() % 60:02d}:00Z")
    out = []
    for n in range(1, count + 1):
        delivery_id = f"{prefix}{n}"
        out.append(
            (
                delivery_id,
                load.raw_request("127.0.0.1", load.delivery(parts, n), delivery_id),
            )
        )
    return out


def measure(server: load.Server, args: argparse.Namespace) -> dict[str, object]:
    # A second at the same rate first, not counted: connections open, caches fill.
    warm = requests_for(int(args.rate), f"warm-{time.time_ns()}-")
    asyncio.run(load.open_loop(server.port, warm, args.rate, args.max_connections))
    prefix = f"rate-{time.time_ns()}-"
    requests = requests_for(int(args.rate * args.seconds), prefix)
    with load.MemorySampler(server.pid) as memory:
        sent = asyncio.run(
            load.open_loop(server.port, requests, args.rate, args.max_connections)
        )
    latencies = [s.latency for s in sent]
    return {
        "prefix": prefix,
        "ok": sum(200 <= s.status < 300 for s in sent),
        "sent": len(sent),
        "p50": statistics.median(latencies),
        "p99": load.percentile(latencies, 0.99),
        "p999": load.percentile(latencies, 0.999),
        "max": max(latencies),
        "rss_peak": memory.peak,
        "load": load.load_average(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-connections", type=int, default=64)
    parser.add_argument("--postgres-url", default="", help="also run on PostgreSQL")
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--load-cpus", default="1", help="this process's own CPUs")
    args = parser.parse_args()
    if args.load_cpus:
        os.sched_setaffinity(0, {int(c) for c in args.load_cpus.split(",")})
    cpus = args.server_cpus or None
    folder = Path(tempfile.mkdtemp(prefix="bench-rate-"))
    sqlite_url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    migrate(sqlite_url)
    print(
        f"fixed-rate benchmark: {args.rate:g} deliveries/s for {args.seconds:g} s, "
        f"{load.machine()}; servers on CPUs {args.server_cpus or 'any'}, "
        f"generator on CPUs {args.load_cpus or 'any'}"
    )
    targets: dict[str, tuple[load.Server, str | None]] = {}
    ok = True
    try:
        targets["reference"] = (load.reference_server(cpus), None)
        targets["bridge, SQLite"] = (load.bridge_server(sqlite_url, cpus), sqlite_url)
        if args.postgres_url:
            fresh_postgres(args.postgres_url)
            targets["bridge, PostgreSQL"] = (
                load.bridge_server(args.postgres_url, cpus),
                args.postgres_url,
            )
        for round_number in range(args.rounds):
            for name, (server, url) in targets.items():
                figures = measure(server, args)
                rows = (
                    asyncio.run(recorded(url, str(figures["prefix"])))[0]
                    if url
                    else None
                )
                good = figures["ok"] == figures["sent"] and (
                    rows is None or rows == figures["sent"]
                )
                ok &= good
                print(
                    f"  round {round_number + 1} {name:<20} "
                    f"p50 {figures['p50'] * 1000:6.2f} ms  p99 {figures['p99'] * 1000:7.2f} ms  "
                    f"p99.9 {figures['p999'] * 1000:7.2f} ms  max {figures['max'] * 1000:7.2f} ms  "
                    f"2xx {figures['ok']}/{figures['sent']}"
                    + (f"  recorded {rows}" if rows is not None else "")
                    + f"  RSS peak {figures['rss_peak'] / 2**20:5.1f} MB"  # type: ignore[operator]
                    + f"  load {figures['load']}",
                    flush=True,
                )
    finally:
        for server, _ in targets.values():
            server.stop()
        if args.postgres_url:
            drop_postgres(args.postgres_url)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
