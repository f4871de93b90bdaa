"""Pausing Python's cyclic garbage collector around bulk work.

Bulk loops (an IMDb import, a store read, a posters run) make millions of short-lived
containers and next to no reference cycles. The cyclic collector still goes over them
each time enough have been allocated, and over every long-lived object too when a full
collection comes round: seconds of CPU in a full-size import. Reference counting frees
all of it anyway; :func:`no_cyclic_gc` turns the collector off for the block and puts it
back as it was afterwards (also after an exception), when any cycles made meanwhile are
collected as usual.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def no_cyclic_gc() -> Iterator[None]:
    """No cyclic garbage collection inside the block; the collector is as before after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
