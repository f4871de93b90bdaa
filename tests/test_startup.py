"""A fast start: ``reelset --help`` and ``--version`` import no heavy library, the lazy
command table agrees with the commands, and shell completion works over it.

No timing thresholds (the machine is shared): what keeps the start fast is what is not
imported, and that is what these tests check. ``benchmarks/bench_startup.py`` measures it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable

import click
import pytest

from reelset.cli import COMMANDS, LazyGroup, cli, main
from reelset.commands import ledger, scrape
from reelset.storage import bookkeeping
from reelset.tmdb import discovery
from tests.cli_env import Env

MakeEnv = Callable[..., Env]

HEAVY = (
    "sqlalchemy",
    "alembic",
    "pandas",
    "pyarrow",
    "numpy",
    "sklearn",
    "matplotlib",
    "PIL",
    "requests",
    "pydantic",
    "rich",
)
"""Libraries that ``reelset --help`` and ``--version`` must not import."""


def _run_in_fresh_interpreter(args: list[str]) -> dict[str, object]:
    """Run ``main(args)`` in a new interpreter: its exit code, stdout and loaded modules."""
    code = (
        "import contextlib, io, json, sys\n"
        "from reelset.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = main({args!r})\n"
        "print(json.dumps({'rc': rc, 'out': out.getvalue(), 'modules': sorted(sys.modules)}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["-h"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    result = _run_in_fresh_interpreter(args)
    assert result["rc"] == 0
    assert "reelset" in str(result["out"])
    modules = {str(name) for name in result["modules"]}  # type: ignore[attr-defined]
    loaded = sorted(name for name in HEAVY if name in modules)
    assert not loaded, f"reelset {' '.join(args)} imported {', '.join(loaded)}"
    commands = {m for m in modules if m.startswith("reelset.commands.")}
    assert commands == {"reelset.commands.app"}  # the App class; no command module
    assert "reelset.config" not in modules


SCRAPE_NEEDS_NOT = ("numpy", "pandas", "pyarrow", "sklearn", "matplotlib", "PIL", "rich")
"""Libraries that a scrape of a small export without posters must not import (numpy
sorts only exports of :data:`reelset.tmdb.discovery.NUMPY_FROM_IDS` ids or more)."""


def test_a_scrape_of_a_small_export_imports_nothing_it_does_not_use(make_env: MakeEnv) -> None:
    env = make_env()
    result = _run_in_fresh_interpreter(
        ["--config", str(env.config), "-q", "scrape", "--no-posters", "--json"]
    )
    assert result["rc"] == 0
    assert json.loads(str(result["out"]))["status"] == "succeeded"
    modules = {str(name) for name in result["modules"]}  # type: ignore[attr-defined]
    loaded = sorted(name for name in SCRAPE_NEEDS_NOT if name in modules)
    assert not loaded, f"reelset scrape imported {', '.join(loaded)}"


def test_a_command_imports_only_its_own_module() -> None:
    result = _run_in_fresh_interpreter(["db", "--help"])
    assert result["rc"] == 0
    assert "Usage: reelset db" in str(result["out"])
    modules = {str(name) for name in result["modules"]}  # type: ignore[attr-defined]
    assert "reelset.commands.db" in modules
    assert not {"reelset.commands.scrape", "reelset.commands.posters", "sqlalchemy"} & modules


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_command_table_matches_the_command(name: str) -> None:
    """Each entry names a real command, and its static help is the command's first sentence."""
    entry = COMMANDS[name]
    module = entry.target.partition(":")[0]
    assert importlib.util.find_spec(module) is not None, f"{entry.target}: no such module"
    ctx = click.Context(cli, info_name="reelset")
    command = cli.get_command(ctx, name)
    assert isinstance(command, click.Command)
    assert command.name == name
    static = click.Command(name, help=entry.short_help).get_short_help_str(1000)
    assert command.get_short_help_str(1000) == static


def test_help_lists_what_the_commands_say() -> None:
    """``reelset --help`` from the table equals Click's listing from the loaded commands."""
    ctx = click.Context(cli, info_name="reelset", **cli.context_settings)
    lazy, eager = ctx.make_formatter(), ctx.make_formatter()
    cli.format_commands(ctx, lazy)
    click.Group.format_commands(cli, ctx, eager)
    assert lazy.getvalue() == eager.getvalue()
    assert "scrape" in lazy.getvalue()


def test_a_missing_command_module_is_not_listed() -> None:
    group = LazyGroup(
        "tool",
        lazy_commands={
            "gone": type(COMMANDS["db"])("reelset.commands.no_such_module:x", "Gone."),
            "db": COMMANDS["db"],
        },
    )
    ctx = click.Context(group, info_name="tool")
    assert group.list_commands(ctx) == ["db"]
    assert group.get_command(ctx, "gone") is None


def test_repeated_choices_equal_the_library_ones() -> None:
    """The command modules repeat two constants so that their --help stays light."""
    assert scrape.STRATEGIES == discovery.STRATEGIES
    assert ledger.FAILURE_STATES == bookkeeping.FAILURE_STATES


def _complete(words: str, shell: str = "bash") -> str:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {
        **os.environ,
        "_REELSET_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(cword),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "reelset"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_shell_completion_of_commands_and_subcommands() -> None:
    top = _complete("reelset d")
    assert "plain,db" in top.splitlines() and "plain,datasets" in top.splitlines()
    assert "plain,scrape" not in top.splitlines()
    nested = _complete("reelset db i").splitlines()
    assert {"plain,info", "plain,init"} <= set(nested)
    options = _complete("reelset --log").splitlines()
    assert {"plain,--log-format", "plain,--log-file"} <= set(options)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts(shell: str) -> None:
    env = {**os.environ, "_REELSET_COMPLETE": f"{shell}_source"}
    proc = subprocess.run(
        [sys.executable, "-m", "reelset"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "_REELSET_COMPLETE" in proc.stdout


def test_python_dash_m_reelset_is_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reelset", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0
    assert main(["--version"]) == 0
    assert proc.stdout == capsys.readouterr().out
