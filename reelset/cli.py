"""The command line: parses options, calls one stage, prints. No business logic here.

Exit codes: 0 success; 1 done with failures recorded (or an internal error); 2 usage or
configuration error; 3 the store is locked by another run; 4 TMDB refused the
credentials; 130 interrupted.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from reelset import __version__
from reelset.commands.app import App
from reelset.commands.build import build_command, datasets_group
from reelset.commands.db import db_group
from reelset.commands.imdb import imdb_group
from reelset.commands.ledger import failures_command, runs_command
from reelset.commands.posters import posters_group
from reelset.commands.sandbox import sandbox_group
from reelset.commands.scrape import scrape_command
from reelset.console import setup_logging
from reelset.errors import ReelsetError, error_line
from reelset.redaction import redact

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 1000
"""Longest error message printed (our messages are one line and far shorter)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="reelset")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: $REELSET_CONFIG, else ./config.toml, else built-in defaults).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for HTTP details).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int, quiet: bool) -> None:
    """reelset: TMDB and IMDb into clean, versioned training data for genre classification."""
    setup_logging(verbose, quiet=quiet)
    ctx.obj = App(config_path=config_path, verbosity=verbose, quiet=quiet)


cli.add_command(db_group)
cli.add_command(sandbox_group)
cli.add_command(scrape_command)
cli.add_command(posters_group)
cli.add_command(imdb_group)
cli.add_command(build_command)
cli.add_command(datasets_group)
cli.add_command(failures_command)
cli.add_command(runs_command)


def _click_message(exc: click.ClickException) -> str:
    """Click's error as one line: the message, then where to find help for a usage error."""
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and context is not None:
        message = f"{message.rstrip('.')} (see '{context.command_path} --help')"
    return redact(message)[:MESSAGE_LIMIT]


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn every user-facing error into one line and an exit code."""
    try:
        result = cli.main(args=argv, prog_name="reelset", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("reelset: interrupted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"reelset: error: {_click_message(exc)}", err=True)
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except ReelsetError as exc:
        click.echo(f"reelset: error: {error_line(exc, limit=MESSAGE_LIMIT)}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("reelset: interrupted", err=True)
        return 130
    except Exception as exc:  # a bug: say so in one line; -v shows the traceback
        if logging.getLogger("reelset").isEnabledFor(logging.DEBUG):
            log.exception("internal error")
        click.echo(
            f"reelset: internal error: {error_line(exc, limit=MESSAGE_LIMIT, with_type=True)} "
            "(run with -v for the traceback)",
            err=True,
        )
        return 1
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
