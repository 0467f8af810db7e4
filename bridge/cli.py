"""The `twill-bridge` command: serve, migrate, setup-token, doctor, redeliver,
simulate, dispatches."""

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
    from bridge.credentials import CredentialsError

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        if args.run is _doctor:
            # The doctor reports, in its own format, and fails.
            for problem in error.problems:
                print(f"FAIL  {'settings':<16} {problem}")
            return 1
        for problem in error.problems:
            print(f"twill-bridge: {problem}", file=sys.stderr)
        return EXIT_USAGE
    log.configure(settings.log_level, settings.log_format)
    try:
        result: int = args.run(settings, args)
    except (DatabaseUnusable, CredentialsError) as error:
        print(f"twill-bridge: {error}", file=sys.stderr)
        return 1
    return result


class DatabaseUnusable(Exception):
    """The database cannot be reached or has no schema; the message says which."""


def _database_step(settings: Settings, what: str, work: Any) -> Any:
    """Run `work()`, turning database failures into one clear sentence."""
    from sqlalchemy.exc import DBAPIError

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
    except DBAPIError as error:
        # Any driver error, refused TLS and missing root certificates included.
        text = str(error.orig).splitlines()[0]
        hint = (
            "; run `twill-bridge migrate` first"
            # SQLite's message, or PostgreSQL's undefined_table.
            if "no such table" in text or getattr(error.orig, "sqlstate", "") == "42P01"
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

    setup_token = commands.add_parser(
        "setup-token",
        help="print the token /setup asks for, while no GitHub App is configured",
    )
    setup_token.set_defaults(run=_setup_token)

    doctor = commands.add_parser(
        "doctor", help="check settings, database, GitHub App, Twill key and webhook"
    )
    doctor.set_defaults(run=_doctor)

    redeliver = commands.add_parser(
        "redeliver",
        help="ask GitHub to send again the deliveries that never reached the bridge",
    )
    redeliver.add_argument(
        "--since",
        type=_duration,
        default=_duration("24h"),
        help="how far back to look: 90m, 24h, 3d or seconds (default 24h)",
    )
    redeliver.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be redelivered, and ask GitHub for nothing",
    )
    redeliver.set_defaults(run=_redeliver)

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

    _database_step(
        settings, "migrate the database", lambda: migrate(settings.database_url)
    )
    log.info("database ready", database=_safe_url(settings.database_url))
    settings = _with_stored_credentials(settings)
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
    if settings.github_app_id is None:
        _offer_setup(settings, args)
    config = uvicorn_config(
        create_app(settings),
        args.host or settings.host,
        args.port or settings.port,
        settings.shutdown_grace_seconds,
    )
    serve_forever(uvicorn.Server(config))
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


def serve_forever(server: Any) -> None:
    """Run `server` (a uvicorn.Server) on the event loop its config picks, until signalled.

    With `uvicorn[standard]` installed that is uvloop (and the httptools
    parser), as `uvicorn.run` would choose; bench/reference.py serves the same way.
    """
    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(run_server(server))


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


def _with_stored_credentials(settings: Settings) -> Settings:
    """`settings` with what /setup stored filling the gaps the environment left."""
    from bridge.credentials import load, with_credentials
    from bridge.db import create_engine, sessionmaker

    async def read() -> Any:
        engine = create_engine(settings.database_url)
        try:
            return await load(sessionmaker(engine), settings)
        finally:
            await engine.dispose()

    found = _database_step(
        settings, "read the GitHub App's credentials", lambda: asyncio.run(read())
    )
    return with_credentials(settings, found) if found is not None else settings


def _offer_setup(settings: Settings, args: argparse.Namespace) -> None:
    """Write the setup token where the operator can read it, and say where."""
    from bridge.credentials import offer_setup_token
    from bridge.db import create_engine, sessionmaker

    async def offer() -> Path:
        engine = create_engine(settings.database_url)
        try:
            return await offer_setup_token(sessionmaker(engine), settings.data_dir)
        finally:
            await engine.dispose()

    path = asyncio.run(offer())
    base = settings.public_url or (
        f"http://{args.host or settings.host}:{args.port or settings.port}"
    )
    log.warning(
        "no GitHub App yet: register one at /setup with the setup token",
        setup_url=f"{base}/setup",
        token_file=str(path.resolve()),
    )


