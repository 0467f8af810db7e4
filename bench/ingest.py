"""Ingest benchmark: how fast `twill-bridge serve` acknowledges signed deliveries.

wrk sends real-shaped, signed, ~11 KB `issues.labeled` deliveries (each with
its own delivery id and issue number, so each is a new trigger that queues a
dispatch) on keep-alive connections, for --seconds, against:

- the reference receiver (bench/reference.py: the same stack, only the
  signature check, records nothing),
- the bridge on SQLite (BRIDGE_SQLITE_SYNCHRONOUS full, and normal),
- the bridge on PostgreSQL (--postgres-url; a database of its own, created
  and dropped),

one after the other, --rounds times, each server running throughout with its
worker off. It reports deliveries a second, p50 and p99 (wrk's, at that many
connections), the ratio to the reference of the same round, and the server's
resident memory (VmRSS, sampled every 20 ms: median and peak). Afterwards it
checks that every acknowledged delivery has its row and its dispatch.

By default the servers run on CPU 0 and wrk on CPU 1 (taskset), so that the
load generator does not take the server's core; --server-cpus and
--load-cpus change that ("" leaves a process free to run anywhere).

    .venv/bin/python -m bench.ingest [--seconds 10] [--rounds 3] [--connections 16]
        [--postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_ingest]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bench import load
from bridge.db import create_engine, migrate
from bridge.models import Delivery, Dispatch

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_ingest"


async def _admin(url: str, statement: str) -> None:
    server = make_url(url).set(database="postgres")
    engine = create_engine(
        server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT"
    )
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


def fresh_postgres(url: str) -> None:
    """Create the database named in `url` afresh, and migrate it."""
    name = make_url(url).database
    asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))
    migrate(url)


def drop_postgres(url: str) -> None:
    name = make_url(url).database
    asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def recorded(url: str, prefix: str) -> tuple[int, int]:
    """Deliveries with ids starting with `prefix`, and the dispatches they queued."""
    engine = create_engine(url)
    async with engine.connect() as connection:
        rows = await connection.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.delivery_id.startswith(prefix))
        )
        queued = await connection.scalar(
            select(func.count())
            .select_from(Dispatch)
            .where(Dispatch.delivery_id.startswith(prefix))
        )
    await engine.dispose()
    return int(rows or 0), int(queued or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--postgres-url", default=DEFAULT_POSTGRES, help='"" to skip PostgreSQL'
    )
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--load-cpus", default="1")
    parser.add_argument(
        "--max-rate", type=int, default=16000, help="deliveries a second to prepare for"
    )
    args = parser.parse_args()

    parts = load.template()
    size = len(load.delivery(parts, 10**6))
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    targets: dict[str, tuple[load.Server, str | None]] = {}
    print(f"ingest benchmark: {size:,}-byte deliveries, {load.machine()}")
    print(
        f"  {args.connections} connections, {args.seconds:g} s a run, "
        f"{args.rounds} rounds; servers on CPUs {args.server_cpus or 'any'}, "
        f"wrk on CPUs {args.load_cpus or 'any'}"
    )
    cpus = args.server_cpus or None
    try:
        targets["reference"] = (load.reference_server(cpus), None)
        for mode in ("full", "normal"):
            url = f"sqlite+aiosqlite:///{folder / mode}.db"
            migrate(url)
            server = load.bridge_server(url, cpus, BRIDGE_SQLITE_SYNCHRONOUS=mode)
            targets[f"bridge, SQLite {mode}"] = (server, url)
        if args.postgres_url:
            fresh_postgres(args.postgres_url)
            server = load.bridge_server(args.postgres_url, cpus)
            targets["bridge, PostgreSQL"] = (server, args.postgres_url)
        results = run_rounds(args, parts, targets)
    finally:
        for server, _ in targets.values():
            server.stop()
    report(results)
    ok = check_recorded(results, targets, args.connections)
    if args.postgres_url:
        drop_postgres(args.postgres_url)
    return 0 if ok else 1


def run_rounds(
    args: argparse.Namespace,
    parts: list[str],
    targets: dict[str, tuple[load.Server, str | None]],
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    count = int(args.max_rate * args.seconds)
    for round_number in range(args.rounds):
        for name, (server, _) in targets.items():
            prefix = f"bench-{time.time_ns()}-"
            # A new stamp per run: the same issue numbers are new triggers again.
            run_parts = load.template(stamp=f"2026-12-01T10:{round_number:02d}:00Z")
            data = load.wrk_data(run_parts, prefix, 1, count)
            with load.MemorySampler(server.pid) as memory:
                figures = load.run_wrk(
                    server.url,
                    data,
                    args.connections,
                    args.seconds,
                    cpus=args.load_cpus or None,
                )
            figures.update(
                prefix=prefix,
                rss_median=memory.median,
                rss_peak=memory.peak,
                load=load.load_average(),
            )
            if figures["requests"] >= count:
                # wrk stops once it has sent every precomputed delivery.
                print(f"  {name}: ran out of deliveries; raise --max-rate")
            results[name].append(figures)
            print(
                f"  round {round_number + 1} {name:<22} {figures['rate']:7.0f}/s "
                f"p50 {figures['p50'] / 1000:6.2f} ms p99 {figures['p99'] / 1000:6.2f} ms "
                f"RSS {memory.median / 2**20:5.1f}/{memory.peak / 2**20:5.1f} MB "
                f"non-2xx {figures['non2xx']} errors {figures['errors']} "
                f"load {figures['load']}",
                flush=True,
            )
    return results


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    reference = results["reference"]
    print("\n  median of the rounds:")
    for name, runs in results.items():
        ratios = [
            run["rate"] / ref["rate"] for run, ref in zip(runs, reference, strict=True)
        ]
        print(
            f"  {name:<22} {statistics.median(r['rate'] for r in runs):7.0f}/s "
            f"({statistics.median(ratios) * 100:5.1f} % of the reference) "
            f"p50 {statistics.median(r['p50'] for r in runs) / 1000:6.2f} ms "
            f"p99 {statistics.median(r['p99'] for r in runs) / 1000:6.2f} ms "
            f"RSS median {statistics.median(r['rss_median'] for r in runs) / 2**20:5.1f} MB "
            f"peak {max(r['rss_peak'] for r in runs) / 2**20:5.1f} MB"
        )


def check_recorded(
    results: dict[str, list[dict[str, Any]]],
    targets: dict[str, tuple[load.Server, str | None]],
    connections: int,
) -> bool:
    """Every acknowledged delivery has its row and its queued dispatch."""
    ok = True
    for name, (_, url) in targets.items():
        if url is None:
            continue
        for run in results[name]:
            acknowledged = run["requests"] - run["non2xx"]
            rows, queued = asyncio.run(recorded(url, run["prefix"]))
            # wrk stops with requests in flight: those may be recorded unanswered.
            good = (
                run["non2xx"] == 0
                and run["errors"] == 0
                and acknowledged <= rows <= acknowledged + connections
                and queued == rows
            )
            ok &= good
            print(
                f"  {name}: {acknowledged} acknowledged, {rows} recorded, "
                f"{queued} dispatches queued{'' if good else '  <-- MISMATCH'}"
            )
    return ok


if __name__ == "__main__":
    sys.exit(main())
