"""The command line: parses options, calls one stage, prints. No business logic here.

Exit codes: 0 success; 1 done with failures recorded (or an internal error); 2 usage or
configuration error; 3 the store is locked by another run; 4 TMDB refused the
credentials; 130 interrupted.

Start-up is kept short: the command tree is lazy (:class:`LazyGroup` imports a command's
module only when that command runs, completes or shows its own help), and this module
imports nothing heavier than Click, so ``reelset --help`` and ``reelset --version`` load
neither the store (SQLAlchemy), nor pandas, nor the config models.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reelset import __version__
from reelset.commands.app import App
from reelset.errors import ReelsetError, error_line
from reelset.redaction import redact

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 1000
"""Longest error message printed (our messages are one line and far shorter)."""


@dataclass(frozen=True)
class LazyCommand:
    """Where a top-level command lives (``"module:attribute"``) and its one-line help.

    ``short_help`` is what ``reelset --help`` lists without importing the module; it must
    be the first sentence of the command's docstring (``tests/test_startup.py`` checks).
    """

    target: str
    short_help: str


COMMANDS: dict[str, LazyCommand] = {
    "browse": LazyCommand(
        "reelset.commands.explore:browse_command",
        "Browse and query the store in Datasette, with reelset's descriptions and queries.",
    ),
    "build": LazyCommand(
        "reelset.commands.build:build_command",
        "Build the next version of a dataset from the store (never the network).",
    ),
    "datasets": LazyCommand(
        "reelset.commands.build:datasets_group", "List, show and compare built datasets."
    ),
    "db": LazyCommand("reelset.commands.db:db_group", "Create, upgrade and inspect the store."),
    "failures": LazyCommand(
        "reelset.commands.ledger:failures_command",
        "List the failure ledger (fetch_failures), newest first.",
    ),
    "imdb": LazyCommand(
        "reelset.commands.imdb:imdb_group",
        "IMDb's official datasets (genres, ratings, votes) into the store.",
    ),
    "posters": LazyCommand(
        "reelset.commands.posters:posters_group",
        "Download every poster still missing or failed (or whose poster_path changed).",
    ),
    "report": LazyCommand(
        "reelset.commands.explore:report_command",
        "Write one self-contained HTML page about the store: tables and plots.",
    ),
    "runs": LazyCommand(
        "reelset.commands.ledger:runs_command",
        "List the run history (scrape_runs), newest first: every scrape, posters, imdb "
        "import and build run with its status, duration and counts.",
    ),
    "sandbox": LazyCommand(
        "reelset.commands.sandbox:sandbox_group",
        "An offline TMDB API v3 look-alike on a local port, for demos and tests.",
    ),
    "scrape": LazyCommand(
        "reelset.commands.scrape:scrape_command",
        "Scrape TMDB into the store: one request per movie, rate limited, resumable.",
    ),
}
"""Every top-level command, by name. Commands under a group are the group's business."""

GLOBAL_VALUE_OPTIONS = ("--config", "--log-format", "--log-file")
GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet")
"""The global options that :meth:`LazyGroup.parse_args` moves in front of the command."""


def _option_names(command: click.Command, ctx: click.Context) -> dict[str, bool]:
    """Every option name of ``command`` (help aside), mapped to whether it takes a value."""
    names: dict[str, bool] = {}
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            takes_value = not param.is_flag and not param.count
            names.update(dict.fromkeys((*param.opts, *param.secondary_opts), takes_value))
    return names


def _exists(entry: LazyCommand) -> bool:
    """Whether the command's module is there (found, not imported)."""
    return importlib.util.find_spec(entry.target.partition(":")[0]) is not None


def _is_global_flag(token: str, own: dict[str, bool]) -> bool:
    """``-v``, ``-vv``, ``-q``, ``-vq``, ``--verbose``, ``--quiet``, unless the command has
    a short option of the same letter (``own``: its options)."""
    if token in GLOBAL_FLAGS:
        return token not in own
    letters = set(token[1:])
    return (
        token.startswith("-")
        and not token.startswith("--")
        and bool(letters)
        and letters <= {"v", "q"}
        and not any(f"-{letter}" in own for letter in letters)
    )


