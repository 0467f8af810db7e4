"""`twill-bridge doctor`: one pass-or-fail line per thing the bridge depends on.

Each check is a small function returning `Check`s; none prints. Reasons are
built from names, ids, URLs and status codes, but a peer's error message may
echo what it was sent (Twill's has held the Authorization header), so every
line is redacted of every secret the settings hold before it is returned,
and of control characters (a peer's text could hold terminal escapes or
line breaks that forge lines of the report). A peer that answers 2xx with
something else than its documented JSON (a login page from a proxy, a field
of another type, JSON nested too deep to parse) fails its check with a short
reason; it never stops the report.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from bridge.budget import RateBudget
from bridge.credentials import CredentialsError, load, with_credentials
from bridge.db import create_engine, head_revision, sessionmaker
from bridge.github import GitHubClient, GitHubError, GitHubUnauthorized
from bridge.manifest import REQUIRED_EVENTS, REQUIRED_PERMISSIONS
from bridge.models import utcnow
from bridge.redact import redact
from bridge.redeliver import HookDelivery
from bridge.settings import Settings
from bridge.twill import TwillClient, TwillError, TwillUnauthorized

OK, WARN, FAIL = "ok", "warn", "FAIL"
LEVELS = {"read": 1, "write": 2, "admin": 3}
# The longest reason shown; a peer's message can be a whole page.
REASON_CHARS = 300

T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    status: str
    name: str
    reason: str

    def line(self) -> str:
        """`ok    name         reason`."""
        return f"{self.status:<4}  {self.name:<16} {self.reason}"


class Unexpected(Exception):
    """A peer answered 2xx with something its API description does not allow."""


async def _answer(call: Awaitable[T], route: str) -> T:
    """What `call` returns; Unexpected when the answer is not the JSON it reads."""
    try:
        return await call
    except (ValueError, TypeError, RecursionError) as error:
        # Not JSON at all (an HTML page), JSON of another shape than the
        # client turns into a dict or a list, or nested deeper than Python's
        # parser follows.
        raise Unexpected(
            f"{route} answered with something other than its JSON"
        ) from error


@dataclass
class Transports:
    """Where the checks' HTTP goes; tests point these at fakes."""

    twill: httpx.AsyncBaseTransport | None = None
    github: httpx.AsyncBaseTransport | None = None
    public: httpx.AsyncBaseTransport | None = None


@dataclass
class _Context:
    settings: Settings
    transports: Transports
    database_ok: bool = False
    sessions: Any = None
    app: dict[str, Any] = field(default_factory=dict)


async def run_checks(
    settings: Settings, transports: Transports | None = None
) -> list[Check]:
    """Every check, in order; a later one is skipped when what it needs failed."""
    context = _Context(settings, transports or Transports())
    checks = [_settings(settings)]
    checks += await _guarded("database", _database(context))
    engine = create_engine(settings.database_url) if context.database_ok else None
    if engine is not None:
        context.sessions = sessionmaker(engine)
    try:
        checks += await _guarded("github app keys", _credentials(context))
        checks += await _guarded("github app", _github(context))
        checks += await _guarded("twill", _twill(context))
        checks += await _guarded("webhook url", _webhook(context))
    finally:
        if engine is not None:
            await engine.dispose()
    # Stored credentials joined the settings on the way; hide those too.
    secrets = settings.secret_values() + context.settings.secret_values()
    return [_clean(check, secrets) for check in checks]


async def _guarded(name: str, checks: Awaitable[list[Check]]) -> list[Check]:
    """What `checks` report; one FAIL line named `name` if they break instead.

    The checks catch what their peers are known to do; this is for the rest,
    so that one peer's surprise never keeps the other checks from reporting.
    """
    try:
        return await checks
    except Exception as error:  # reported as a FAIL line, not swallowed
        return [Check(FAIL, name, f"stopped by {type(error).__name__}")]


# Terminal escapes (CSI and OSC sequences), then any control character left.
ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")


def printable(text: str) -> str:
    """`text` without terminal escapes or control characters, on one line."""
    text = ESCAPES.sub("", text)
    return " ".join(
        "".join(
            " " if char.isspace() else char
            for char in text
            if char.isspace() or unicodedata.category(char) not in ("Cc", "Cf")
        ).split()
    )


