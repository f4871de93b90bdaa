"""``python -m reelset``: the same command line as the ``reelset`` script."""

import sys

from reelset.cli import main

if __name__ == "__main__":
    sys.exit(main())
