"""following tasks: follow-ups, cancels, polled job status

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bridge_flags",
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_bridge_flags")),
    )
    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "action", sa.String(length=10), server_default="create", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("target_dispatch_id", sa.Integer(), nullable=True)
        )
        batch_op.add_column(sa.Column("follow", sa.String(length=20), nullable=True))
        batch_op.add_column(
            sa.Column("poll_next_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("polls", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("job", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("follow_ups", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("answer_comment_id", sa.BigInteger(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_dispatches_follow_poll_next_at"),
            ["follow", "poll_next_at"],
            unique=False,
        )

    with op.batch_alter_table("rate_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind", sa.String(length=10), server_default="call", nullable=False
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("rate_events", schema=None) as batch_op:
        batch_op.drop_column("kind")

    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dispatches_follow_poll_next_at"))
        batch_op.drop_column("answer_comment_id")
        batch_op.drop_column("follow_ups")
        batch_op.drop_column("job")
        batch_op.drop_column("polls")
        batch_op.drop_column("poll_next_at")
        batch_op.drop_column("follow")
        batch_op.drop_column("target_dispatch_id")
        batch_op.drop_column("action")

    op.drop_table("bridge_flags")
