"""go-live: the cut-over (and its audit trail), adopted plans, shadow mode's would-sends

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cutovers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("adopted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "shadow_sends",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False, unique=True),
        sa.Column("system", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=80), nullable=False),
        sa.Column("order_id", sa.String(length=18), nullable=False),
        sa.Column("step_ref", sa.String(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("switched_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_shadow_sends_order_id", "shadow_sends", ["order_id"])
    op.create_index("ix_shadow_sends_recorded_at", "shadow_sends", ["recorded_at"])
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("adopted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("adopted_revision", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("adopted_revision")
        batch_op.drop_column("adopted_at")
    op.drop_index("ix_shadow_sends_recorded_at", "shadow_sends")
    op.drop_index("ix_shadow_sends_order_id", "shadow_sends")
    op.drop_table("shadow_sends")
    op.drop_table("cutovers")
