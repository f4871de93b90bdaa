"""What every command shares: the :class:`App` object, ``--json``, and opening the store.

Commands import from here, never from :mod:`reelset.cli` (which imports the commands), so
there is no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reelset.redaction import register_secrets

if TYPE_CHECKING:
    from reelset.config import Settings
    from reelset.storage import Store

F = TypeVar("F", bound=Callable[..., Any])

def flag(name: str, help: str) -> Callable[[F], F]:
    """An on/off option (``--refresh``): one line per flag in the commands."""
    return click.option(name, is_flag=True, help=help)


def _note_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    app = ctx.find_object(App)
    if value and app is not None:
        app.as_json = True  # main() prints a failure as JSON too
    return value


json_option = click.option(
    "--json", "as_json", is_flag=True, callback=_note_json, help="Print the summary as JSON."
)
"""``--json``: print the command's summary (or its error) as one JSON object on stdout."""


@dataclass
class App:
    """What every command gets through ``click.pass_obj``: config and store, loaded lazily."""

    config_path: Path | None = None
    verbosity: int = 0
    quiet: bool = False
    as_json: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        """The validated settings (raises ConfigError -> exit 2)."""
        if self._settings is None:
            from reelset.config import load_settings

            self._settings = load_settings(self.config_path)
            register_secrets(self._settings.credentials().secrets())
        return self._settings

    def open_store(self, *, upgrade: bool = True, check: bool = True) -> Store:
        """Open the configured store (see :meth:`Store.open`): by default an older schema
        is upgraded first."""
        from reelset.storage import Store

        return Store.open(self.settings, upgrade=upgrade, check=check)
