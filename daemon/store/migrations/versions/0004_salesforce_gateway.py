"""salesforce gateway: writeback state per record, the API budget, deleted orders

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sf_writebacks",
        sa.Column("sobject", sa.String(length=40), nullable=False),
        sa.Column("sf_id", sa.String(length=18), nullable=False),
        sa.Column("parent_id", sa.String(length=18), nullable=True),
        sa.Column("written", sa.JSON(), nullable=False),
        sa.Column("error_code", sa.String(length=80), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed_values", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sobject", "sf_id"),
    )
    op.create_index("ix_sf_writebacks_error_code", "sf_writebacks", ["error_code"])
    op.create_table(
        "sf_budget",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sf_deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("flag", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_column("flag")
        batch_op.drop_column("sf_deleted_at")
    op.drop_table("sf_budget")
    op.drop_index("ix_sf_writebacks_error_code", table_name="sf_writebacks")
    op.drop_table("sf_writebacks")
