"""README.md cannot drift from the command line (in the style of sqlite-utils' test_docs.py).

The command tree is walked from :data:`reelset.cli.cli` (groups and their subcommands,
recursively). Every command's full name (``reelset posters verify``) must appear in the
README section that documents it, and so must every option its ``--help`` shows (all of
an option's names: ``-v`` and ``--verbose``), except the help option itself.

The section documenting a command is the one whose heading names the command, or else its
nearest group (``## Posters: `reelset posters` `` documents ``reelset posters verify``); a
command without a section of its own (and ``reelset`` itself, for the global options) is
documented in the ``## Commands`` overview. A section runs to the next heading of the same
or a higher level, so it includes its subsections. Each command's ``--help`` must work too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import click
import pytest

from reelset.cli import cli, main

README = Path(__file__).resolve().parents[1] / "README.md"
OVERVIEW_HEADING = "Commands"
"""The README section that documents the global options and commands without a section."""


@dataclass(frozen=True)
class Command:
    """One command of the tree: its path from ``reelset`` and the options ``--help`` shows."""

    path: tuple[str, ...]
    options: tuple[str, ...]

    @property
    def name(self) -> str:
        """The full name as typed in a shell, e.g. ``reelset posters verify``."""
        return " ".join(self.path)


@dataclass(frozen=True)
class Section:
    """A README section: its heading and its text up to the next heading of its level."""

    level: int
    heading: str
    text: str


def _shown_options(command: click.Command, ctx: click.Context) -> tuple[str, ...]:
    """Every name of every option ``--help`` lists for ``command``, the help option aside."""
    names: list[str] = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option) or param.get_help_record(ctx) is None:
            continue  # arguments, and options hidden from --help
        names.extend(
            name
            for name in (*param.opts, *param.secondary_opts)
            if name not in ctx.help_option_names
        )
    return tuple(names)


@cache
def command_tree() -> tuple[Command, ...]:
    """``reelset`` and every command under it, depth first, as ``--help`` shows them."""
    found: list[Command] = []

    def walk(command: click.Command, ctx: click.Context, path: tuple[str, ...]) -> None:
        found.append(Command(path, _shown_options(command, ctx)))
        if not isinstance(command, click.Group):
            return
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
            walk(sub, sub_ctx, (*path, name))

    walk(cli, click.Context(cli, info_name="reelset", **cli.context_settings), ("reelset",))
    return tuple(found)


def mentions(text: str, phrase: str) -> bool:
    """Whether ``phrase`` occurs in ``text`` as a whole token: ``--from`` is not in
    ``--from-cinemagoer``, ``-v`` is not in ``-vv``, ``reelset db`` is in ``reelset db init``."""
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


@cache
def readme_sections() -> tuple[Section, ...]:
    """The README's sections of level 2 and deeper (headings inside code blocks aside)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    headings: list[tuple[int, int, str]] = []  # (line index, level, heading)
    in_code = False
    for index, line in enumerate(lines):
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"(#{2,6}) +(.+)", line)):
            headings.append((index, len(match.group(1)), match.group(2).strip()))
    sections = []
    for position, (start, level, heading) in enumerate(headings):
        end = next(
            (index for index, lvl, _ in headings[position + 1 :] if lvl <= level), len(lines)
        )
        sections.append(Section(level, heading, "\n".join(lines[start:end])))
    return tuple(sections)


def documenting_sections(command: Command) -> list[Section]:
    """The sections documenting ``command``: those whose heading names the command or its
    nearest group, else the overview."""
    sections = readme_sections()
    for length in range(len(command.path), 1, -1):
        prefix = " ".join(command.path[:length])
        named = [section for section in sections if mentions(section.heading, prefix)]
        if named:
            return named
    overview = [section for section in sections if section.heading == OVERVIEW_HEADING]
    assert overview, f"README.md has no '## {OVERVIEW_HEADING}' section"
    return overview


def _command_params() -> list[object]:
    return [pytest.param(command, id=command.name) for command in command_tree()]


def _option_params() -> list[object]:
    return [
        pytest.param(command, option, id=f"{command.name} {option}")
        for command in command_tree()
        for option in command.options
    ]


def test_the_walk_reaches_nested_commands_and_their_options() -> None:
    """Guards the walk itself, so the tests below cannot pass by finding nothing."""
    by_name = {command.name: command for command in command_tree()}
    assert {"reelset", "reelset db init", "reelset posters verify", "reelset sandbox serve"} <= set(
        by_name
    )
    assert {"--config", "-v", "--verbose", "-q", "--quiet", "--version"} <= set(
        by_name["reelset"].options
    )
    assert "--repair" in by_name["reelset posters verify"].options
    assert not {"-h", "--help"} & {option for c in command_tree() for option in c.options}


@pytest.mark.parametrize("command", _command_params())
def test_command_is_documented(command: Command) -> None:
    sections = documenting_sections(command)
    headings = ", ".join(f"'{section.heading}'" for section in sections)
    assert any(mentions(section.text, command.name) for section in sections), (
        f"README.md does not name `{command.name}` in {headings}"
    )


@pytest.mark.parametrize(("command", "option"), _option_params())
def test_option_is_documented(command: Command, option: str) -> None:
    sections = documenting_sections(command)
    headings = ", ".join(f"'{section.heading}'" for section in sections)
    assert any(mentions(section.text, option) for section in sections), (
        f"README.md does not document `{command.name} {option}` in {headings}"
    )


@pytest.mark.parametrize("command", _command_params())
def test_help_works(command: Command, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command.path[1:], "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: {command.name} ")
    for option in command.options:
        assert mentions(out, option), f"--help of {command.name} does not show {option}"


@pytest.mark.parametrize("command", _command_params())
def test_help_shows_an_example(command: Command, capsys: pytest.CaptureFixture[str]) -> None:
    """Every ``--help`` ends with an ``Example:``/``Examples:`` block of command lines that
    start with the command itself."""
    assert main([*command.path[1:], "--help"]) == 0
    lines = capsys.readouterr().out.splitlines()
    heading = next(
        (i for i, line in enumerate(lines) if line.strip() in ("Example:", "Examples:")), None
    )
    assert heading is not None, f"--help of {command.name} has no Example(s): block"
    examples = []
    for line in lines[heading + 1 :]:
        if not line.strip():
            break
        examples.append(line.strip())
    assert examples, f"the Example(s): block of {command.name} is empty"
    for example in examples:
        assert mentions(example, command.name) and example.startswith(command.name), (
            f"example {example!r} in --help of {command.name} does not run {command.name}"
        )
