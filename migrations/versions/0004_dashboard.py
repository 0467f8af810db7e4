"""dashboard: who moved a dispatch, refused signatures, list indexes

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refused_signatures",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_refused_signatures")),
    )
    with op.batch_alter_table("dispatch_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor", sa.String(length=100), nullable=True))

    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dispatches_created_at_id"),
            ["created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_repository_created_at_id"),
            ["repository", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_status_created_at_id"),
            ["status", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_requester_created_at_id"),
            ["requester", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_repository_status"),
            ["repository", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_requester_status"),
            ["requester", "status"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_issue_number_created_at_id"),
            ["issue_number", "created_at", "id"],
            unique=False,
        )

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deliveries_dispatch_id"), ["dispatch_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_dispatch_id"))

    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatches_issue_number_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_dispatches_requester_status"))
        batch_op.drop_index(batch_op.f("ix_dispatches_repository_status"))
        batch_op.drop_index(batch_op.f("ix_dispatches_requester_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_dispatches_status_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_dispatches_repository_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_dispatches_created_at_id"))

    with op.batch_alter_table("dispatch_events", schema=None) as batch_op:
        batch_op.drop_column("actor")

    op.drop_table("refused_signatures")
