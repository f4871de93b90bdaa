"""``reelset build`` and ``reelset datasets list|show|diff``.

Exit codes: 0 success (also ``unchanged``); 1 ``datasets diff`` found split moves (a
broken stability guarantee); 2 bad name, version, configuration or store; 3 another
build of the same dataset is running; 130 interrupted (no version is left behind).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from reelset.commands.app import App, json_option
from reelset.console import print_summary

if TYPE_CHECKING:
    from reelset.config import Settings
    from reelset.dataset.build import BuildResult


@click.command("build")
@click.option("--name", help="Dataset name (default: [build] name).")
@click.option("--dry-run", is_flag=True, help="Do every step and report; write nothing.")
@json_option
@click.pass_obj
def build_command(app: App, name: str | None, dry_run: bool, as_json: bool) -> int:
    """Build the next version of a dataset from the store (never the network).

    Dedupe, filter, label and split the store's movies as [build] says, then write
    <output_dir>/<name>/vNNNN/ and move LATEST to it. When nothing changed since the
    latest version (same fingerprint), no version is made and the status is `unchanged`.

    \b
    Examples:
      reelset build --dry-run
      reelset build --name genres --json
    """
    from reelset.dataset.build import build_dataset

    result = build_dataset(app.settings, name=name, dry_run=dry_run)
    _print_build(result, as_json)
    return 0


def _print_build(result: BuildResult, as_json: bool) -> None:
    summary = result.summary()
    if not as_json:
        summary["removed"] = {k: v for k, v in result.removed.items() if v} or "none"
    title = {
        "built": f"dataset {result.name} {result.version} built",
        "unchanged": f"dataset {result.name} unchanged (still {result.version})",
        "dry-run": f"dataset {result.name}: dry run (would be {result.version}; nothing written)",
    }[result.status]
    print_summary(title, summary, as_json=as_json)


@click.group("datasets")
def datasets_group() -> None:
    """List, show and compare built datasets.

    \b
    Examples:
      reelset datasets list
      reelset datasets diff genres@v1 genres@v2
    """


@datasets_group.command("list")
@json_option
@click.pass_obj
def datasets_list(app: App, as_json: bool) -> int:
    """List the datasets in [build] output_dir with their versions.

    \b
    Example:
      reelset datasets list --json
    """
    from reelset.dataset.inspect import list_datasets

    found = list_datasets(app.settings.output_dir)
    if as_json:
        print_summary("datasets", {"datasets": found}, as_json=True)
        return 0
    summary: dict[str, Any] = {
        d["name"]: {
            "latest": d["latest"],
            "versions": d["versions"],
            "rows": d["rows"],
            "labels": d["labels"],
            "created_at": d["created_at"],
        }
        for d in found
    }
    print_summary(
        f"datasets in {app.settings.output_dir}" if found else "no datasets built yet",
        summary,
    )
    return 0


@datasets_group.command("show")
@click.argument("ref", metavar="NAME[@vN]")
@json_option
@click.pass_obj
def datasets_show(app: App, ref: str, as_json: bool) -> int:
    """Show a dataset version: rows, labels with counts per split, removals.

    \b
    Examples:
      reelset datasets show genres
      reelset datasets show genres@v2 --json
    """
    from reelset.dataset.inspect import show

    _print_show(show(app.settings.output_dir, ref), as_json)
    return 0


def _print_show(info: dict[str, Any], as_json: bool) -> None:
    if not as_json:
        info["labels"] = {
            name: f"{c['all']:,} (train {c['train']:,}, validation {c['validation']:,}, "
            f"test {c['test']:,})"
            for name, c in info["labels"].items()
        }
        info["removed"] = info["removed"] or "none"
        info["dropped_genres"] = info["dropped_genres"] or "none"
        baseline = info["baseline"]
        if isinstance(baseline, dict):
            info["baseline"] = {
                "model": baseline["model"],
                "movies": f"train {baseline['train_samples']:,}, "
                f"test {baseline['test_samples']:,}",
                **{f"test {k}": f"{v:.4f}" for k, v in baseline["test"].items()},
            }
    print_summary(f"dataset {info['name']} {info['version']}", info, as_json=as_json)


@datasets_group.command("diff")
@click.argument("ref_a", metavar="NAME@vA")
@click.argument("ref_b", metavar="NAME@vB")
@json_option
@click.pass_obj
def datasets_diff(app: App, ref_a: str, ref_b: str, as_json: bool) -> int:
    """Movies added, removed and relabelled between two versions; split moves (exit 1).

    \b
    Example:
      reelset datasets diff genres@v1 genres@v2
    """
    from reelset.dataset.inspect import diff

    result = diff(app.settings.output_dir, ref_a, ref_b)
    _print_diff(result, as_json)
    if result["split_moves"]:
        click.echo(
            f"reelset: {result['split_moves']} movie(s) changed split between the versions",
            err=True,
        )
        return 1
    return 0


def _print_diff(result: dict[str, Any], as_json: bool) -> None:
    if not as_json:
        result["baseline"] = {
            metric: _score_change(m["from"], m["to"], m["change"])
            for metric, m in result["baseline"].items()
        } or "no baseline scores in either version"
    print_summary(f"{result['from']} -> {result['to']}", result, as_json=as_json)


def _score_change(before: float | None, after: float | None, change: float | None) -> str:
    """``0.4810 -> 0.4920 (+0.0110)``; ``-`` for a side without the score."""
    text = f"{'-' if before is None else f'{before:.4f}'} -> "
    text += "-" if after is None else f"{after:.4f}"
    return text if change is None else f"{text} ({change:+.4f})"


def demo_build(settings: Settings | None = None) -> int:
    """``make demo``'s last step: build the dataset from the store, print it; exit code 0.

    ``settings`` defaults to the configured ones. Raises :class:`ReelsetError` like the
    command does (e.g. an empty store: "nothing to build").
    """
    from reelset.config import load_settings
    from reelset.dataset.build import build_dataset
    from reelset.dataset.inspect import show

    settings = settings or load_settings()
    result = build_dataset(settings)
    _print_build(result, as_json=False)
    _print_show(show(settings.output_dir, f"{result.name}@{result.version}"), as_json=False)
    return 0
