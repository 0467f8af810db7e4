"""Database engine, sessions and migrations, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import stat
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bridge import log
from bridge.jsoncodec import dumps

# The SQLite file and the files SQLite keeps beside it. SQLite makes the
# journal, -wal and -shm files with the main file's mode (sqlite.org, "Temporary
# Files Used By SQLite"; the unix VFS copies the database file's permissions).
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def create_engine(
    url: str, sqlite_synchronous: str = "full", **options: Any
) -> AsyncEngine:
    """An async engine with the per-database settings the bridge relies on.

    `sqlite_synchronous` is SQLite's PRAGMA synchronous, "full" or "normal".
    """
    # JSON columns (a dispatch's snapshot, request, ...) written with orjson.
    options.setdefault("json_serializer", dumps)
    if url.startswith("sqlite"):
        _ensure_sqlite_file(url)
        # One connection: SQLite has one writer at a time anyway, and waiting in
        # the pool's queue is fair and prompt, where waiting on SQLite's busy
        # handler sleeps in growing steps and gives long tail latencies.
        options.setdefault("pool_size", 1)
        options.setdefault("max_overflow", 0)
        options.setdefault("pool_timeout", 60)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **options)
        event.listen(
            engine.sync_engine, "connect", partial(_sqlite_pragmas, sqlite_synchronous)
        )
        return engine
    options.setdefault("pool_size", 10)
    options.setdefault("max_overflow", 10)
    options.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **options)


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL names; None for an in-memory or `file:` URI database."""
    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


async def refuses_writes(connection: AsyncConnection) -> bool:
    """Whether the database would refuse a write now, asked without writing.

    PostgreSQL: a standby, or `default_transaction_read_only` set on the
    database or the role, makes every transaction read-only. SQLite: the file,
    or the -wal and -shm files beside it, cannot be written by this process
    (its mode, or a file system mounted read-only). A trial write would wait
    behind other writers; these answer at once.
    """
    if connection.dialect.name == "postgresql":
        setting = await connection.scalar(
            text("SELECT current_setting('transaction_read_only')")
        )
        return setting == "on"
    database = sqlite_file(connection.engine.url.render_as_string())
    if connection.dialect.name != "sqlite" or database is None:
        return False
    if not os.access(database, os.W_OK):
        return True
    for companion in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        place = companion if companion.exists() else database.parent
        if not os.access(place, os.W_OK):
            return True
    return False


def _ensure_sqlite_file(url: str) -> None:
    """Create the SQLite file owner-only, or make an existing one so.

    The file holds the dispatches, the signing key of served files and the
    setup token's hash: whoever reads it reads them. SQLite would create it
    with the umask's mode (often 0644).
    """
    database = sqlite_file(url)
    if database is None:
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        # An empty file is an empty SQLite database.
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    for companion in SQLITE_COMPANIONS:
        _owner_only(Path(f"{database}{companion}"))


def _owner_only(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    try:
        path.chmod(mode & 0o700)
    except OSError as error:
        # Another user's file: say so, and carry on as before.
        log.warning(
            "database file is readable by others and cannot be made owner-only",
            path=str(path),
            mode=f"{mode:04o}",
            error=error.strerror,
        )
        return
    log.warning(
        "database file was readable by others; made it owner-only",
        path=str(path),
        mode_was=f"{mode:04o}",
    )


def _sqlite_pragmas(synchronous: str, connection: Any, _record: Any) -> None:
    # WAL lets the dashboard read while the worker writes; the busy timeout
    # makes concurrent writers wait instead of failing with "database is locked".
    # In WAL mode, synchronous=FULL syncs the log at each commit (durable
    # through power loss); NORMAL syncs only at checkpoints.
    if synchronous not in ("full", "normal"):
        raise ValueError(f"synchronous must be full or normal, not {synchronous!r}")
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous.upper()}")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_worker_lock(url: str) -> Any:
    """An exclusive lock on `<database file>.worker-lock`, or None if another holds it.

    SQLite takes one worker process per database file; the lock is released
    when the returned file is closed or the process dies.
    """
    import fcntl

    path = url.split(":///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    handle = open(f"{path}.worker-lock", "a")  # held for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def migrations_folder() -> Path:
    """The Alembic scripts: beside the package in a checkout, inside it in a wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "migrations", package / "_migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the migrations folder is missing from this install")


def alembic_config(url: str) -> Any:
    """An Alembic config pointing at our scripts and at `url`; no alembic.ini."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_folder()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate(url: str, revision: str = "head") -> None:
    """Bring the database at `url` up to `revision` (blocking; run it off the loop)."""
    from alembic import command

    if url.startswith("sqlite"):
        _ensure_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The newest migration's id."""
    return revisions()[0]


def revisions() -> tuple[str, frozenset[str]]:
    """The newest migration's id, and the ids of every migration shipped."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = scripts.get_current_head()
    assert head is not None
    return head, frozenset(script.revision for script in scripts.walk_revisions())