class LazyGroup(click.Group):
    """The ``reelset`` group: commands imported on first use, global options anywhere.

    ``reelset --help`` lists :data:`COMMANDS` without importing any command module.
    Global options given after the command (``reelset db info -v``) are moved in front of
    it before Click parses, unless the command has an option of the same name itself;
    values of the command's own options and everything after ``--`` are left alone.
    """

    def __init__(self, *args: Any, lazy_commands: dict[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands
        self._loaded: dict[str, click.Command] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The command names, sorted, without importing their modules (a command whose
        module is not there is left out)."""
        present = {name for name, entry in self.lazy_commands.items() if _exists(entry)}
        return sorted(present | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command called ``cmd_name``, its module imported now if need be."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = self.lazy_commands.get(cmd_name)
        if entry is None or not _exists(entry):
            return None
        if cmd_name not in self._loaded:
            module_name, _, attribute = entry.target.partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{entry.target} is not a click command")
            self._loaded[cmd_name] = command
        return self._loaded[cmd_name]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The ``Commands:`` section of ``reelset --help``, from the static short helps."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self._short_help(ctx, name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _short_help(self, ctx: click.Context, name: str, limit: int) -> str:
        entry = self.lazy_commands.get(name)
        if entry is None:  # added with add_command: already imported
            command = self.get_command(ctx, name)
            return command.get_short_help_str(limit) if command is not None else ""
        # Click's own shortening, applied to the static text.
        return click.Command(name, help=entry.short_help).get_short_help_str(limit)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        """Completions of command names (from the table) and of the group's options."""
        from click.shell_completion import CompletionItem

        results = [
            CompletionItem(name, help=self._short_help(ctx, name, 45))
            for name in self.list_commands(ctx)
            if name.startswith(incomplete)
        ]
        results.extend(click.Command.shell_complete(self, ctx, incomplete))
        return results

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse ``args`` after moving global options given after the command to the front."""
        if not ctx.resilient_parsing:  # shell completion: leave the words as typed
            args = self._hoist_global_options(ctx, args)
        return super().parse_args(ctx, args)

    def _hoist_global_options(self, ctx: click.Context, args: Sequence[str]) -> list[str]:
        hoisted: list[str] = []
        kept: list[str] = []
        command: click.Command = self
        own: dict[str, bool] = {}  # the current subcommand's options; none for reelset itself
        index = 0
        while index < len(args):
            token = args[index]
            index += 1
            if token == "--":
                kept.extend(args[index - 1 :])
                break
            if not token.startswith("-") or token == "-":
                sub = command.get_command(ctx, token) if isinstance(command, click.Group) else None
                if sub is not None:
                    command, own = sub, _option_names(sub, ctx)
                kept.append(token)
                continue
            name = token.partition("=")[0] if token.startswith("--") else token
            if name in own:
                kept.append(token)
                if own[name] and "=" not in token and index < len(args):
                    kept.append(args[index])  # the option's value, whatever it looks like
                    index += 1
                continue
            if name in GLOBAL_VALUE_OPTIONS:
                hoisted.append(token)
                if "=" not in token:
                    if index >= len(args):
                        raise click.UsageError(f"Option '{name}' requires an argument.", ctx=ctx)
                    hoisted.append(args[index])
                    index += 1
                continue
            if command is not self and _is_global_flag(token, own):
                hoisted.append(token)
                continue
            kept.append(token)
        return hoisted + kept


def _start(
    ctx: click.Context,
    config_path: Path | None,
    verbose: int,
    quiet: bool,
    log_format: str,
    log_file: Path | None,
) -> None:
    from reelset.console import setup_logging

    setup_logging(verbose, quiet=quiet, log_format=log_format, log_file=log_file)
    app = ctx.ensure_object(App)
    app.config_path, app.verbosity, app.quiet = config_path, verbose, quiet


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="reelset")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file (default: $REELSET_CONFIG, else ./config.toml, else built-in defaults).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for HTTP details).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option(
    "--log-format",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="Log lines as text, or as one JSON object per line (ts, level, logger, message).",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append the log to this file instead of writing it to stderr.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path | None,
    verbose: int,
    quiet: bool,
    log_format: str,
    log_file: Path | None,
) -> None:
    """reelset: TMDB and IMDb into clean, versioned training data for genre classification.

    The global options below also work after the command: reelset db info -v.

    \b
    Examples:
      reelset db init
      reelset scrape --strategy changes -q --log-format json --log-file reelset.log
    """
    _start(ctx, config_path, verbose, quiet, log_format, log_file)


def _click_message(exc: click.ClickException) -> str:
    """Click's error as one line: the message, then where to find help for a usage error."""
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    if isinstance(exc, click.UsageError) and context is not None:
        message = f"{message.rstrip('.')} (see '{context.command_path} --help')"
    return redact(message)[:MESSAGE_LIMIT]


def _asked_for_json(app: App, argv: Sequence[str]) -> bool:
    """Whether ``--json`` was given: parsed (see ``json_option``), or on the command line
    when parsing failed before it was read."""
    if app.as_json:
        return True
    words = list(argv)
    return "--json" in (words[: words.index("--")] if "--" in words else words)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; turn every user-facing error into one line and an exit code.

    With ``--json``, a failed command also prints ``{"error": ..., "exit_code": N}`` on
    stdout, unless it printed its (partial) summary as JSON already.
    """
    from reelset import console

    args = list(sys.argv[1:] if argv is None else argv)
    app = App()
    printed_before = console.json_documents_printed()
    message, code = _run(args, app)
    if message is None:
        return code
    click.echo(message, err=True)
    if _asked_for_json(app, args) and console.json_documents_printed() == printed_before:
        error = message.removeprefix("reelset: ").removeprefix("error: ")
        console.print_json({"error": error, "exit_code": code})
    return code


def _run(args: list[str], app: App) -> tuple[str | None, int]:
    """Run the command: ``(None, exit code)``, or ``(the one error line, exit code)``."""
    try:
        result = cli.main(args=args, prog_name="reelset", standalone_mode=False, obj=app)
    except click.exceptions.Abort:
        return "reelset: interrupted", 130
    except click.exceptions.Exit as exc:
        return None, int(exc.exit_code)
    except click.ClickException as exc:
        code = 2 if isinstance(exc, click.UsageError) else exc.exit_code
        return f"reelset: error: {_click_message(exc)}", code
    except ReelsetError as exc:
        return f"reelset: error: {error_line(exc, limit=MESSAGE_LIMIT)}", exc.exit_code
    except KeyboardInterrupt:
        return "reelset: interrupted", 130
    except Exception as exc:  # a bug: say so in one line; -v shows the traceback
        if logging.getLogger("reelset").isEnabledFor(logging.DEBUG):
            log.exception("internal error")
        return (
            f"reelset: internal error: {error_line(exc, limit=MESSAGE_LIMIT, with_type=True)} "
            "(run with -v for the traceback)",
            1,
        )
    return None, int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