def _clean(check: Check, secrets: Sequence[str]) -> Check:
    """`check` on one line, with no secret, credential-shaped string or escape."""
    reason = printable(redact(check.reason, secrets))
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    return replace(check, reason=reason)


def failed(checks: Sequence[Check]) -> bool:
    """True when any check failed (warnings do not count)."""
    return any(check.status == FAIL for check in checks)


def _settings(settings: Settings) -> Check:
    if settings.force_dry_run:
        return Check(WARN, "settings", "read; BRIDGE_DRY_RUN is set: nothing is sent")
    return Check(OK, "settings", "read")


async def _database(context: _Context) -> list[Check]:
    import os

    from bridge.cli import _safe_url, _sqlite_path

    where = _safe_url(context.settings.database_url)
    sqlite_file = _sqlite_path(context.settings.database_url)
    if sqlite_file and not os.path.exists(sqlite_file):  # noqa: ASYNC240 (one stat)
        # Connecting would create an empty file.
        return [
            Check(
                FAIL,
                "database",
                f"no database at {sqlite_file}: run `twill-bridge migrate`",
            )
        ]
    engine = create_engine(context.settings.database_url)
    try:
        async with sessionmaker(engine)() as session:
            await session.execute(text("SELECT 1"))
            try:
                revision = await session.scalar(
                    text("SELECT version_num FROM alembic_version")
                )
            except SQLAlchemyError:
                revision = None
    except (SQLAlchemyError, OSError) as error:
        reason = str(error.orig if isinstance(error, DBAPIError) else error)
        return [Check(FAIL, "database", f"{where}: {reason.splitlines()[0][:200]}")]
    finally:
        await engine.dispose()
    context.database_ok = True
    checks = [Check(OK, "database", f"{where} answers")]
    head = head_revision()
    if revision == head:
        checks.append(Check(OK, "migrations", f"at the newest revision ({head})"))
    else:
        checks.append(
            Check(
                FAIL,
                "migrations",
                f"at {revision or 'no revision'}, the newest is {head}: "
                "run `twill-bridge migrate`",
            )
        )
    return checks


async def _credentials(context: _Context) -> list[Check]:
    settings = context.settings
    stored = None
    if context.database_ok:
        try:
            stored = await load(context.sessions, settings)
        except CredentialsError as error:
            return [Check(FAIL, "github app keys", str(error))]
        except SQLAlchemyError as error:
            # The first line only: SQLAlchemy appends the statement.
            return [Check(FAIL, "github app keys", str(error).splitlines()[0])]
    if stored is not None:
        context.settings = settings = with_credentials(settings, stored)
    if settings.github_app_id is None or settings.github_private_key is None:
        return [
            Check(
                FAIL,
                "github app keys",
                "no GitHub App: open BRIDGE_PUBLIC_URL/setup while `twill-bridge "
                "serve` runs, or set GITHUB_APP_ID and GITHUB_APP_PRIVATE_KEY(_PATH)",
            )
        ]
    source = (
        "from /setup"
        if stored and settings.github_app_id == stored.app_id
        else "from the settings"
    )
    return [Check(OK, "github app keys", f"App id {settings.github_app_id}, {source}")]


def _github_client(context: _Context) -> GitHubClient:
    settings = context.settings
    assert settings.github_app_id and settings.github_private_key
    return GitHubClient(
        settings.github_api_url,
        settings.github_app_id,
        settings.github_private_key.reveal(),
        transport=context.transports.github,
        timeout=10,
    )


async def _github(context: _Context) -> list[Check]:
    settings = context.settings
    if settings.github_app_id is None or settings.github_private_key is None:
        return [Check(FAIL, "github app", "skipped: no App credentials")]
    github = _github_client(context)
    try:
        try:
            app = await _answer(github.app(), "GET /app")
        except Unexpected as odd:
            return [Check(FAIL, "github app", str(odd))]
        except GitHubUnauthorized:
            return [
                Check(
                    FAIL,
                    "github app",
                    f"{settings.github_api_url} refused the App's JWT: check "
                    "GITHUB_APP_ID and that the private key is this App's",
                )
            ]
        except GitHubError as error:
            return [Check(FAIL, "github app", f"{settings.github_api_url}: {error}")]
        if (odd := _odd_app(app)) is not None:
            return [Check(FAIL, "github app", f"GET /app answered oddly: {odd}")]
        context.app = app
        owner = (app.get("owner") or {}).get("login", "?")
        checks = [
            Check(
                OK,
                "github app",
                f"{app.get('slug')} (id {app.get('id')}) owned by {owner}",
            ),
            _permissions(app),
        ]
        checks.append(await _installations(github, app))
        return checks
    finally:
        await github.aclose()