def _setup_token(settings: Settings, args: argparse.Namespace) -> int:
    """Print a new setup token that every replica accepts, or say why not.

    The database keeps only tokens' digests, so each call makes a new token
    (earlier ones stay valid until the App is configured). The token alone goes
    to stdout, so `$(twill-bridge setup-token)` works; what to do with it goes
    to stderr.
    """
    from bridge.credentials import issue_setup_token, registered
    from bridge.db import create_engine, sessionmaker

    async def read() -> tuple[str | None, str | None]:
        engine = create_engine(settings.database_url)
        try:
            sessions = sessionmaker(engine)
            row = await registered(sessions)
            if row is not None:
                return f"the App {row.slug or row.app_id} was registered there", None
            if settings.github_app_id is not None:
                return "GITHUB_APP_ID is set", None
            return None, await issue_setup_token(sessions)
        finally:
            await engine.dispose()

    closed, token = _database_step(
        settings, "read the setup token", lambda: asyncio.run(read())
    )
    if token is None:
        print(f"twill-bridge: setup is closed: {closed}", file=sys.stderr)
        return 1
    print(token)
    if settings.public_url is None:
        print(
            "twill-bridge: set BRIDGE_PUBLIC_URL first: /setup needs it",
            file=sys.stderr,
        )
    else:
        print(f"twill-bridge: enter it at {settings.public_url}/setup", file=sys.stderr)
    return 0


def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    from bridge.doctor import failed, run_checks

    checks = asyncio.run(run_checks(settings))
    for check in checks:
        print(check.line())
    return 1 if failed(checks) else 0


def _redeliver(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import timedelta

    from bridge.app import app_write_pacer, worker_name
    from bridge.db import create_engine, sessionmaker
    from bridge.github import GitHubClient, GitHubError
    from bridge.models import utcnow
    from bridge.redeliver import JOB, claim_job, finish_job, redeliver_failed

    _database_step(settings, "read deliveries", lambda: None)
    settings = _with_stored_credentials(settings)
    if settings.github_app_id is None or settings.github_private_key is None:
        print(
            "twill-bridge: no GitHub App credentials (set GITHUB_APP_ID and the "
            "private key, or register the App at /setup)",
            file=sys.stderr,
        )
        return 1

    async def run() -> int:
        engine = create_engine(settings.database_url)
        sessions = sessionmaker(engine)
        assert settings.github_app_id and settings.github_private_key
        github = GitHubClient(
            settings.github_api_url,
            settings.github_app_id,
            settings.github_private_key.reveal(),
        )
        owner = f"cli:{worker_name()}"
        try:
            taken, _ = await claim_job(
                sessions, JOB, owner, timedelta(minutes=10), timedelta(0)
            )
            if not taken:
                print(
                    "twill-bridge: a redelivery pass is running elsewhere; "
                    "try again in a few minutes",
                    file=sys.stderr,
                )
                return 1
            result = "failed"
            try:
                summary = await redeliver_failed(
                    sessions,
                    github,
                    utcnow() - timedelta(seconds=args.since),
                    app_write_pacer(settings, sessions),
                    dry_run=args.dry_run,
                )
                result = summary.line()
            except GitHubError as error:
                print(f"twill-bridge: cannot list deliveries: {error}", file=sys.stderr)
                return 1
            finally:
                await finish_job(sessions, JOB, owner, result)
            verb = "would redeliver" if args.dry_run else "redelivered"
            for attempt in summary.redelivered:
                event = (
                    f"{attempt.event}.{attempt.action}"
                    if attempt.action
                    else attempt.event
                )
                print(
                    f"{verb} {attempt.guid}  {event}  "
                    f"(HTTP {attempt.status_code or 'none'} at "
                    f"{attempt.delivered_at:%Y-%m-%d %H:%M} UTC)"
                )
            for attempt, reason in summary.refused:
                print(f"refused {attempt.guid}: {reason}")
            print(summary.line())
            return 1 if summary.refused or summary.stopped else 0
        finally:
            await github.aclose()
            await engine.dispose()

    result: int = asyncio.run(run())
    return result


def _duration(text: str) -> float:
    """Seconds from `90m`, `24h`, `3d`, `45s` or a plain number of seconds."""
    import re

    match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text.lower())
    if not match or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration such as 24h or 90m"
        )
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    return float(int(match[1]) * factor)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from bridge.db import migrate

    _database_step(
        settings, "migrate the database", lambda: migrate(settings.database_url)
    )
    print(f"database at {_safe_url(settings.database_url)} is up to date")
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from bridge.triggers import decide, rules_from
    from bridge.webhooks import _meta, _work_for

    try:
        payload = json.loads(args.payload.read_text())
    except (OSError, ValueError, RecursionError) as error:
        print(f"twill-bridge: cannot read {args.payload}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(payload, dict):
        print("twill-bridge: the payload is not a JSON object", file=sys.stderr)
        return EXIT_USAGE
    decision = decide(args.event, payload, rules_from(settings))
    dispatch, reply = _work_for(
        decision, _meta("simulated", args.event, payload, 0), settings, compose=True
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
