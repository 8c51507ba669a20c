"""Byte progress for one long operation: a tqdm bar on stderr, on a terminal only.

The operation (converting one checkpoint, restoring one, verifying one) opens a bar with
:func:`byte_bar`; the code below it that moves tensor bytes calls :func:`advance` with the bytes it
moved. Without an open bar (``progress=False``, ``--json``, stderr piped, another thread)
:func:`advance` does nothing, and tqdm is never imported. A bar appears only once the operation
has run for :data:`DELAY` seconds, and clears itself when done::

    with byte_bar("convert model.ckpt-5", wanted(None), total=nbytes):
        for chunk in chunks:
            out.write(chunk)
            advance(len(chunk))
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["DELAY", "ByteBar", "advance", "byte_bar", "set_total", "wanted"]

DELAY = 0.5  # seconds before a bar is drawn: quick operations never show one


class ByteBar:
    """A tqdm byte bar on stderr (``unit="B"``, scaled, cleared when closed)."""

    def __init__(self, desc: str, total: int | None = None) -> None:
        from tqdm import tqdm

        self._bar: Any = tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
            file=sys.stderr, leave=False, delay=DELAY, dynamic_ncols=True,
        )  # fmt: skip

    def update(self, n: int) -> None:
        """Add ``n`` bytes."""
        self._bar.update(n)

    def bytes(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` bytes (for callbacks that report running totals)."""
        if self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def set_total(self, total: int) -> None:
        """Set the bytes the operation will move, once it knows them."""
        self._bar.total = total
        self._bar.refresh()

    def close(self) -> None:
        """Clear the bar from the terminal."""
        self._bar.close()


_CURRENT: ContextVar[ByteBar | None] = ContextVar("ckptbridge_progress", default=None)


def wanted(requested: bool | None) -> bool:
    """Whether to show progress: ``requested`` when given, else whether stderr is a terminal.

    >>> wanted(False)
    False
    """
    if requested is not None:
        return requested
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


@contextmanager
def byte_bar(desc: str, show: bool, total: int | None = None) -> Iterator[ByteBar | None]:
    """Open the bar that :func:`advance` feeds in this thread while the block runs (if ``show``).

    Example: ``with byte_bar("restore model.ckpt-5", wanted(progress)): ...``.
    """
    if not show or _CURRENT.get() is not None:  # an outer operation already shows its bar
        yield None
        return
    bar = ByteBar(desc, total)
    token = _CURRENT.set(bar)
    try:
        yield bar
    finally:
        _CURRENT.reset(token)
        bar.close()


def advance(n: int) -> None:
    """Add ``n`` bytes to the open bar, if any."""
    bar = _CURRENT.get()
    if bar is not None and n:
        bar.update(int(n))


def set_total(total: int) -> None:
    """Tell the open bar, if any, how many bytes the operation will move."""
    bar = _CURRENT.get()
    if bar is not None:
        bar.set_total(int(total))