# The fields of `GET /app` the checks read, and the JSON type each must have
# (docs.github.com, "Get the authenticated app"; `owner` may be null).
APP_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "slug": (str,),
    "owner": (dict, type(None)),
    "html_url": (str,),
    "permissions": (dict,),
    "events": (list,),
}


def _odd_app(app: dict[str, Any]) -> str | None:
    """What in the App's description is not as GitHub documents it, or None."""
    for name, kinds in APP_FIELDS.items():
        if not isinstance(app.get(name), kinds):
            return f"`{name}` is {_json_kind(app.get(name))}"
    if not isinstance((app["owner"] or {}).get("login", ""), str):
        return "`owner.login` is not a string"
    if not all(isinstance(event, str) for event in app["events"]):
        return "`events` holds something other than names"
    return None


def _json_kind(value: object) -> str:
    if value is None:
        return "missing"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names.update({list: "a list", dict: "an object"})
    return names.get(type(value), "of another type")


def _permissions(app: dict[str, Any]) -> Check:
    granted = app.get("permissions") or {}
    missing = [
        f"{name}: {level}"
        for name, level in REQUIRED_PERMISSIONS.items()
        if LEVELS.get(str(granted.get(name)), 0) < LEVELS[level]
    ]
    events = set(app.get("events") or ())
    # `metadata` needs no event; the others must be subscribed.
    missing += [f"event {event}" for event in REQUIRED_EVENTS if event not in events]
    if missing:
        return Check(
            FAIL,
            "app permissions",
            "the App lacks "
            + ", ".join(missing)
            + " (App settings → Permissions & events)",
        )
    return Check(
        OK, "app permissions", "issues, pull requests, contents, and their events"
    )


async def _installations(github: GitHubClient, app: dict[str, Any]) -> Check:
    try:
        found = await _answer(github.installations(), "GET /app/installations")
    except (GitHubError, Unexpected) as error:
        return Check(FAIL, "installations", str(error))
    # The client pages through a list; an object's keys would come out as strings.
    if not all(
        isinstance(i, dict) and isinstance(i.get("account") or {}, dict) for i in found
    ):
        return Check(
            FAIL,
            "installations",
            "GET /app/installations answered something other than a list of "
            "installations",
        )
    if not found:
        install = (
            f"{app.get('html_url')}/installations/new" if app.get("html_url") else ""
        )
        return Check(
            WARN, "installations", f"the App is installed nowhere yet: {install}"
        )
    logins = sorted(str((i.get("account") or {}).get("login")) for i in found)
    shown = ", ".join(logins[:5]) + (
        f" and {len(logins) - 5} more" if len(logins) > 5 else ""
    )
    return Check(OK, "installations", f"{len(found)}: {shown}")


async def _twill(context: _Context) -> list[Check]:
    settings = context.settings
    if settings.twill_api_key is None:
        return [
            Check(FAIL, "twill", "TWILL_API_KEY is not set: the bridge runs in dry-run")
        ]
    if context.database_ok:
        # The same budget as the workers', so a doctor run never causes a 429.
        budget = RateBudget(
            context.sessions,
            settings.twill_rate_per_minute,
            settings.twill_rate_per_hour,
        )
        slot = await budget.reserve()
        if slot.wait > 5:
            return [
                Check(
                    WARN,
                    "twill",
                    f"skipped: the rate budget is full for {slot.wait:.0f} s",
                )
            ]
        if slot.wait > 0:
            import asyncio

            await asyncio.sleep(slot.wait)
    client = TwillClient(
        settings.twill_api_url,
        settings.twill_api_key.reveal(),
        timeout=10,
        transport=context.transports.twill,
    )
    try:
        me = await _answer(client.whoami(), "GET /auth/me")
    except Unexpected as odd:
        return [Check(FAIL, "twill", str(odd))]
    except TwillUnauthorized:
        return [Check(FAIL, "twill", f"{settings.twill_api_url} refused TWILL_API_KEY")]
    except TwillError as error:
        return [Check(FAIL, "twill", f"{settings.twill_api_url}: {error}")]
    finally:
        await client.aclose()
    workspace = me.get("workspaceName") or me.get("workspaceSlug") or "?"
    if not isinstance(workspace, str):
        workspace = "?"
    return [Check(OK, "twill", f"the key works (workspace {workspace})")]


