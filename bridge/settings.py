"""Settings, read once at start-up from the environment and a `.env` file.

Every option the bridge has lives on `Settings`; nothing else reads the
environment. Secrets are wrapped in `Secret`, whose repr is masked, so a
settings object can be logged or printed without leaking anything.
"""

from __future__ import annotations

import math
import os
import re
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

INTENTS = ("SWE", "PLAN", "ASK", "DEV_ENVIRONMENT")

DEFAULT_LABELS: dict[str, str] = {
    "twill": "SWE",
    "twill-plan": "PLAN",
    "twill-ask": "ASK",
    "twill-dev-env": "DEV_ENVIRONMENT",
}

PERMISSIONS = ("read", "triage", "write", "maintain", "admin")

# libpq's sslmode values, which asyncpg's `ssl` option takes as they are.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# The query options of a PostgreSQL URL that reach asyncpg.connect() (through
# SQLAlchemy's asyncpg dialect) as strings and work there. `host` and `port`
# SQLAlchemy reads itself: `?host=/var/run/postgresql` for a Unix socket, or
# several servers (`host=h1,h2&port=p1,p2`, or `host=h1:p1&host=h2:p2`).
ASYNCPG_OPTIONS = frozenset(
    {
        "ssl",
        "target_session_attrs",
        "prepared_statement_cache_size",
        "passfile",
        "host",
        "port",
    }
)
# The one option that may be given more than once (one server each).
REPEATABLE_OPTIONS = frozenset({"host"})
# What to do instead of a libpq option asyncpg refuses; asyncpg reads these
# variables of libpq's from the environment itself.
LIBPQ_HINTS = {
    "sslrootcert": "set PGSSLROOTCERT in the environment instead",
    "sslcert": "set PGSSLCERT in the environment instead",
    "sslkey": "set PGSSLKEY in the environment instead",
    "sslcrl": "set PGSSLCRL in the environment instead",
}
# Twill's agent ids: provider/model, e.g. claude-code/sonnet, open-code/openai/gpt-5.4.
AGENT_PATTERN = re.compile(r"^(?=.{3,200}$)[a-z0-9][a-z0-9._-]*(/[A-Za-z0-9._:-]+)+$")

# Media types passed on to the agent unless BRIDGE_FILES_TYPES says otherwise.
DEFAULT_FILE_TYPES = (
    "image/*",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
    "application/pdf",
    "application/yaml",
    "application/gzip",
    "application/zip",
    "video/mp4",
    "video/quicktime",
    "video/webm",
)


class SettingsError(Exception):
    """The settings are unusable; `problems` holds one sentence per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class Secret:
    """A string that never shows itself in repr, str or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and _secrets.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))


