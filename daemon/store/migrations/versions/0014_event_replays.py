"""event replays: per Pub/Sub topic, the replay id of the last change event taken in

``event_replays (topic)``: the replay id (bytes, as the Pub/Sub API sends it) and the
``commitTimestamp`` of the last change event whose records are committed in the store
(daemon.cycle.events); a restart resumes the subscription after it.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_replays",
        sa.Column("topic", sa.String(length=80), primary_key=True),
        sa.Column("replay_id", sa.LargeBinary(), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("event_replays")
