"""plans.wake_at (when a plan must next be advanced), change counts and an index for writeback

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wake_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_plans_wake_at", ["wake_at"], unique=False)
        batch_op.add_column(
            sa.Column("change_seq", sa.Integer(), server_default="0", nullable=False)
        )
    with op.batch_alter_table("sf_writebacks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan_seq", sa.Integer(), nullable=True))
        # Writeback reads the rows of a wave's Orders and of their children by parent.
        batch_op.create_index("ix_sf_writebacks_parent_id", ["parent_id"], unique=False)
    # Every plan already in the store is looked at once by the first pass after the upgrade,
    # which then sets its own next time.
    op.execute("UPDATE plans SET wake_at = updated_at")


def downgrade() -> None:
    with op.batch_alter_table("sf_writebacks", schema=None) as batch_op:
        batch_op.drop_index("ix_sf_writebacks_parent_id")
        batch_op.drop_column("plan_seq")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("change_seq")
        batch_op.drop_index("ix_plans_wake_at")
        batch_op.drop_column("wake_at")
