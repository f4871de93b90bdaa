"""``reelset sandbox``: the offline TMDB sandbox server, from a shell.

The group is the sandbox's own command line (:mod:`reelset.sandbox.command`, also run as
``python -m reelset.sandbox``), mounted here under ``reelset``: the dependency points from
the command layer to the sandbox, never back. The mounted copies add examples written for
``reelset sandbox``; the sandbox's own commands stay as they are.
"""

from __future__ import annotations

import copy
import inspect
from typing import TypeVar

import click

from reelset.sandbox.command import sandbox_group as _sandbox_group

__all__ = ["sandbox_group"]

C = TypeVar("C", bound=click.Command)

EXAMPLES = {
    "sandbox": ("reelset sandbox serve --port 8765",),
    "serve": (
        "reelset sandbox serve --port 8765",
        "reelset sandbox serve --synthetic 5000 --rate none --faults 'rate=0.1,kinds=500'",
    ),
}


def _with_examples(command: C, examples: tuple[str, ...]) -> C:
    """A copy of ``command`` whose help ends with ``examples`` (a ``\\b`` block)."""
    mounted = copy.copy(command)
    head = "Example:" if len(examples) == 1 else "Examples:"
    lines = "\n".join(f"  {example}" for example in examples)
    mounted.help = f"{inspect.cleandoc(command.help or '')}\n\n\b\n{head}\n{lines}"
    return mounted


sandbox_group = _with_examples(_sandbox_group, EXAMPLES["sandbox"])
sandbox_group.commands = {
    name: _with_examples(command, EXAMPLES[name]) if name in EXAMPLES else command
    for name, command in _sandbox_group.commands.items()
}

if __name__ == "__main__":
    sandbox_group(prog_name="python -m reelset.commands.sandbox")
