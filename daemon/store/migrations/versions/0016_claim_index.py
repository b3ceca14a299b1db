"""claim index: a lane's due callouts, read in id order

``ix_tasks_system_state (system, state, id)``: a lane claims its system's Ready tasks
lowest id first (daemon.cycle.claims); with this index the read stops after the batch instead of
reading and sorting every Ready task of every system (40,000 at the start of a
10,000-order burst, for each claim of 16).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_system_state", "tasks", ["system", "state", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_system_state", table_name="tasks")
