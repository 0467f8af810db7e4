"""The GitHub App's credentials from /setup: kept sealed in the database, or in a file.

GitHub hands over the App's private key, webhook secret and OAuth client
secret once, in its answer to the manifest conversion. The bridge keeps them
either in the `github_app` row, encrypted with Fernet under a key derived from
BRIDGE_SECRETS_KEY (every replica reads them there), or in an owner-only env
file, BRIDGE_CREDENTIALS_FILE, that `load_settings` reads beneath the
environment and `.env`. Either way the row records that the App exists, which
closes /setup on every replica. Settings from the environment win over stored
ones, group by group (the App's id and key, the webhook secret, the OAuth client).

Until then, /setup asks for the setup token. The raw token is only in the
owner-only file BRIDGE_DATA_DIR/setup-token; the database keeps its SHA-256
(the token is 256 random bits, so a fast hash is enough), one row per token
file, so that any replica accepts a token any replica wrote, and a copy or a
backup of the database gives nobody a way into /setup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bridge.models import BridgeSecret, GitHubApp, utcnow
from bridge.settings import Secret, Settings, SettingsError, load_settings
from bridge.store import insert_ignoring_conflict

ROW_ID = 1
# bridge_secrets rows named SETUP_ROW + the first 32 hex digits of a setup
# token's SHA-256 hold the whole digest. Versions before kept the raw token in
# the row named SETUP_ROW itself; it is deleted wherever it is seen.
SETUP_ROW = "setup-token"
# The file in BRIDGE_DATA_DIR the operator reads the setup token from.
SETUP_FILE = "setup-token"


class CredentialsError(Exception):
    """Stored credentials cannot be used; the message says why, without any secret."""


class AlreadyConfigured(Exception):
    """Another setup registered an App first; this one's answer was not kept."""


@dataclass(frozen=True)
class AppCredentials:
    """What the bridge keeps of the App GitHub registered."""

    app_id: int
    slug: str
    owner: str | None
    html_url: str
    private_key: Secret
    webhook_secret: Secret | None
    client_id: str | None
    client_secret: Secret | None

    @classmethod
    def from_conversion(cls, body: dict[str, Any]) -> AppCredentials:
        """The credentials in GitHub's manifest-conversion answer."""
        app_id, pem = body.get("id"), body.get("pem")
        if not isinstance(app_id, int) or app_id < 1 or not isinstance(pem, str):
            raise CredentialsError("GitHub's answer holds no App id and private key")
        owner = body.get("owner")
        return cls(
            app_id=app_id,
            slug=str(body.get("slug") or ""),
            owner=str(owner.get("login")) if isinstance(owner, dict) else None,
            html_url=str(body.get("html_url") or ""),
            private_key=Secret(pem),
            webhook_secret=_secret(body.get("webhook_secret")),
            client_id=str(body["client_id"]) if body.get("client_id") else None,
            client_secret=_secret(body.get("client_secret")),
        )

    @property
    def install_url(self) -> str:
        """Where the operator installs the App on repositories."""
        return f"{self.html_url}/installations/new" if self.html_url else ""


def _secret(value: object) -> Secret | None:
    return Secret(value) if isinstance(value, str) and value else None


def storage_of(settings: Settings) -> str:
    """`database` when BRIDGE_SECRETS_KEY is set, else `file`."""
    return "database" if settings.secrets_key is not None else "file"


# Sealing, for the database.


def _fernet(key: Secret) -> Fernet:
    # Any string of 32 characters or more: a Fernet key is derived from it.
    digest = hashlib.sha256(b"twill-bridge credentials\0" + key.reveal().encode())
    return Fernet(base64.urlsafe_b64encode(digest.digest()))


def seal(credentials: AppCredentials, key: Secret) -> str:
    """The secret parts of `credentials`, encrypted and authenticated."""
    plain = {
        "pem": credentials.private_key.reveal(),
        "webhook_secret": _reveal(credentials.webhook_secret),
        "client_secret": _reveal(credentials.client_secret),
    }
    return _fernet(key).encrypt(json.dumps(plain).encode()).decode()


def _reveal(secret: Secret | None) -> str | None:
    return secret.reveal() if secret is not None else None


def unseal(row: GitHubApp, key: Secret | None) -> AppCredentials:
    """The credentials in a `database` row; CredentialsError if the key cannot open them."""
    if key is None:
        raise CredentialsError(
            "the GitHub App's credentials are sealed in the database, "
            "and BRIDGE_SECRETS_KEY is not set"
        )
    try:
        plain = json.loads(_fernet(key).decrypt((row.sealed or "").encode()))
    except (InvalidToken, ValueError) as error:
        raise CredentialsError(
            "BRIDGE_SECRETS_KEY does not open the GitHub App's credentials "
            "in the database (was the key changed?)"
        ) from error
    return AppCredentials(
        app_id=row.app_id,
        slug=row.slug,
        owner=row.owner,
        html_url=row.html_url,
        private_key=Secret(plain["pem"]),
        webhook_secret=_secret(plain.get("webhook_secret")),
        client_id=row.client_id,
        client_secret=_secret(plain.get("client_secret")),
    )


