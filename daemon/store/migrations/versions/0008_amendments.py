"""amendments

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("supersedes", sa.String(length=18), nullable=True))
        batch_op.add_column(sa.Column("superseded_by", sa.String(length=18), nullable=True))
        batch_op.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("line_flags", sa.JSON(), nullable=True))
        batch_op.create_index("ix_plans_superseded_by", ["superseded_by"], unique=False)
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replaces_task_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_tasks_replaces_task_id", "tasks", ["replaces_task_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_constraint("fk_tasks_replaces_task_id", type_="foreignkey")
        batch_op.drop_column("replaces_task_id")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_index("ix_plans_superseded_by")
        for column in ("line_flags", "cancelled_at", "superseded_by", "supersedes", "snapshot"):
            batch_op.drop_column(column)
