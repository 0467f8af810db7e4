"""trigger snapshot and preparation

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot", sa.JSON(), nullable=True))
        # Rows from before this migration were dispatched without the checks
        # and carry no snapshot to check them with: count them as prepared.
        batch_op.add_column(
            sa.Column(
                "prepared", sa.Boolean(), nullable=False, server_default=sa.true()
            )
        )
        batch_op.add_column(
            sa.Column("requester_permission", sa.String(length=50), nullable=True)
        )
        batch_op.add_column(
            sa.Column("config_source", sa.String(length=200), nullable=True)
        )
        batch_op.add_column(sa.Column("config_problem", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "reactions", sa.String(length=100), nullable=False, server_default=""
            )
        )
    # New rows get their values from the application, like every other column.
    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.alter_column("prepared", server_default=None)
        batch_op.alter_column("reactions", server_default=None)


def downgrade() -> None:

    with op.batch_alter_table("dispatches", schema=None) as batch_op:
        batch_op.drop_column("reactions")
        batch_op.drop_column("config_problem")
        batch_op.drop_column("config_source")
        batch_op.drop_column("requester_permission")
        batch_op.drop_column("prepared")
        batch_op.drop_column("snapshot")
