"""``reelset imdb`` (placeholder until the IMDb import lands)."""

from __future__ import annotations

import click


@click.group("imdb")
def imdb_group() -> None:
    """Import IMDb's datasets (not implemented yet)."""
