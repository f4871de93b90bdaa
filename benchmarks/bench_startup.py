"""Benchmark: how long the ``reelset`` command takes to start.

Measured side by side in one run, each command started as a new process ``--runs`` times
(interleaved, so that the shared machine's noise falls on all of them alike):
  * ``reelset --help`` and ``reelset --version`` (the installed console script),
  * a peer CLI: ``sqlite-utils --version``, or ``datasette --version`` when sqlite-utils
    is not installed (said so in the output),
  * the floor: ``python -c pass`` (the interpreter alone).

Prints the median and range of each and the ratios to the peer and to the floor. Target:
``reelset --help`` and ``--version`` start in at most 0.3 s (median).
Usage: ``python benchmarks/bench_startup.py [--runs N]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3


def _script(name: str) -> str | None:
    """The console script ``name`` next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def commands() -> dict[str, list[str]]:
    """The command lines to time, by label."""
    reelset = _script("reelset")
    if reelset is None:
        sys.exit("reelset is not installed in this environment (pip install -e .)")
    timed = {
        "reelset --help": [reelset, "--help"],
        "reelset --version": [reelset, "--version"],
    }
    peer = _script("sqlite-utils")
    if peer is not None:
        timed["sqlite-utils --version (peer)"] = [peer, "--version"]
    else:
        print("sqlite-utils is not installed: timing datasette --version as the peer instead")
        datasette = _script("datasette")
        if datasette is not None:
            timed["datasette --version (peer)"] = [datasette, "--version"]
        else:
            print("datasette is not installed either: no peer")
    timed["python -c pass (floor)"] = [sys.executable, "-c", "pass"]
    return timed


def time_once(argv: list[str]) -> float:
    """Seconds from start to exit of one process (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="starts per command")
    args = parser.parse_args()
    timed = commands()
    for argv in timed.values():  # warm the file cache and .pyc files; not counted
        time_once(argv)
    samples: dict[str, list[float]] = {label: [] for label in timed}
    for _ in range(args.runs):
        for label, argv in timed.items():
            samples[label].append(time_once(argv))
    medians = {label: statistics.median(values) for label, values in samples.items()}
    peer = next((label for label in timed if label.endswith("(peer)")), None)
    floor = "python -c pass (floor)"
    print(f"{args.runs} starts each, interleaved; seconds: median (range)")
    width = max(len(label) for label in timed)
    for label, values in samples.items():
        ratios = [f"{medians[label] / medians[floor]:5.2f}x floor"]
        if peer is not None:
            ratios.insert(0, f"{medians[label] / medians[peer]:5.2f}x peer")
        print(
            f"  {label:<{width}}  {medians[label]:.3f} ({min(values):.3f}-{max(values):.3f})"
            f"  {', '.join(ratios)}"
        )
    slowest = max(medians["reelset --help"], medians["reelset --version"])
    verdict = "met" if slowest <= TARGET_S else "NOT met"
    print(f"target: reelset --help and --version <= {TARGET_S} s (median): {verdict}")


if __name__ == "__main__":
    main()