@dataclass(frozen=True)
class Settings:
    """Everything the bridge can be told, with its defaults."""

    twill_api_key: Secret | None = None
    twill_api_url: str = "https://twill.ai/api/v1"
    github_app_id: int | None = None
    github_private_key: Secret | None = None
    webhook_secrets: tuple[Secret, ...] = ()
    webhook_secret_file: Path | None = None
    github_api_url: str = "https://api.github.com"
    github_web_url: str = "https://github.com"
    database_url: str = "sqlite+aiosqlite:///twill-bridge.db"
    data_dir: Path = Path()
    # SQLite's PRAGMA synchronous: "full" syncs every commit to disk (a 2xx
    # survives power loss), "normal" only at checkpoints (survives a crash of
    # the process, not of the machine). No effect on PostgreSQL.
    sqlite_synchronous: str = "full"
    host: str = "127.0.0.1"
    port: int = 8000
    labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    default_agent: str | None = None
    allowed_bots: frozenset[str] = frozenset()
    min_permission: str = "write"
    allow_sha1: bool = False
    command_max_chars: int = 60_000
    public_url: str | None = None
    files_mode: str = "url"
    files_max_bytes: int = 10 * 1024 * 1024
    files_max_count: int = 10
    files_types: tuple[str, ...] = DEFAULT_FILE_TYPES
    files_url_ttl_seconds: float = 24 * 3600
    files_retention_seconds: float = 7 * 24 * 3600
    files_dir: Path | None = None
    files_secret: Secret | None = None
    force_dry_run: bool = False
    worker_enabled: bool = True
    worker_concurrency: int = 4
    worker_poll_seconds: float = 1.0
    lease_seconds: float = 120.0
    max_attempts: int = 8
    max_retry_age_seconds: float = 6 * 3600
    twill_timeout_seconds: float = 20.0
    twill_rate_per_minute: int = 100
    twill_rate_per_hour: int = 1000
    github_write_interval_seconds: float = 1.0
    # Following tasks after they start (bridge/follow.py, the worker's poll step).
    follow_tasks: bool = True
    poll_first_seconds: float = 30.0
    poll_max_seconds: float = 600.0
    poll_max_age_seconds: float = 48 * 3600
    poll_share: float = 0.25
    on_unlabel: str = "ignore"
    shutdown_grace_seconds: float = 25.0
    log_level: str = "INFO"
    log_format: str = "auto"
    # GET /metrics asks for `Authorization: Bearer <metrics_token>` when it is set.
    metrics_token: Secret | None = None
    # The admin dashboard: GitHub sign-in through the App's OAuth credentials for
    # `admin_logins`, or a password where OAuth is not set up; a bearer token
    # for the JSON API; the key that signs session cookies.
    github_client_id: str | None = None
    github_client_secret: Secret | None = None
    admin_logins: frozenset[str] = frozenset()
    admin_password: Secret | None = None
    admin_token: Secret | None = None
    session_secret: Secret | None = None
    # The App registered through /setup: its credentials are kept encrypted in
    # the database with `secrets_key`, or else written to `credentials_file`.
    secrets_key: Secret | None = None
    credentials_file: Path = Path("github-app.env")
    # GitHub never retries a failed delivery; this job asks it to, every
    # `redeliver_interval_seconds` (0: never), for the last `redeliver_window_seconds`.
    redeliver_interval_seconds: float = 300.0
    redeliver_window_seconds: float = 6 * 3600

    @property
    def oauth_enabled(self) -> bool:
        """True when sign-in goes through GitHub's OAuth web flow."""
        return bool(self.github_client_id and self.github_client_secret)

    @property
    def github_web_host(self) -> str:
        """The host of GITHUB_WEB_URL, where attachment links point."""
        return urlsplit(self.github_web_url).netloc.lower()

    @property
    def dry_run_reasons(self) -> list[str]:
        """Why the bridge would not call Twill or GitHub; empty when it will."""
        reasons = []
        if self.force_dry_run:
            reasons.append("BRIDGE_DRY_RUN is set")
        if self.twill_api_key is None:
            reasons.append("TWILL_API_KEY is not set")
        if self.github_app_id is None:
            reasons.append("GITHUB_APP_ID is not set")
        if self.github_private_key is None:
            reasons.append(
                "neither GITHUB_APP_PRIVATE_KEY nor GITHUB_APP_PRIVATE_KEY_PATH is set"
            )
        return reasons

    @property
    def dry_run(self) -> bool:
        """True when dispatches are composed and stored but never sent."""
        return bool(self.dry_run_reasons)

    def secret_values(self) -> list[str]:
        """Every secret these settings hold, revealed, to redact text with.

        Each `Secret` field (and the webhook secrets), each line of a PEM key's
        body as well (a peer may quote a part), and the database password.
        """
        found = []
        for item in fields(self):
            value = getattr(self, item.name)
            for secret in value if isinstance(value, tuple) else (value,):
                if isinstance(secret, Secret):
                    found.append(secret.reveal())
                    found += [
                        line.strip()
                        for line in secret.reveal().splitlines()[1:]
                        if len(line.strip()) >= 16 and not line.startswith("-----")
                    ]
        password = make_url(self.database_url).password
        if password:
            found.append(str(password))
        return found


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Settings from `environ` (default: the process environment) over `env_file`.

    Raises SettingsError listing every problem found, not just the first.
    """
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        values.update(_env_file(env_file))
    values.update(os.environ if environ is None else environ)
    # What /setup wrote (bridge/credentials.py) comes last: every setting the
    # environment or .env names wins over it.
    stored = credentials_path(values)
    if stored.is_file():
        values = {**_env_file(stored), **values}
    return _Reader(values).settings()


def credentials_path(values: Mapping[str, str]) -> Path:
    """BRIDGE_CREDENTIALS_FILE, or `github-app.env` in BRIDGE_DATA_DIR."""
    named = (values.get("BRIDGE_CREDENTIALS_FILE") or "").strip()
    if named:
        return Path(named).expanduser()
    return Path((values.get("BRIDGE_DATA_DIR") or "").strip() or ".") / "github-app.env"


def _env_file(path: Path) -> dict[str, str]:
    return {k: v for k, v in dotenv_values(path).items() if v is not None}


class _Reader:
    """Turns raw strings into a Settings, collecting problems as it goes."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.problems: list[str] = []

    def text(self, name: str) -> str | None:
        raw = self.values.get(name)
        if raw is None:
            return None
        raw = raw.strip()
        return raw or None

    def url(self, name: str, default: str) -> str:
        value = self.text(name) or default
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (raises ValueError for a port out of range)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            # The value is not echoed: a key pasted into the wrong setting must
            # not end up in a terminal or a log.
            self.problems.append(
                f"{name} must be an http(s) URL such as https://host/path"
            )
            return default
        return value.rstrip("/")

    def optional_url(self, name: str) -> str | None:
        if self.text(name) is None:
            return None
        return self.url(name, "http://invalid")

    def words(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.text(name)
        if value is None:
            return default
        return tuple(w.strip().lower() for w in value.split(",") if w.strip())

    def integer(
        self, name: str, default: int, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.text(name)
        if value is None:
            return default
        if not (value.isascii() and value.lstrip("-").isdigit()):
            self.problems.append(f"{name} must be a whole number, got {value[:20]!r}")
            return default
        number = int(value)
        if number < minimum or (maximum is not None and number > maximum):
            top = f" and at most {maximum}" if maximum is not None else ""
            self.problems.append(
                f"{name} must be at least {minimum}{top}, got {number}"
            )
            return default
        return number

    def number(self, name: str, default: float, minimum: float = 0.0) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            self.problems.append(f"{name} must be a number, got {value[:20]!r}")
            return default
        if number < minimum:
            self.problems.append(f"{name} must be at least {minimum:g}, got {number:g}")
            return default
        return number

    def share(self, name: str, default: float) -> float:
        """A fraction above 0 and at most 1."""
        number = self.number(name, default, 0.0)
        if not 0 < number <= 1:
            self.problems.append(
                f"{name} must be above 0 and at most 1, got {number:g}"
            )
            return default
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self.text(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name} must be true or false, got {value!r}")
        return default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = (self.text(name) or default).lower()
        if value not in allowed:
            self.problems.append(f"{name} must be one of {', '.join(allowed)}")
            return default
        return value

    def app_id(self) -> int | None:
        value = self.text("GITHUB_APP_ID")
        if value is None:
            return None
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            self.problems.append(f"GITHUB_APP_ID must be numeric, got {value[:20]!r}")
            return None
        return int(value)

    def private_key(self) -> Secret | None:
        inline = self.text("GITHUB_APP_PRIVATE_KEY")
        path = self.text("GITHUB_APP_PRIVATE_KEY_PATH")
        if inline and path:
            self.problems.append(
                "set GITHUB_APP_PRIVATE_KEY or GITHUB_APP_PRIVATE_KEY_PATH, not both"
            )
            return None
        if path:
            try:
                inline = Path(path).expanduser().read_text().strip()
            except (OSError, UnicodeDecodeError, ValueError) as error:
                reason = getattr(error, "strerror", None) or "not a text file"
                if "\n" in path or "PRIVATE KEY" in path or len(path) > 300:
                    # The key itself, pasted in the wrong setting: never echo it.
                    self.problems.append(
                        "GITHUB_APP_PRIVATE_KEY_PATH holds what looks like a key, not "
                        "a path; put the key in GITHUB_APP_PRIVATE_KEY instead"
                    )
                else:
                    self.problems.append(
                        f"GITHUB_APP_PRIVATE_KEY_PATH {path!r} cannot be read: {reason}"
                    )
                return None
        if not inline:
            return None
        # .env files and CI secret stores often carry the PEM on one line.
        pem = inline.replace("\\n", "\n")
        if not _is_private_key(pem):
            source = "GITHUB_APP_PRIVATE_KEY_PATH" if path else "GITHUB_APP_PRIVATE_KEY"
            self.problems.append(
                f"{source} does not hold a readable PEM RSA private key "
                "(GitHub Apps sign with RSA)"
            )
            return None
        return Secret(pem)

    def webhook_secrets(self) -> tuple[Secret, ...]:
        raw = self.values.get("GITHUB_WEBHOOK_SECRET") or ""
        return tuple(Secret(part.strip()) for part in raw.split(",") if part.strip())

    def labels(self) -> dict[str, str]:
        raw = self.text("BRIDGE_LABELS")
        if raw is None:
            return dict(DEFAULT_LABELS)
        labels: dict[str, str] = {}
        for item in raw.split(","):
            if not item.strip():
                continue
            name, sep, intent = item.partition("=")
            name, intent = name.strip().lower(), intent.strip().upper()
            if not sep or not name or intent not in INTENTS:
                self.problems.append(
                    f"BRIDGE_LABELS entry {item.strip()!r} must be label=INTENT "
                    f"with INTENT one of {', '.join(INTENTS)}"
                )
                continue
            labels[name] = intent
        return labels

    def database_url(self, data_dir: Path) -> str:
        value = self.text("DATABASE_URL")
        if value is None:
            return f"sqlite+aiosqlite:///{data_dir / 'twill-bridge.db'}"
        # Accept the URLs that hosting platforms hand out and pick async drivers.
        for prefix, replacement in (
            ("postgres://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("sqlite:///", "sqlite+aiosqlite:///"),
        ):
            if value.startswith(prefix):
                value = replacement + value[len(prefix) :]
        fallback = f"sqlite+aiosqlite:///{data_dir / 'twill-bridge.db'}"
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            self.problems.append(
                "DATABASE_URL must be a postgresql:// or sqlite:/// URL"
            )
            return fallback
        try:
            parsed = make_url(value)
            parsed.port  # noqa: B018 (a bad port fails here, not at connect)
        except (ValueError, ArgumentError):
            # Not echoed: the URL may hold a password.
            self.problems.append("DATABASE_URL is not a valid URL (check its port)")
            return fallback
        if parsed.drivername != "postgresql+asyncpg" or not parsed.query:
            return value
        query = self.asyncpg_query(dict(parsed.query))
        if query is None:
            return fallback
        return parsed.set(query=query).render_as_string(hide_password=False)

    def asyncpg_query(
        self, query: dict[str, str | tuple[str, ...]]
    ) -> dict[str, str | tuple[str, ...]] | None:
        """A PostgreSQL URL's options as asyncpg takes them, or None (a problem noted).

        Hosted PostgreSQL hands out libpq's URLs (`?sslmode=require`); asyncpg
        takes the same six modes as `ssl` and refuses libpq's other options.
        """
        options: dict[str, str] = {}
        hosts: tuple[str, ...] | None = None
        for name, raw in query.items():
            if name in REPEATABLE_OPTIONS and not isinstance(raw, str):
                hosts = raw
                continue
            if not isinstance(raw, str):
                self.problems.append(f"DATABASE_URL gives the option {name!r} twice")
                return None
            options[name] = raw
        if "sslmode" in options:
            mode = options.pop("sslmode")
            if options.setdefault("ssl", mode) != mode:
                self.problems.append(
                    "DATABASE_URL sets both sslmode and ssl, to different modes"
                )
                return None
        for name, value in options.items():
            if name not in ASYNCPG_OPTIONS:
                hint = LIBPQ_HINTS.get(name, "remove it from the URL")
                self.problems.append(
                    f"DATABASE_URL option {name[:40]!r} is not one the bridge's "
                    f"PostgreSQL driver (asyncpg) understands: {hint}"
                )
                return None
            if name == "ssl" and value not in SSL_MODES:
                self.problems.append(
                    f"DATABASE_URL sslmode (or ssl) must be one of {', '.join(SSL_MODES)}"
                )
                return None
        if "port" in options and not _ports(options["port"]):
            self.problems.append(
                "DATABASE_URL option port must be a port number from 1 to 65535 "
                "(or several, comma-separated)"
            )
            return None
        passed: dict[str, str | tuple[str, ...]] = dict(options)
        if hosts is not None:
            passed["host"] = hosts
        return passed

    def settings(self) -> Settings:
        data_dir = Path(self.text("BRIDGE_DATA_DIR") or ".")
        twill_key = self.text("TWILL_API_KEY")
        agent = self.text("BRIDGE_DEFAULT_AGENT")
        if agent is not None and not AGENT_PATTERN.match(agent):
            self.problems.append(
                "BRIDGE_DEFAULT_AGENT must look like provider/model, at most 200 characters"
            )
            agent = None
        settings = Settings(
            twill_api_key=Secret(twill_key) if twill_key else None,
            twill_api_url=self.url("TWILL_API_URL", "https://twill.ai/api/v1"),
            github_app_id=self.app_id(),
            github_private_key=self.private_key(),
            webhook_secrets=self.webhook_secrets(),
            github_api_url=self.url("GITHUB_API_URL", "https://api.github.com"),
            github_web_url=self.url("GITHUB_WEB_URL", "https://github.com"),
            database_url=self.database_url(data_dir),
            data_dir=data_dir,
            sqlite_synchronous=self.choice(
                "BRIDGE_SQLITE_SYNCHRONOUS", "full", ("full", "normal")
            ),
            host=self.text("BRIDGE_HOST") or "127.0.0.1",
            port=self.integer("BRIDGE_PORT", 8000, minimum=1, maximum=65535),
            labels=self.labels(),
            default_agent=agent,
            allowed_bots=frozenset(
                name.strip().lower()
                for name in (self.text("BRIDGE_ALLOWED_BOTS") or "").split(",")
                if name.strip()
            ),
            allow_sha1=self.flag("BRIDGE_ALLOW_SHA1", False),
            min_permission=self.choice("BRIDGE_MIN_PERMISSION", "write", PERMISSIONS),
            command_max_chars=self.integer(
                "BRIDGE_COMMAND_MAX_CHARS", 60_000, minimum=2_000
            ),
            force_dry_run=self.flag("BRIDGE_DRY_RUN", False),
            public_url=self.optional_url("BRIDGE_PUBLIC_URL"),
            files_mode=self.choice("BRIDGE_FILES_MODE", "url", ("url", "data")),
            files_max_bytes=self.integer(
                "BRIDGE_FILES_MAX_BYTES", 10 * 1024 * 1024, minimum=1
            ),
            files_max_count=self.integer("BRIDGE_FILES_MAX_COUNT", 10, minimum=0),
            files_types=self.words("BRIDGE_FILES_TYPES", DEFAULT_FILE_TYPES),
            files_url_ttl_seconds=self.number(
                "BRIDGE_FILES_URL_TTL_SECONDS", 24 * 3600, 60
            ),
            files_retention_seconds=self.number(
                "BRIDGE_FILES_RETENTION_SECONDS", 7 * 24 * 3600, 60
            ),
            files_dir=Path(d) if (d := self.text("BRIDGE_FILES_DIR")) else None,
            files_secret=Secret(f) if (f := self.text("BRIDGE_FILES_SECRET")) else None,
            worker_enabled=self.flag("BRIDGE_WORKER", True),
            worker_concurrency=self.integer("BRIDGE_WORKER_CONCURRENCY", 4, minimum=1),
            worker_poll_seconds=self.number("BRIDGE_WORKER_POLL_SECONDS", 1.0, 0.01),
            lease_seconds=self.number("BRIDGE_LEASE_SECONDS", 120.0, 1.0),
            max_attempts=self.integer("BRIDGE_MAX_ATTEMPTS", 8, minimum=1),
            max_retry_age_seconds=self.number("BRIDGE_MAX_RETRY_AGE_SECONDS", 21600, 1),
            twill_timeout_seconds=self.number("BRIDGE_TWILL_TIMEOUT_SECONDS", 20, 0.1),
            twill_rate_per_minute=self.integer(
                "BRIDGE_TWILL_RATE_PER_MINUTE", 100, minimum=1
            ),
            twill_rate_per_hour=self.integer(
                "BRIDGE_TWILL_RATE_PER_HOUR", 1000, minimum=1
            ),
            github_write_interval_seconds=self.number(
                "BRIDGE_GITHUB_WRITE_INTERVAL_SECONDS", 1.0, 0.0
            ),
            follow_tasks=self.flag("BRIDGE_FOLLOW_TASKS", True),
            poll_first_seconds=self.number("BRIDGE_POLL_FIRST_SECONDS", 30, 1),
            poll_max_seconds=self.number("BRIDGE_POLL_MAX_SECONDS", 600, 1),
            poll_max_age_seconds=self.number(
                "BRIDGE_POLL_MAX_AGE_SECONDS", 48 * 3600, 60
            ),
            poll_share=self.share("BRIDGE_POLL_SHARE", 0.25),
            on_unlabel=self.choice("BRIDGE_ON_UNLABEL", "ignore", ("ignore", "cancel")),
            shutdown_grace_seconds=self.number("BRIDGE_SHUTDOWN_GRACE_SECONDS", 25, 0),
            log_level=self.choice(
                "BRIDGE_LOG_LEVEL", "info", ("debug", "info", "warning", "error")
            ).upper(),
            log_format=self.choice(
                "BRIDGE_LOG_FORMAT", "auto", ("auto", "json", "text")
            ),
            metrics_token=self.secret("BRIDGE_METRICS_TOKEN"),
        )
        settings = replace(settings, **self.admin(), **self.setup())
        if self.problems:
            raise SettingsError(self.problems)
        return settings

    def secret(self, name: str) -> Secret | None:
        value = self.text(name)
        return Secret(value) if value else None

    def admin(self) -> dict[str, object]:
        client_id = self.text("GITHUB_CLIENT_ID")
        client_secret = self.secret("GITHUB_CLIENT_SECRET")
        if bool(client_id) != bool(client_secret):
            self.problems.append(
                "set both GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET, or neither"
            )
        session_secret = self.secret("BRIDGE_SESSION_SECRET")
        if session_secret is not None and len(session_secret.reveal()) < 32:
            self.problems.append("BRIDGE_SESSION_SECRET must be at least 32 characters")
        return {
            "github_client_id": client_id,
            "github_client_secret": client_secret,
            "admin_logins": frozenset(
                name.strip().lower()
                for name in (self.text("BRIDGE_ADMIN_LOGINS") or "").split(",")
                if name.strip()
            ),
            "admin_password": self.secret("BRIDGE_ADMIN_PASSWORD"),
            "admin_token": self.secret("BRIDGE_ADMIN_TOKEN"),
            "session_secret": session_secret,
        }

    def setup(self) -> dict[str, object]:
        key = self.secret("BRIDGE_SECRETS_KEY")
        if key is not None and len(key.reveal()) < 32:
            self.problems.append("BRIDGE_SECRETS_KEY must be at least 32 characters")
            key = None
        return {
            "secrets_key": key,
            "credentials_file": credentials_path(self.values),
            "redeliver_interval_seconds": self.number(
                "BRIDGE_REDELIVER_INTERVAL_SECONDS", 300, 0
            ),
            "redeliver_window_seconds": self.number(
                "BRIDGE_REDELIVER_WINDOW_SECONDS", 6 * 3600, 60
            ),
        }


def _is_private_key(pem: str) -> bool:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return False
    return isinstance(key, RSAPrivateKey)


def ensure_session_secret(settings: Settings) -> Settings:
    """Settings with a session signing key, generating and keeping one if none is set.

    Kept in `<data dir>/session-secret` (owner-only), so sessions outlive a
    restart; replicas must share BRIDGE_SESSION_SECRET or the file.
    """
    if settings.session_secret is not None:
        return settings
    value = _kept_secret(settings.data_dir / "session-secret")
    return replace(settings, session_secret=Secret(value))


def _kept_secret(path: Path) -> str:
    """The secret in `path`, made (random, owner-only) when the file is missing."""
    value = path.read_text().strip() if path.is_file() else ""
    if len(value) < 16:
        # Missing, emptied or cut short: a short key would let anyone sign.
        path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        value = _secrets.token_hex(32)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(value + "\n")
    os.chmod(path, 0o600)
    return value


def ensure_webhook_secret(settings: Settings) -> tuple[Settings, Path | None]:
    """Settings with a webhook secret, generating and keeping one if none is set.

    The generated secret lives in `<data dir>/webhook-secret`, readable by its
    owner only, so a restart keeps accepting the deliveries GitHub signs with it.
    Returns the new settings and the file's path when the file was used.
    """
    if settings.webhook_secrets:
        return settings, None
    path = settings.data_dir / "webhook-secret"
    value = _kept_secret(path)
    return replace(
        settings, webhook_secrets=(Secret(value),), webhook_secret_file=path
    ), path


def _ports(value: str) -> bool:
    """Whether `value` is one port number, or several separated by commas."""
    return all(
        part.isascii() and part.isdigit() and 1 <= int(part) <= 65535
        for part in value.split(",")
    )
