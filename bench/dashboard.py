"""Dashboard benchmark: the dispatch list over a large table, timed on the server.

Fills a fresh database with --rows dispatches (20 repositories, 300
requesters, the four intents, statuses weighted as in production with few
failures, spread over 90 days), then times, in-process and with no network:
the list query alone and the whole `GET /admin/dispatches` page (query,
per-status counts, template) for the first page, a page deep in the keyset,
and filtered pages. Nothing leaves 127.0.0.1.

    .venv/bin/python -m bench.dashboard [--rows 100000]
    .venv/bin/python -m bench.dashboard --rows 1000000 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bench_dashboard

A PostgreSQL database named in --database-url is created and dropped (--keep
and --reuse skip both, to time a filled database again).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select, text
from sqlalchemy.engine import make_url

from bridge.admin import queries
from bridge.admin.auth import Sessions, new_session, password_mark
from bridge.app import create_app
from bridge.db import create_engine, migrate, sessionmaker
from bridge.models import Dispatch
from bridge.settings import Secret, Settings

STATUSES = [("reported", 90), ("failed", 3), ("uncertain", 1), ("denied", 3)]
STATUSES += [("skipped", 1), ("queued", 1), ("dismissed", 1)]
INTENTS = ["SWE", "PLAN", "ASK", "DEV_ENVIRONMENT"]
BATCH = 5_000
RUNS = 20


def rows(count: int, seed: int = 7) -> Any:
    """`count` dispatch rows as column values, oldest first, in batches."""
    rng = random.Random(seed)
    names, weights = zip(*STATUSES, strict=True)
    start = datetime.now(UTC) - timedelta(days=90)
    step = timedelta(days=90) / count
    batch = []
    for n in range(count):
        repo = f"org-{n % 5}/repo-{rng.randrange(20)}"
        intent = rng.choice(INTENTS)
        request = {"command": f"task {n}", "title": f"{repo}#{n}", "userIntent": intent}
        batch.append(
            {
                "trigger_key": f"bench:{n}",
                "delivery_id": f"bench-{n}",
                "repository": repo,
                "issue_number": n % 5000 + 1,
                "issue_title": f"Bench issue {n} about widgets",
                "issue_url": f"https://github.com/{repo}/issues/{n % 5000 + 1}",
                "trigger_kind": rng.choice(("label", "comment")),
                "requester": f"user{rng.randrange(300)}",
                "intent": intent,
                "title": request["title"],
                "command": request["command"],
                "files": [],
                "request": request,
                "status": rng.choices(names, weights)[0],
                "twill_task_url": f"https://twill.ai/tasks/{n}",
                "comment_id": 10_000_000 + n,
                "created_at": start + step * n,
                "updated_at": start + step * n,
                "next_attempt_at": start + step * n,
            }
        )
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def fill(url: str, count: int) -> float:
    engine = create_engine(url)
    began = time.perf_counter()
    async with engine.begin() as connection:
        for batch in rows(count):
            await connection.execute(insert(Dispatch), batch)
    if url.startswith("postgresql"):
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE dispatches"))
    else:
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    await engine.dispose()
    return time.perf_counter() - began


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"{statistics.median(ordered) * 1000:.1f} / {p95 * 1000:.1f}"


async def deep_cursor(url: str, depth: int) -> str:
    engine = create_engine(url)
    async with sessionmaker(engine)() as session:
        row = (
            await session.execute(
                select(Dispatch.created_at, Dispatch.id)
                .order_by(Dispatch.created_at.desc(), Dispatch.id.desc())
                .offset(depth)
                .limit(1)
            )
        ).one()
    await engine.dispose()
    return queries.encode_cursor(row[0], row[1])


async def measure(url: str, count: int) -> list[tuple[str, str, str, str]]:
    cursor = await deep_cursor(url, count // 2)
    cases = [
        ("first page", {}),
        (f"page at row {count // 2:,} (keyset)", {"cursor": cursor}),
        ("status=failed", {"status": "failed"}),
        ("repository=org-1/repo-3", {"repository": "org-1/repo-3"}),
        ("intent=PLAN, requester=user7", {"intent": "PLAN", "requester": "user7"}),
        (
            "last 7 days",
            {"since": (datetime.now(UTC) - timedelta(days=7)).date().isoformat()},
        ),
        ("search: #4242", {"search": "#4242"}),
        ("search: title", {"search": "issue 4242 about"}),
    ]
    key = "k" * 40
    settings = Settings(
        database_url=url,
        worker_enabled=False,
        session_secret=Secret(key),
        admin_password=Secret("bench-password"),
    )
    app = create_app(settings)
    # A password session, as signing in makes one (sessions are checked
    # against the sign-in they came from on every request).
    cookie = Sessions(key).encode(
        new_session(login="bench", via="password", pw=password_mark(settings))
    )
    results = []
    async with app.router.lifespan_context(app):
        sessions = app.state.sessions
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench.test",
            cookies={"twill_bridge_session": cookie},
        )
        for name, params in cases:
            where = queries.parse_filter(params)
            query_times, count_times, page_times = [], [], []
            for _ in range(RUNS):
                async with sessions() as session:
                    began = time.perf_counter()
                    await queries.dispatch_page(session, where, params.get("cursor"))
                    query_times.append(time.perf_counter() - began)
                    began = time.perf_counter()
                    await queries.status_counts(session, where)
                    count_times.append(time.perf_counter() - began)
                began = time.perf_counter()
                answer = await client.get("/admin/dispatches", params=params)
                page_times.append(time.perf_counter() - began)
                assert answer.status_code == 200, answer.text[:200]
            results.append((name, ms(query_times), ms(count_times), ms(page_times)))
        await client.aclose()
    return results


async def create_database(url: str, drop: bool = False) -> None:
    parsed = make_url(url)
    admin = create_engine(
        parsed.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    async with admin.connect() as connection:
        await connection.execute(
            text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        )
        if not drop:
            await connection.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    await admin.dispose()


def filled_database_args(description: str) -> argparse.ArgumentParser:
    """The options of a benchmark that times reads over a filled table."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument(
        "--reuse", action="store_true", help="time a database a --keep run filled"
    )
    parser.add_argument("--keep", action="store_true", help="do not drop it after")
    return parser


@contextlib.contextmanager
def filled_database(args: argparse.Namespace, prefix: str) -> Iterator[str]:
    """A migrated database holding `args.rows` dispatches (made unless --reuse);
    a PostgreSQL one is dropped afterwards unless --keep."""
    folder = tempfile.mkdtemp(prefix=prefix)
    url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
    postgres = url.startswith("postgresql")
    if postgres and not args.reuse:
        asyncio.run(create_database(url))
    try:
        if not args.reuse:
            migrate(url)
            seconds = asyncio.run(fill(url, args.rows))
            print(f"{args.rows:,} dispatches written in {seconds:.1f} s")
        migrate(url)  # a --reuse'd database may predate the newest index
        yield url
    finally:
        if postgres and not args.keep:
            asyncio.run(create_database(url, drop=True))


def main() -> int:
    args = filled_database_args(__doc__.split("\n\n")[0]).parse_args()
    with filled_database(args, "bench-dashboard-") as url:
        print("| page | list query | status counts | whole page |")
        print("|---|---|---|---|")
        for name, query, counts, page in asyncio.run(measure(url, args.rows)):
            print(f"| {name} | {query} | {counts} | {page} |")
        print(f"(median / p95 in ms over {RUNS} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
