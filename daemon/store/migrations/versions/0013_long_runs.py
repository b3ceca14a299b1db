"""long runs: what per-cycle scans and the retention pruning find by index

- ``source_records (sobject, seen_at)``: the cycle plans Invoices from the records stored
  since it last looked (daemon.cycle.invoices), not from every draft ever polled.
- ``plans (updated_at)``, ``sf_writebacks (retry_at)``: writeback looks at the plans changed
  since it last looked and the retries due, not at every plan ever written.
- ``plans.pruned_at`` and ``plans (pruned_at, updated_at)``: housekeeping prunes the
  history of plans settled longer than ORDERFLOW_RETENTION_DAYS ago, in batches, each plan
  once (daemon.service.retention).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.create_index("ix_source_records_seen", ["sobject", "seen_at"], unique=False)
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_plans_pruned_updated", ["pruned_at", "updated_at"], unique=False)
        batch_op.create_index("ix_plans_updated_at", ["updated_at"], unique=False)
    with op.batch_alter_table("sf_writebacks", schema=None) as batch_op:
        batch_op.create_index("ix_sf_writebacks_retry_at", ["retry_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sf_writebacks", schema=None) as batch_op:
        batch_op.drop_index("ix_sf_writebacks_retry_at")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_index("ix_plans_updated_at")
        batch_op.drop_index("ix_plans_pruned_updated")
        batch_op.drop_column("pruned_at")
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_index("ix_source_records_seen")
