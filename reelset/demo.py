"""``make demo``: the main job end to end on the embedded defaults."""

from __future__ import annotations

import sys

from reelset.cli import main as cli_main


def main() -> int:
    """Initialise the store and describe it (grows as the stages land)."""
    for argv in (["db", "init"], ["db", "info"]):
        code = cli_main(argv)
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
