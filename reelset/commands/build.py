"""``reelset build`` and ``reelset datasets`` (placeholders until the builder lands)."""

from __future__ import annotations

import click


@click.command("build")
def build_command() -> None:
    """Build a dataset (not implemented yet)."""
    raise click.UsageError("`reelset build` is not implemented yet")


@click.group("datasets")
def datasets_group() -> None:
    """List and compare built datasets (not implemented yet)."""