# The file.


def env_lines(credentials: AppCredentials) -> str:
    """The credentials as an env file that `load_settings` reads."""
    values = {
        "GITHUB_APP_ID": str(credentials.app_id),
        "GITHUB_APP_PRIVATE_KEY": credentials.private_key.reveal(),
        "GITHUB_WEBHOOK_SECRET": _reveal(credentials.webhook_secret),
        "GITHUB_CLIENT_ID": credentials.client_id,
        "GITHUB_CLIENT_SECRET": _reveal(credentials.client_secret),
    }
    lines = [
        "# The GitHub App registered through /setup"
        f" ({credentials.slug or credentials.app_id}).",
        "# Written by twill-bridge; settings in the environment or .env win over these.",
    ]
    for name, value in values.items():
        if value:
            # Double quotes: python-dotenv turns \n back into line breaks.
            escaped = (
                value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
            )
            lines.append(f'{name}="{escaped}"')
    return "\n".join(lines) + "\n"


def write_file(path: Path, credentials: AppCredentials) -> None:
    """Write the env file, readable by its owner only, replacing it in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: a name of its own (no two writers share it), created 0600.
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    temporary = Path(name)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(env_lines(credentials))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def writable_problem(settings: Settings) -> str | None:
    """Why the credentials could not be kept, checked before GitHub makes the App."""
    if storage_of(settings) == "database":
        return None
    folder = settings.credentials_file.parent
    target = (
        folder
        if folder.exists()
        else next((p for p in folder.parents if p.exists()), Path())
    )
    if not os.access(target, os.W_OK):
        return (
            f"the bridge cannot write {settings.credentials_file} "
            "(set BRIDGE_CREDENTIALS_FILE, or BRIDGE_SECRETS_KEY to keep the "
            "credentials in the database)"
        )
    return None


def read_file(settings: Settings) -> AppCredentials | None:
    """The credentials in BRIDGE_CREDENTIALS_FILE, or None when it holds none."""
    path = settings.credentials_file
    if not path.is_file():
        return None
    try:
        found = load_settings({"BRIDGE_CREDENTIALS_FILE": str(path)}, env_file=None)
    except SettingsError as error:
        raise CredentialsError(f"{path} is not usable: {error}") from error
    if found.github_app_id is None or found.github_private_key is None:
        return None
    return AppCredentials(
        app_id=found.github_app_id,
        slug="",
        owner=None,
        html_url="",
        private_key=found.github_private_key,
        webhook_secret=found.webhook_secrets[0] if found.webhook_secrets else None,
        client_id=found.github_client_id,
        client_secret=found.github_client_secret,
    )


# The row.


async def save(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    credentials: AppCredentials,
) -> str:
    """Keep the credentials where the settings say; the storage used.

    The row is claimed first and the file written only by the setup whose
    insert won, inside that transaction: two setups finishing at once leave
    the winner's App in the row, the file and the running process, and a
    file that cannot be written leaves no row behind. Raises AlreadyConfigured
    when another setup's row is there (the row is written once), and OSError
    when the file cannot be written.
    """
    storage = storage_of(settings)
    sealed = None
    if storage == "database":
        assert settings.secrets_key is not None
        sealed = seal(credentials, settings.secrets_key)
    async with sessions() as session:
        # On PostgreSQL a second insert waits here for the first to commit or
        # roll back; on SQLite the first holds the write lock until then.
        inserted = await insert_ignoring_conflict(
            session,
            GitHubApp,
            "id",
            {
                "id": ROW_ID,
                "app_id": credentials.app_id,
                "slug": credentials.slug[:100],
                "owner": (credentials.owner or "")[:100] or None,
                "html_url": credentials.html_url,
                "client_id": credentials.client_id,
                "storage": storage,
                "sealed": sealed,
                "created_at": utcnow(),
            },
        )
        if inserted is None:
            await session.rollback()
            raise AlreadyConfigured
        if storage == "file":
            # Raises OSError; leaving the block unfinished rolls the row back.
            write_file(settings.credentials_file, credentials)
        # The setup tokens have done their work.
        await session.execute(_setup_rows_delete())
        await session.commit()
    return storage


# The setup token.


def _setup_rows_delete() -> Any:
    return BridgeSecret.__table__.delete().where(
        BridgeSecret.name.startswith(SETUP_ROW, autoescape=True)
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def setup_row_name(token: str) -> str:
    """The bridge_secrets row that stands for `token`."""
    return f"{SETUP_ROW}:{_digest(token)[:32]}"


def read_token_file(data_dir: Path) -> str | None:
    """The token in `<data dir>/setup-token`, if it is there and owner-only."""
    path = data_dir / SETUP_FILE
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            return None  # others could have read it: never trust it
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token if len(token) >= 32 else None


def write_token_file(data_dir: Path, token: str) -> Path:
    """Keep `token` in `<data dir>/setup-token`, owner-only, replaced in one step."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SETUP_FILE
    descriptor, name = tempfile.mkstemp(dir=data_dir, prefix=f".{SETUP_FILE}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(token + "\n")
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return path


async def offer_setup_token(
    sessions: async_sessionmaker[AsyncSession], data_dir: Path
) -> Path:
    """Make sure `<data dir>/setup-token` holds a token every replica accepts.

    The token already there is kept (replicas sharing a data dir share it);
    otherwise a new one is made. Only its digest goes to the database.
    Returns the file's path.
    """
    token = read_token_file(data_dir)
    if token is None:
        token = secrets.token_hex(32)
        write_token_file(data_dir, token)
    async with sessions() as session:
        await session.execute(
            BridgeSecret.__table__.delete().where(BridgeSecret.name == SETUP_ROW)
        )
        await _keep_digest(session, token)
        await session.commit()
    return data_dir / SETUP_FILE


async def issue_setup_token(sessions: async_sessionmaker[AsyncSession]) -> str:
    """A new setup token that every replica accepts, for `twill-bridge setup-token`.

    Only its digest is kept, so the token cannot be read back: each call makes
    another, and all of them stop working once the App is configured.
    """
    token = secrets.token_hex(32)
    async with sessions() as session:
        await _keep_digest(session, token)
        await session.commit()
    return token


async def _keep_digest(session: AsyncSession, token: str) -> None:
    """Store `token`'s digest in its own row, so every replica accepts it."""
    await insert_ignoring_conflict(
        session,
        BridgeSecret,
        "name",
        {
            "name": setup_row_name(token),
            "value": _digest(token),
            "created_at": utcnow(),
        },
    )


async def setup_token_row(
    sessions: async_sessionmaker[AsyncSession], token: str
) -> str | None:
    """The row name standing for `token` when /setup accepts it, else None."""
    name = setup_row_name(token)
    async with sessions() as session:
        stored = await session.scalar(
            select(BridgeSecret.value).where(BridgeSecret.name == name)
        )
    if stored is None or not hmac.compare_digest(stored, _digest(token)):
        return None
    return name


async def setup_row_exists(
    sessions: async_sessionmaker[AsyncSession], name: str
) -> bool:
    """True while the token behind row `name` is still accepted."""
    if not name.startswith(f"{SETUP_ROW}:"):
        return False
    async with sessions() as session:
        found = await session.scalar(
            select(BridgeSecret.name).where(BridgeSecret.name == name)
        )
    return found is not None


async def registered(sessions: async_sessionmaker[AsyncSession]) -> GitHubApp | None:
    """The row of the App registered through /setup, if there is one."""
    async with sessions() as session:
        return await session.scalar(select(GitHubApp).where(GitHubApp.id == ROW_ID))


async def load(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> AppCredentials | None:
    """The stored credentials (database or file), None when /setup has not run.

    Raises CredentialsError when they exist but cannot be read.
    """
    row = await registered(sessions)
    if row is None:
        return None
    if row.storage == "database":
        return unseal(row, settings.secrets_key)
    found = read_file(settings)
    if found is None:
        raise CredentialsError(
            f"the GitHub App {row.slug or row.app_id} was registered with its "
            f"credentials in a file, and {settings.credentials_file} holds none here"
        )
    return replace(found, slug=row.slug, owner=row.owner, html_url=row.html_url)


def with_credentials(settings: Settings, credentials: AppCredentials) -> Settings:
    """`settings` with stored credentials filling what the environment left unset."""
    changes: dict[str, Any] = {}
    if settings.github_app_id is None and settings.github_private_key is None:
        changes["github_app_id"] = credentials.app_id
        changes["github_private_key"] = credentials.private_key
    generated = settings.webhook_secret_file is not None
    if credentials.webhook_secret and (not settings.webhook_secrets or generated):
        changes["webhook_secrets"] = (credentials.webhook_secret,)
        changes["webhook_secret_file"] = None
    if (
        settings.github_client_id is None
        and credentials.client_id
        and credentials.client_secret
    ):
        changes["github_client_id"] = credentials.client_id
        changes["github_client_secret"] = credentials.client_secret
    return replace(settings, **changes)
