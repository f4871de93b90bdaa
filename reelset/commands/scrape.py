"""``reelset scrape`` (placeholder until the scraper lands)."""

from __future__ import annotations

import click


@click.command("scrape")
def scrape_command() -> None:
    """Scrape TMDB into the store (not implemented yet)."""
    raise click.UsageError("`reelset scrape` is not implemented yet")
