"""remap crosswalk

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remap_crosswalk",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("legacy_id", sa.String(length=18), nullable=False),
        sa.Column("legacy_type", sa.String(length=80), nullable=False),
        sa.Column("standard_id", sa.String(length=18), nullable=False),
        sa.Column("standard_type", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("remap_crosswalk") as batch_op:
        batch_op.create_index("ux_remap_crosswalk_legacy", ["legacy_id"], unique=True)
        batch_op.create_index(
            "ux_remap_crosswalk_standard", ["standard_id", "legacy_type"], unique=True
        )
    op.create_table(
        "remap_external_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system", sa.String(length=40), nullable=False),
        sa.Column("sf_id", sa.String(length=18), nullable=False),
        sa.Column("sf_type", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=80), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("learned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("remap_external_keys") as batch_op:
        batch_op.create_index("ux_remap_external_keys", ["system", "sf_id", "kind"], unique=True)
        batch_op.create_index("ix_remap_external_keys_key", ["system", "key"], unique=False)


def downgrade() -> None:
    op.drop_table("remap_external_keys")
    op.drop_table("remap_crosswalk")
