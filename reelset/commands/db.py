"""``reelset db``: create, upgrade and describe the store."""

from __future__ import annotations

import click

from reelset.commands.app import App, flag, json_option
from reelset.console import print_summary


@click.group("db")
def db_group() -> None:
    """Create, upgrade and inspect the store.

    \b
    Examples:
      reelset db init
      reelset db info --json
    """


def _upgrade(app: App, as_json: bool, *, init: bool) -> int:
    """Bring the store to the newest schema and print what happened."""
    with app.open_store(upgrade=False, check=False) as store:
        before, after = store.upgrade()
        backend, url = store.dialect, store.masked_url
    data: dict[str, str | None]
    if init:
        title, data = "store ready", {"backend": backend, "url": url, "schema_version": after}
    else:
        title = "store upgraded" if before != after else "store already up to date"
        data = {"url": url, "from_version": before, "to_version": after}
    print_summary(title, data, as_json=as_json)
    return 0


@db_group.command("init")
@json_option
@click.pass_obj
def db_init(app: App, as_json: bool) -> int:
    """Create the store (or bring it to the newest schema). Safe to run again.

    \b
    Example:
      reelset db init --json
    """
    return _upgrade(app, as_json, init=True)


@db_group.command("upgrade")
@json_option
@click.pass_obj
def db_upgrade(app: App, as_json: bool) -> int:
    """Upgrade the store's schema to the newest version. Safe to run again.

    \b
    Example:
      reelset db upgrade --config prod.toml
    """
    return _upgrade(app, as_json, init=False)


@db_group.command("info")
@flag(
    "--schema",
    "Also describe every table, view and column analysts query (the analysts' contract).",
)
@json_option
@click.pass_obj
def db_info(app: App, schema: bool, as_json: bool) -> int:
    """Show the backend, URL (password masked), schema version and rows per table.

    \b
    Example:
      reelset db info --json
      reelset db info --schema
    """
    from reelset.storage.schema import describe

    with app.open_store(upgrade=False, check=False) as store:
        info = store.info()
    if as_json:
        print_summary("store", {**info, "schema": describe()} if schema else info, as_json=True)
        return 0
    print_summary("store", info)
    for name, entry in describe().items() if schema else ():
        columns = {
            column: text + (" (internal)" if column in entry["internal"] else "")
            for column, text in entry["columns"].items()
        }
        print_summary(f"{name} ({entry['kind']}): {entry['description']}", columns)
    return 0
