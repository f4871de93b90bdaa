"""The failure lifecycle: ``fetch_failures.state`` and ``abandoned_at``.

A failure is ``open`` (retried by later runs), ``abandoned`` (it failed ``[failures]
max_attempts`` times over at least ``min_age_days``: no longer retried automatically) or
``resolved``. Existing rows become ``resolved`` when ``resolved_at`` is set and ``open``
otherwise; an open failure already past the limits is abandoned at its next failure.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from reelset.storage.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN on both backends (no table copy on SQLite): nullable, or NOT NULL
    # with a default that fills the existing rows.
    op.add_column(
        "fetch_failures",
        sa.Column("state", sa.String(16), server_default="open", nullable=False),
    )
    op.add_column("fetch_failures", sa.Column("abandoned_at", UTCDateTime()))
    op.execute("UPDATE fetch_failures SET state = 'resolved' WHERE resolved_at IS NOT NULL")
    op.create_index("ix_fetch_failures_state_kind", "fetch_failures", ["state", "kind"])


def downgrade() -> None:
    # Abandoned failures were unresolved rows, as 0001 reads them: nothing else to undo.
    op.drop_index("ix_fetch_failures_state_kind", table_name="fetch_failures")
    op.drop_column("fetch_failures", "abandoned_at")
    op.drop_column("fetch_failures", "state")
