"""The `twill-bridge` command: serve, migrate, simulate, dispatches."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from bridge import log
from bridge.settings import (
    Settings,
    SettingsError,
    ensure_session_secret,
    ensure_webhook_secret,
    load_settings,
)

EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        for problem in error.problems:
            print(f"twill-bridge: {problem}", file=sys.stderr)
        return EXIT_USAGE
    log.configure(settings.log_level, settings.log_format)
    try:
        result: int = args.run(settings, args)
    except DatabaseUnusable as error:
        print(f"twill-bridge: {error}", file=sys.stderr)
        return 1
    return result


class DatabaseUnusable(Exception):
    """The database cannot be reached or has no schema; the message says which."""


def _database_step(settings: Settings, what: str, work: Any) -> Any:
    """Run `work()`, turning database failures into one clear sentence."""
    from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

    sqlite_file = _sqlite_path(settings.database_url)
    if (
        what != "migrate the database"
        and sqlite_file
        and not Path(sqlite_file).exists()
    ):
        # Connecting would create an empty file; say where the database is not.
        raise DatabaseUnusable(
            f"cannot {what}: there is no database at {sqlite_file}; "
            "run `twill-bridge migrate` (or set DATABASE_URL)"
        )

    try:
        return work()
    except (OperationalError, ProgrammingError) as error:
        text = str(error.orig if isinstance(error, DBAPIError) else error).splitlines()[
            0
        ]
        hint = (
            "; run `twill-bridge migrate` first"
            if "no such table" in text or "does not exist" in text
            else ""
        )
        raise DatabaseUnusable(
            f"cannot {what} at {_safe_url(settings.database_url)}: {text[:200]}{hint}"
        ) from error
    except OSError as error:
        raise DatabaseUnusable(
            f"cannot {what} at {_safe_url(settings.database_url)}: {error.strerror or error}"
        ) from error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twill-bridge",
        description="Hand GitHub issues to Twill's coding agents.",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="migrate the database, then serve webhooks"
    )
    serve.add_argument("--host", help="address to listen on (default BRIDGE_HOST)")
    serve.add_argument(
        "--port", type=int, help="port to listen on (default BRIDGE_PORT)"
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser(
        "migrate", help="bring the database schema up to date"
    )
    migrate.set_defaults(run=_migrate)

    simulate = commands.add_parser(
        "simulate", help="show what a payload would trigger, without any network"
    )
    simulate.add_argument("payload", type=Path, help="a webhook payload, as JSON")
    simulate.add_argument(
        "--event", required=True, help="the X-GitHub-Event name, e.g. issues"
    )
    simulate.set_defaults(run=_simulate)

    dispatches = commands.add_parser("dispatches", help="list or retry dispatches")
    actions = dispatches.add_subparsers(required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="the newest dispatches")
    listing.add_argument("--status", help="only this status")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(run=_dispatches_list)
    retry = actions.add_parser(
        "retry", help="send a failed or uncertain dispatch again"
    )
    retry.add_argument("id", type=int)
    retry.add_argument(
        "--by", default="cli", help="who decided (recorded on the timeline)"
    )
    retry.set_defaults(run=_dispatches_retry)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.app import create_app
    from bridge.db import migrate

    settings, secret_file = ensure_webhook_secret(settings)
    settings = ensure_session_secret(settings)
    if secret_file is not None:
        log.warning(
            "no GITHUB_WEBHOOK_SECRET set; using the generated one",
            path=str(secret_file.resolve()),
            hint="put this value into the GitHub App's webhook secret field",
        )
    if settings.dry_run:
        log.warning(
            "dry run: dispatches are composed and stored, never sent",
            missing="; ".join(settings.dry_run_reasons),
        )
    _database_step(
        settings, "migrate the database", lambda: migrate(settings.database_url)
    )
    log.info("database ready", database=_safe_url(settings.database_url))
    config = uvicorn_config(
        create_app(settings),
        args.host or settings.host,
        args.port or settings.port,
        settings.shutdown_grace_seconds,
    )
    asyncio.run(run_server(uvicorn.Server(config)))
    return 0


def uvicorn_config(app: Any, host: str, port: int, grace_seconds: float) -> Any:
    """How `serve` runs uvicorn; bench/reference.py serves with the same options."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=int(grace_seconds) or None,
        proxy_headers=True,
        server_header=False,
    )


async def run_server(server: Any) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly and return (exit 0).

    uvicorn's own handlers re-raise the signal after shutting down, which makes
    the process die by it; deployments read that as a crash.
    """
    import contextlib
    import signal

    server.capture_signals = contextlib.nullcontext
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.handle_exit, signum, None)
    await server.serve()


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from bridge.db import migrate

    _database_step(
        settings, "migrate the database", lambda: migrate(settings.database_url)
    )
    print(f"database at {_safe_url(settings.database_url)} is up to date")
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from bridge.triggers import Rules, decide
    from bridge.webhooks import _meta, _work_for

    try:
        payload = json.loads(args.payload.read_text())
    except (OSError, ValueError, RecursionError) as error:
        print(f"twill-bridge: cannot read {args.payload}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(payload, dict):
        print("twill-bridge: the payload is not a JSON object", file=sys.stderr)
        return EXIT_USAGE
    rules = Rules(
        labels=settings.labels,
        default_agent=settings.default_agent,
        allowed_bots=settings.allowed_bots,
    )
    decision = decide(args.event, payload, rules)
    dispatch, reply = _work_for(
        decision, _meta("simulated", args.event, payload, 0), settings
    )
    out: dict[str, Any] = {"decision": decision.outcome, "reason": decision.reason}
    if dispatch is not None:
        out["trigger_key"] = dispatch["trigger_key"]
        out["create_task_request"] = dispatch["request"]
    if reply is not None:
        out["reply"] = reply["body"]
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _dispatches_list(settings: Settings, args: argparse.Namespace) -> int:
    from bridge.admin_ops import list_dispatches

    rows = _database_step(
        settings,
        "read dispatches",
        lambda: asyncio.run(
            list_dispatches(settings.database_url, args.status, args.limit)
        ),
    )
    for row in rows:
        print(
            f"{row.id:>6}  {row.status:<10} {row.intent:<15} {row.repository}#{row.issue_number}"
            f"  {row.twill_task_url or '-'}  {row.last_error or ''}"[:200]
        )
    return 0


def _dispatches_retry(settings: Settings, args: argparse.Namespace) -> int:
    from bridge.admin_ops import RetryRefused, retry_dispatch

    try:
        _database_step(
            settings,
            "retry the dispatch",
            lambda: asyncio.run(
                retry_dispatch(settings.database_url, args.id, args.by)
            ),
        )
    except RetryRefused as error:
        print(f"twill-bridge: {error}", file=sys.stderr)
        return 1
    print(f"dispatch {args.id} is queued again")
    return 0


def _sqlite_path(url: str) -> str | None:
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    return path if path and path != ":memory:" else None


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    raise SystemExit(main())
