"""The store for analysts: ``genre_map``, the analyst views, full-text search (SQLite).

- ``genre_map`` (IMDb genre -> TMDB genre, written by every ``imdb import`` and ``build``);
- the views of :data:`reelset.storage.schema.VIEWS`: ``movie_genre_names`` and
  ``movie_imdb`` recreated (active movies only, JSON genre columns), and new
  ``movie_genres_named``, ``genre_agreement``, ``run_summary``, ``open_failures``;
- SQLite: the FTS5 index ``movies_fts`` of titles and overviews with the triggers that keep
  it in step, filled from the stored movies ('rebuild'). PostgreSQL has no FTS5: none.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from reelset.storage.schema import (
    FTS_REBUILD,
    FTS_TABLE,
    VIEW_NAMES,
    fts_statements,
    view_definitions,
    view_sql,
)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_V1_VIEWS = ("movie_genre_names", "movie_imdb")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "genre_map",
        sa.Column("imdb_genre", sa.Text(), nullable=False),
        sa.Column("tmdb_genre_id", sa.Integer()),
        sa.Column("tmdb_genre", sa.Text()),
        sa.PrimaryKeyConstraint("imdb_genre", name="pk_genre_map"),
    )
    for name in _V1_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for name, body in view_sql(dialect).items():
        op.execute(f"CREATE VIEW {name} AS {body}")
    if dialect == "sqlite":
        for statement in fts_statements():
            op.execute(statement)
        op.execute(FTS_REBUILD)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for trigger in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {FTS_TABLE}_{trigger}")
        op.execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
    for name in reversed(VIEW_NAMES):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.drop_table("genre_map")
    for name, body in view_definitions(dialect).items():
        op.execute(f"CREATE VIEW {name} AS {body}")
