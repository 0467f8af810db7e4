"""deliveries dispatches replies

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=100), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=True),
        sa.Column("installation_id", sa.BigInteger(), nullable=True),
        sa.Column("repository", sa.String(length=200), nullable=True),
        sa.Column("issue_number", sa.Integer(), nullable=True),
        sa.Column("sender", sa.String(length=100), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("dispatch_id", sa.Integer(), nullable=True),
        sa.Column("body_bytes", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("last_repeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_deliveries_delivery_id")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deliveries_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "dispatches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trigger_key", sa.String(length=300), nullable=False),
        sa.Column("delivery_id", sa.String(length=100), nullable=False),
        sa.Column("installation_id", sa.BigInteger(), nullable=True),
        sa.Column("repository", sa.String(length=200), nullable=False),
        sa.Column("repository_id", sa.BigInteger(), nullable=True),
        sa.Column("issue_number", sa.Integer(), nullable=False),
        sa.Column("issue_title", sa.Text(), nullable=False),
        sa.Column("issue_url", sa.Text(), nullable=False),
        sa.Column("is_pull_request", sa.Boolean(), nullable=False),
        sa.Column("trigger_kind", sa.String(length=20), nullable=False),
        sa.Column("trigger_label", sa.String(length=100), nullable=True),
        sa.Column("trigger_comment_id", sa.BigInteger(), nullable=True),
        sa.Column("requester", sa.String(length=100), nullable=False),
        sa.Column("intent", sa.String(length=20), nullable=False),
        sa.Column("agent", sa.String(length=200), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("twill_task_id", sa.String(length=100), nullable=True),
        sa.Column("twill_task_slug", sa.String(length=200), nullable=True),
        sa.Column("twill_task_url", sa.Text(), nullable=True),
        sa.Column("twill_job_id", sa.String(length=100), nullable=True),
        sa.Column("twill_job_status", sa.String(length=20), nullable=True),
        sa.Column("twill_response", sa.JSON(), nullable=True),
        sa.Column("comment_id", sa.BigInteger(), nullable=True),
        sa.Column("report_pending", sa.Boolean(), nullable=False),
        sa.Column("report_attempts", sa.Integer(), nullable=False),
        sa.Column("report_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("report_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatches")),
        sa.UniqueConstraint("trigger_key", name=op.f("uq_dispatches_trigger_key")),
    )
    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dispatches_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_report_pending_report_next_at"),
            ["report_pending", "report_next_at"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_repository_issue_number"),
            ["repository", "issue_number"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )

    op.create_table(
        "replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("delivery_id", sa.String(length=100), nullable=False),
        sa.Column("installation_id", sa.BigInteger(), nullable=True),
        sa.Column("repository", sa.String(length=200), nullable=False),
        sa.Column("issue_number", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("comment_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
        sa.UniqueConstraint("key", name=op.f("uq_replies_key")),
    )
    with op.batch_alter_table("replies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_replies_status_next_attempt_at"),
            ["status", "next_attempt_at"],
            unique=False,
        )

    op.create_table(
        "dispatch_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispatch_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispatch_id"],
            ["dispatches.id"],
            name=op.f("fk_dispatch_events_dispatch_id_dispatches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_events")),
    )
    with op.batch_alter_table("dispatch_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dispatch_events_dispatch_id_at"),
            ["dispatch_id", "at"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("dispatch_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatch_events_dispatch_id_at"))

    op.drop_table("dispatch_events")
    with op.batch_alter_table("replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replies_status_next_attempt_at"))

    op.drop_table("replies")
    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatches_status_next_attempt_at"))
        batch_op.drop_index(batch_op.f("ix_dispatches_repository_issue_number"))
        batch_op.drop_index(batch_op.f("ix_dispatches_report_pending_report_next_at"))
        batch_op.drop_index(batch_op.f("ix_dispatches_created_at"))

    op.drop_table("dispatches")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_received_at"))

    op.drop_table("deliveries")
