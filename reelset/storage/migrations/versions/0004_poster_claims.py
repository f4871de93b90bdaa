"""Poster workers: the ``poster_claims`` table.

``reelset posters --worker`` processes (PostgreSQL stores) share the poster downloads
through it: a worker claims a batch of movies under a lease it renews while it works,
and deletes the claims once their rows are recorded (see :mod:`reelset.storage.claims`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from reelset.storage.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "poster_claims",
        sa.Column("tmdb_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("worker", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Integer()),
        sa.Column("claimed_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tmdb_id"],
            ["movies.tmdb_id"],
            ondelete="CASCADE",
            name="fk_poster_claims_tmdb_id_movies",
        ),
        sa.PrimaryKeyConstraint("tmdb_id", name="pk_poster_claims"),
    )
    op.create_index("ix_poster_claims_lease_until", "poster_claims", ["lease_until"])


def downgrade() -> None:
    op.drop_index("ix_poster_claims_lease_until", table_name="poster_claims")
    op.drop_table("poster_claims")
