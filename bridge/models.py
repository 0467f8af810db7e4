"""The database tables: deliveries, dispatches and each dispatch's timeline.

The unique constraints here are what make duplicates impossible: one row per
delivery id, one dispatch per trigger key. Code may rely on them; it must
never rely on checking first and inserting after.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints, so that migrations can refer to them on every database.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no zone, so values come back naive there; this makes both
    databases answer alike.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Delivery(Base):
    """One webhook request from GitHub, keyed by its X-GitHub-Delivery id."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(100), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64))
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    repository: Mapped[str | None] = mapped_column(String(200))
    issue_number: Mapped[int | None] = mapped_column(Integer)
    sender: Mapped[str | None] = mapped_column(String(100))
    # queued | duplicate | ignored | denied | replied
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    dispatch_id: Mapped[int | None] = mapped_column(Integer)
    body_bytes: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The same delivery id again (GitHub's redelivery, a retrying proxy).
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    last_repeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index(None, "received_at"),
        # A dispatch's page lists the deliveries that named it.
        Index(None, "dispatch_id"),
    )


class Dispatch(Base):
    """Our record of one trigger turned into (at most) one Twill task."""

    __tablename__ = "dispatches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trigger_key: Mapped[str] = mapped_column(String(300), unique=True)
    delivery_id: Mapped[str] = mapped_column(String(100))
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    repository: Mapped[str] = mapped_column(String(200))
    repository_id: Mapped[int | None] = mapped_column(BigInteger)
    issue_number: Mapped[int] = mapped_column(Integer)
    issue_title: Mapped[str] = mapped_column(Text, default="")
    issue_url: Mapped[str] = mapped_column(Text, default="")
    is_pull_request: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger_kind: Mapped[str] = mapped_column(String(20))  # label | comment
    trigger_label: Mapped[str | None] = mapped_column(String(100))
    trigger_comment_id: Mapped[int | None] = mapped_column(BigInteger)
    requester: Mapped[str] = mapped_column(String(100))
    intent: Mapped[str] = mapped_column(String(20))
    agent: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    command: Mapped[str] = mapped_column(Text)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The exact create-task body, as it is (or, in dry-run, would be) sent.
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)

    # The issue and trigger as they were at trigger time (IssueSnapshot and
    # Trigger fields), so the worker composes from them, not from a later edit.
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Checked by the worker: permission, .github/twill.yml, pull request details.
    prepared: Mapped[bool] = mapped_column(Boolean, default=False)
    requester_permission: Mapped[str | None] = mapped_column(String(50))
    config_source: Mapped[str | None] = mapped_column(String(200))
    config_problem: Mapped[str | None] = mapped_column(Text)
    reactions: Mapped[str] = mapped_column(String(100), default="")

    # queued | sending | created | reported | failed | uncertain | not_sent
    # | denied (the requester may not trigger) | skipped (the repository says no)
    # | dismissed (a person closed a failed or uncertain one)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    twill_task_id: Mapped[str | None] = mapped_column(String(100))
    twill_task_slug: Mapped[str | None] = mapped_column(String(200))
    twill_task_url: Mapped[str | None] = mapped_column(Text)
    twill_job_id: Mapped[str | None] = mapped_column(String(100))
    twill_job_status: Mapped[str | None] = mapped_column(String(20))
    twill_response: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    # What the dispatch asks of Twill: "create" a task, send a follow-up
    # "message" to the task of dispatch `target_dispatch_id`, or "cancel" it.
    action: Mapped[str] = mapped_column(
        String(10), default="create", server_default="create"
    )
    target_dispatch_id: Mapped[int | None] = mapped_column(Integer)

    # Following the task (bridge/follow.py): None while not followed, then
    # active | done | expired (past BRIDGE_POLL_MAX_AGE_SECONDS) | unavailable
    # (Twill lacks the status endpoint) | gone (Twill no longer has the task).
    follow: Mapped[str | None] = mapped_column(String(20))
    poll_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    polls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The latest job as the bridge last read it (bridge.follow.JobView as JSON).
    job: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Follow-ups and cancels addressed to this dispatch's task, oldest first.
    follow_ups: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # A long final answer gets a comment of its own.
    answer_comment_id: Mapped[int | None] = mapped_column(BigInteger)

    # The comment back on the issue is a step of its own (see bridge/worker.py).
    comment_id: Mapped[int | None] = mapped_column(BigInteger)
    report_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    report_attempts: Mapped[int] = mapped_column(Integer, default=0)
    report_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    report_error: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    @property
    def composed(self) -> bool:
        """Whether `request` (and `command`, `files`) hold what goes to Twill.

        A live dispatch's request is composed by the worker once its checks
        have run (bridge/prepare.py); until then only the snapshot is stored.
        A dry-run dispatch is composed on receipt, as are rows made before
        snapshots existed.
        """
        return self.prepared or self.dry_run or self.snapshot is None

    __table_args__ = (
        Index(None, "status", "next_attempt_at"),
        Index(None, "report_pending", "report_next_at"),
        Index(None, "repository", "issue_number"),
        # The dashboard's list: newest first, keyset on (created_at, id), alone
        # or under an equality filter on status or repository. It serves every
        # query on created_at alone too (migration 0010 dropped that index:
        # one B-tree fewer for each dispatch recorded).
        Index(None, "created_at", "id"),
        Index(None, "status", "created_at", "id"),
        Index(None, "repository", "created_at", "id"),
        Index(None, "requester", "created_at", "id"),
        # Counts per status under a repository or requester filter, read from
        # the index alone; and the search by issue number.
        Index(None, "repository", "status"),
        Index(None, "requester", "status"),
        Index(None, "issue_number", "created_at", "id"),
        # The poller's queue.
        Index(None, "follow", "poll_next_at"),
        # GET /metrics: dispatches by status and intent, from the index alone.
        Index(None, "status", "intent"),
    )


