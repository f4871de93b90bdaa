"""``reelset db``: create, upgrade and describe the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from reelset.console import print_summary
from reelset.storage import Store

if TYPE_CHECKING:
    from reelset.cli import App

json_option = click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")


@click.group("db")
def db_group() -> None:
    """Create, upgrade and inspect the store."""


@db_group.command("init")
@json_option
@click.pass_obj
def db_init(app: App, as_json: bool) -> int:
    """Create the store (or bring it to the newest schema). Safe to run again."""
    with Store.open(app.settings, upgrade=True) as store:
        version = store.schema_version()
        print_summary(
            "store ready",
            {"backend": store.dialect, "url": store.masked_url, "schema_version": version},
            as_json=as_json,
        )
    return 0


@db_group.command("upgrade")
@json_option
@click.pass_obj
def db_upgrade(app: App, as_json: bool) -> int:
    """Upgrade the store's schema to the newest version. Safe to run again."""
    store = Store(app.settings.database_url, busy_timeout_s=app.settings.storage.busy_timeout_s)
    with store:
        before, after = store.upgrade()
        print_summary(
            "store upgraded" if before != after else "store already up to date",
            {"url": store.masked_url, "from_version": before, "to_version": after},
            as_json=as_json,
        )
    return 0


@db_group.command("info")
@json_option
@click.pass_obj
def db_info(app: App, as_json: bool) -> int:
    """Show the backend, URL (password masked), schema version and rows per table."""
    store = Store(app.settings.database_url, busy_timeout_s=app.settings.storage.busy_timeout_s)
    with store:
        info = store.info()
    print_summary("store", info, as_json=as_json)
    return 0