async def _webhook(context: _Context) -> list[Check]:
    settings = context.settings
    checks = []
    expected = (
        f"{settings.public_url}/api/github/webhooks" if settings.public_url else None
    )
    if expected is None:
        checks.append(
            Check(
                WARN,
                "public url",
                "BRIDGE_PUBLIC_URL is not set: /setup, private attachments and these "
                "hints need it",
            )
        )
    else:
        if not expected.startswith("https://"):
            checks.append(
                Check(WARN, "public url", f"{settings.public_url} is not https")
            )
        checks.append(await _reachable(context, settings.public_url or ""))
    if not context.app:
        return checks
    github = _github_client(context)
    try:
        checks.append(await _hook_points_here(github, expected))
        checks.append(await _recent_deliveries(github))
    finally:
        await github.aclose()
    return checks


async def _reachable(context: _Context, public_url: str) -> Check:
    try:
        async with httpx.AsyncClient(
            transport=context.transports.public, timeout=5
        ) as client:
            answer = await client.get(f"{public_url}/healthz")
    except httpx.HTTPError as error:
        return Check(
            WARN,
            "public url",
            f"{public_url}/healthz cannot be reached from here ({type(error).__name__}); "
            "GitHub may not reach it either",
        )
    if answer.status_code != 200:
        return Check(
            WARN, "public url", f"{public_url}/healthz answered {answer.status_code}"
        )
    return Check(OK, "public url", f"{public_url}/healthz answers")


async def _hook_points_here(github: GitHubClient, expected: str | None) -> Check:
    try:
        config = await _answer(github.hook_config(), "GET /app/hook/config")
    except GitHubError as error:
        return Check(WARN, "webhook url", f"cannot read the App's webhook: {error}")
    except Unexpected as odd:
        return Check(FAIL, "webhook url", str(odd))
    url = config.get("url") or ""
    if not isinstance(url, str):
        return Check(FAIL, "webhook url", "GET /app/hook/config: `url` is not a string")
    if not url:
        return Check(FAIL, "webhook url", "the App has no webhook URL")
    if expected is not None and url.rstrip("/") != expected:
        return Check(
            FAIL, "webhook url", f"the App's webhook goes to {url}, not {expected}"
        )
    return Check(OK, "webhook url", url)


async def _recent_deliveries(github: GitHubClient) -> Check:
    try:
        items, _ = await _answer(github.hook_deliveries(), "GET /app/hook/deliveries")
    except GitHubError as error:
        return Check(WARN, "deliveries", f"cannot read the App's deliveries: {error}")
    except Unexpected as odd:
        return Check(FAIL, "deliveries", str(odd))
    # The client lists what it got; an object's keys would come out as strings.
    if not all(isinstance(item, dict) for item in items):
        return Check(
            FAIL,
            "deliveries",
            "GET /app/hook/deliveries answered something other than a list of "
            "deliveries",
        )
    since = utcnow() - timedelta(hours=24)
    attempts = [
        a for a in map(HookDelivery.parse, items) if a and a.delivered_at >= since
    ]
    if not attempts:
        return Check(OK, "deliveries", "none in the last 24 hours")
    good = {a.guid for a in attempts if a.succeeded}
    lost = {a.guid for a in attempts} - good
    if lost:
        newest = max(
            (a for a in attempts if a.guid in lost), key=lambda a: a.delivered_at
        )
        return Check(
            WARN,
            "deliveries",
            f"{len(lost)} of the last {len({a.guid for a in attempts})} failed "
            f"(newest: HTTP {newest.status_code or 'none'} at "
            f"{newest.delivered_at:%H:%M} UTC); `twill-bridge redeliver` asks for them again",
        )
    return Check(
        OK, "deliveries", f"the last {len(good)} in 24 hours reached the bridge"
    )