class DispatchEvent(Base):
    """One move in a dispatch's life, with when and why: the timeline."""

    __tablename__ = "dispatch_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dispatch_id: Mapped[int] = mapped_column(
        ForeignKey("dispatches.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    # Who made the move when a person did (a dashboard login, a CLI --by name).
    actor: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index(None, "dispatch_id", "at"),)


class Reply(Base):
    """A comment the bridge owes an issue that is not a dispatch's tracking comment.

    Usage replies and refusals go through here so that they are posted by the
    worker, with retries, and at most once per `key`.
    """

    __tablename__ = "replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    delivery_id: Mapped[str] = mapped_column(String(100))
    installation_id: Mapped[int | None] = mapped_column(BigInteger)
    repository: Mapped[str] = mapped_column(String(200))
    issue_number: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    # pending | posted | failed | not_sent
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    comment_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow
    )

    __table_args__ = (Index(None, "status", "next_attempt_at"),)


class RateLimit(Base):
    """A shared pace for calls to one peer, so that all replicas together keep it.

    `next_slot_at` is the earliest moment the next call may go out (spacing the
    calls evenly); `paused_until` is set by a 429 and stops every worker.
    """

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_slot_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RateEvent(Base):
    """One reserved call slot, kept for an hour to count against hourly limits."""

    __tablename__ = "rate_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "call" (a create, follow-up or cancel) or "poll" (a status read, which
    # only takes slots nothing else wants; see bridge/budget.py).
    kind: Mapped[str] = mapped_column(String(10), default="call", server_default="call")

    __table_args__ = (Index(None, "key", "at"),)


class StoredFile(Base):
    """An attachment downloaded for a dispatch, served to Twill until it expires."""

    __tablename__ = "stored_files"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    dispatch_id: Mapped[int | None] = mapped_column(
        ForeignKey("dispatches.id", ondelete="SET NULL")
    )
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # The bytes live here, or in BRIDGE_FILES_DIR under the id when that is set.
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index(None, "expires_at"),)


class BridgeSecret(Base):
    """A key the bridge made for itself, shared by every replica through the database."""

    __tablename__ = "bridge_secrets"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RefusedSignature(Base):
    """Deliveries refused for their signature, counted per hour.

    One row per hour keeps the 401 path to a single upsert, and the counts
    survive restarts and add up across replicas.
    """

    __tablename__ = "refused_signatures"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class RevokedSession(Base):
    """A dashboard session signed out before its cookie expires; refused until then."""

    __tablename__ = "revoked_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BridgeFlag(Base):
    """A fact one replica learnt that every replica should act on (e.g. that
    Twill has no task-status endpoint), with when it was learnt."""

    __tablename__ = "bridge_flags"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GitHubApp(Base):
    """The GitHub App registered through /setup: one row, written once.

    Its existence closes /setup on every replica. The private key, webhook
    secret and OAuth client secret are in `sealed` (Fernet, with
    BRIDGE_SECRETS_KEY) when `storage` is `database`; with `file` they are in
    BRIDGE_CREDENTIALS_FILE and `sealed` is empty.
    """

    __tablename__ = "github_app"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    app_id: Mapped[int] = mapped_column(BigInteger)
    slug: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(String(100))
    html_url: Mapped[str] = mapped_column(Text, default="")
    client_id: Mapped[str | None] = mapped_column(String(100))
    storage: Mapped[str] = mapped_column(String(20))  # database | file
    sealed: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScheduledJob(Base):
    """A periodic job that one replica at a time runs, under a lease."""

    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_result: Mapped[str | None] = mapped_column(Text)


class Redelivery(Base):
    """A delivery GitHub failed to hand us, that we asked it to send again."""

    __tablename__ = "redeliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(100), unique=True)
    # GitHub's id of the attempt we asked it to repeat (not the guid).
    hook_delivery_id: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # requested (GitHub took the request) | failed (it refused; see last_error)
    outcome: Mapped[str] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    first_requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
