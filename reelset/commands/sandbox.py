"""``reelset sandbox``: the offline TMDB sandbox server, from a shell.

The group is the sandbox's own command line (:mod:`reelset.sandbox.command`, also run as
``python -m reelset.sandbox``), mounted here under ``reelset``: the dependency points from
the command layer to the sandbox, never back.
"""

from __future__ import annotations

from reelset.sandbox.command import sandbox_group

__all__ = ["sandbox_group"]

if __name__ == "__main__":
    sandbox_group(prog_name="python -m reelset.commands.sandbox")
