"""jeopardy

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jeopardy", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_tasks_jeopardy", ["jeopardy"], unique=False)
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jeopardy", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("notified", sa.String(length=20), nullable=True))
        batch_op.create_index("ix_plans_jeopardy", ["jeopardy"], unique=False)
    # Fulfillment_Task__c records are kept by their external id (Task_Key__c), not an Id.
    with op.batch_alter_table("sf_writebacks", schema=None) as batch_op:
        batch_op.alter_column(
            "sf_id", existing_type=sa.String(length=18), type_=sa.String(length=255)
        )


def downgrade() -> None:
    with op.batch_alter_table("sf_writebacks", schema=None) as batch_op:
        batch_op.alter_column(
            "sf_id", existing_type=sa.String(length=255), type_=sa.String(length=18)
        )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_index("ix_plans_jeopardy")
        batch_op.drop_column("notified")
        batch_op.drop_column("jeopardy")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_jeopardy")
        batch_op.drop_column("due_at")
        batch_op.drop_column("jeopardy")
