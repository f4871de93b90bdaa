"""``python -m reelset.sandbox serve ...``: the same commands as ``reelset sandbox``."""

from reelset.sandbox.command import sandbox_group

if __name__ == "__main__":
    sandbox_group(prog_name="python -m reelset.sandbox")
