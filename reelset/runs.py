"""The run lifecycle: run locks, the ``scrape_runs`` row, and how a run ends."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from reelset.errors import Interrupted, error_line
from reelset.storage.records import RunHandle

if TYPE_CHECKING:
    from reelset.storage import Store


@contextmanager
def recorded_run(
    store: Store, command_name: str, params: dict[str, Any], *, locks: Sequence[str] = ()
) -> Iterator[RunHandle]:
    """Hold ``locks`` and record a run in ``scrape_runs`` for the body's duration.

    The run ends ``handle.status`` (default ``succeeded``) with ``handle.counts``; an
    exception ends it ``failed``, Ctrl-C or :class:`Interrupted` ``interrupted`` (Ctrl-C is
    raised again as :class:`Interrupted`, exit 130). Locks are released in any case.
    """
    store.runs.close_abandoned(command_name)
    held: list[str] = []
    try:
        for name in locks:
            store.locks.acquire(name)
            held.append(name)
        handle = RunHandle(store.runs.start(command_name, params))
        for name in held:
            store.locks.set_run(name, handle.run_id)
        try:
            yield handle
        except (KeyboardInterrupt, Interrupted) as exc:
            store.runs.finish(handle.run_id, "interrupted", counts=handle.counts)
            if isinstance(exc, KeyboardInterrupt):
                raise Interrupted("interrupted; the work written so far is kept") from None
            raise
        except BaseException as exc:
            error = error_line(exc, limit=2000)
            store.runs.finish(handle.run_id, "failed", counts=handle.counts, error=error)
            raise
        store.runs.finish(handle.run_id, handle.status, counts=handle.counts)
    finally:
        for name in reversed(held):
            store.locks.release(name)
