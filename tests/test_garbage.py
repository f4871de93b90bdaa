"""The cyclic-GC pause: off inside, restored after, also after an exception."""

from __future__ import annotations

import gc

import pytest

from reelset.garbage import no_cyclic_gc


@pytest.mark.parametrize("enabled", [True, False])
def test_no_cyclic_gc_restores_the_collector_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        with no_cyclic_gc():
            assert not gc.isenabled()
        assert gc.isenabled() is enabled
        with pytest.raises(KeyError), no_cyclic_gc():
            raise KeyError("boom")
        assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


def test_cycles_made_inside_are_collected_after() -> None:
    import weakref

    class Node:
        other: object = None

    with no_cyclic_gc():
        a, b = Node(), Node()
        a.other, b.other = b, a
        ref = weakref.ref(a)
        del a, b
        assert ref() is not None  # only the cyclic collector can free a cycle
    gc.collect()
    assert ref() is None
