"""placeholder: replaced by the sandbox command."""

import click


@click.group("sandbox")
def sandbox_group() -> None:
    """The offline TMDB sandbox."""
