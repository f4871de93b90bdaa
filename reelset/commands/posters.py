"""``reelset posters`` (placeholder until the poster downloader lands)."""

from __future__ import annotations

import click


@click.group("posters", invoke_without_command=True)
def posters_group() -> None:
    """Download and verify posters (not implemented yet)."""
    raise click.UsageError("`reelset posters` is not implemented yet")
