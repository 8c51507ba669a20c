"""Pause Python's cyclic garbage collector while building many acyclic objects.

Decoding an index or an object graph, or describing 100,000s of entries, makes small objects and
never a reference cycle: the collector's generational passes would only rescan everything alive
(all of TensorFlow, if imported), and they grow with it::

    with collector_paused():
        specs = [make_spec(entry) for entry in entries]
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block (re-enabled after it if it was enabled).

    Example::

        >>> with collector_paused():
        ...     gc.isenabled()
        False
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
