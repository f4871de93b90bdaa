"""The first schema: movies, genres, posters, runs, failures, IMDb titles, views.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from reelset.storage.schema import UTCDateTime, view_definitions

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "movies",
        sa.Column("tmdb_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("imdb_id", sa.String(16)),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("original_title", sa.Text()),
        sa.Column("original_language", sa.String(16)),
        sa.Column("overview", sa.Text()),
        sa.Column("tagline", sa.Text()),
        sa.Column("release_date", sa.Date()),
        sa.Column("year", sa.Integer()),
        sa.Column("runtime", sa.Integer()),
        sa.Column("popularity", sa.Float()),
        sa.Column("vote_average", sa.Float()),
        sa.Column("vote_count", sa.Integer()),
        sa.Column("adult", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("poster_path", sa.Text()),
        sa.Column("keywords", sa.JSON()),
        sa.Column("status", sa.String(16), server_default="active", nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tmdb_id", name="pk_movies"),
    )
    for column in ("imdb_id", "year", "updated_at"):
        op.create_index(f"ix_movies_{column}", "movies", [column])
    op.create_table(
        "movie_fetches",
        sa.Column("tmdb_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.Column("run_id", sa.Integer()),
        sa.PrimaryKeyConstraint("tmdb_id", name="pk_movie_fetches"),
    )

    op.create_table(
        "genres",
        sa.Column("genre_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("genre_id", name="pk_genres"),
    )
    op.create_table(
        "movie_genres",
        sa.Column("tmdb_id", sa.Integer(), nullable=False),
        sa.Column("genre_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tmdb_id"],
            ["movies.tmdb_id"],
            ondelete="CASCADE",
            name="fk_movie_genres_tmdb_id_movies",
        ),
        sa.ForeignKeyConstraint(
            ["genre_id"], ["genres.genre_id"], name="fk_movie_genres_genre_id_genres"
        ),
        sa.PrimaryKeyConstraint("tmdb_id", "genre_id", name="pk_movie_genres"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_movie_genres_genre_id", "movie_genres", ["genre_id"])

    op.create_table(
        "posters",
        sa.Column("tmdb_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("file_path", sa.Text()),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("format", sa.String(16)),
        sa.Column("mode", sa.String(16)),
        sa.Column("bytes", sa.Integer()),
        sa.Column("phash", sa.String(32)),
        sa.Column("poster_path", sa.Text()),
        sa.Column("source_url", sa.Text()),
        sa.Column("resized_file_path", sa.Text()),
        sa.Column("resized_width", sa.Integer()),
        sa.Column("resized_height", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("downloaded_at", UTCDateTime()),
        sa.ForeignKeyConstraint(
            ["tmdb_id"], ["movies.tmdb_id"], ondelete="CASCADE", name="fk_posters_tmdb_id_movies"
        ),
        sa.PrimaryKeyConstraint("tmdb_id", name="pk_posters"),
    )
    op.create_index("ix_posters_sha256", "posters", ["sha256"])
    op.create_index("ix_posters_status", "posters", ["status"])

    op.create_table(
        "scrape_runs",
        sa.Column("run_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("counts", sa.JSON()),
        sa.Column("pid", sa.Integer()),
        sa.Column("hostname", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("run_id", name="pk_scrape_runs"),
    )
    op.create_index("ix_scrape_runs_command_status", "scrape_runs", ["command", "status"])

    op.create_table(
        "fetch_failures",
        sa.Column("failure_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer()),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("http_status", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("attempts", sa.Integer(), server_default="1", nullable=False),
        sa.Column("first_failed_at", UTCDateTime(), nullable=False),
        sa.Column("last_failed_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scrape_runs.run_id"], name="fk_fetch_failures_run_id_scrape_runs"
        ),
        sa.PrimaryKeyConstraint("failure_id", name="pk_fetch_failures"),
    )
    op.create_index("ix_fetch_failures_run_id", "fetch_failures", ["run_id"])
    op.create_index(
        "uq_fetch_failures_open",
        "fetch_failures",
        ["kind", "key"],
        unique=True,
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    )

    op.create_table(
        "run_lock",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Integer()),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("hostname", sa.Text(), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_run_lock"),
    )
    op.create_table(
        "checkpoints",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Integer()),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_checkpoints"),
    )

    op.create_table(
        "imdb_titles",
        sa.Column("imdb_id", sa.String(16), nullable=False),
        sa.Column("title_type", sa.String(32), nullable=False),
        sa.Column("primary_title", sa.Text()),
        sa.Column("original_title", sa.Text()),
        sa.Column("is_adult", sa.Boolean()),
        sa.Column("start_year", sa.Integer()),
        sa.Column("runtime_minutes", sa.Integer()),
        sa.Column("average_rating", sa.Float()),
        sa.Column("num_votes", sa.Integer()),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("imdb_id", name="pk_imdb_titles"),
    )
    op.create_table(
        "imdb_title_genres",
        sa.Column("imdb_id", sa.String(16), nullable=False),
        sa.Column("genre", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["imdb_id"],
            ["imdb_titles.imdb_id"],
            ondelete="CASCADE",
            name="fk_imdb_title_genres_imdb_id_imdb_titles",
        ),
        sa.PrimaryKeyConstraint("imdb_id", "genre", name="pk_imdb_title_genres"),
    )
    op.create_index("ix_imdb_title_genres_genre", "imdb_title_genres", ["genre"])

    dialect = op.get_bind().dialect.name
    for name, body in view_definitions(dialect).items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name in ("movie_imdb", "movie_genre_names"):
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for table in (
        "imdb_title_genres",
        "imdb_titles",
        "checkpoints",
        "run_lock",
        "fetch_failures",
        "scrape_runs",
        "posters",
        "movie_genres",
        "genres",
        "movie_fetches",
        "movies",
    ):
        op.drop_table(table)
