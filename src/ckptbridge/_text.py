"""Small text helpers shared by every report: byte counts, shapes and tables; lazy patterns."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence

__all__ = ["DEFAULT_MAX_ELEMENTS", "fmt_shape", "human_bytes", "lazy_pattern", "render_table"]

DEFAULT_MAX_ELEMENTS = 1000  # values per tensor in JSON; numpy's print threshold too


def human_bytes(size: int) -> str:
    """A byte count for people, in decimal units (as ``ls -h --si`` and file managers show them).

    >>> human_bytes(512), human_bytes(207_040), human_bytes(553_000_000)
    ('512 B', '207.0 kB', '553.0 MB')
    """
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def fmt_shape(shape: Iterable[int]) -> str:
    """The one way every report and error message writes a shape: as a Python tuple.

    >>> fmt_shape([64, 10]), fmt_shape((10,)), fmt_shape(())
    ('(64, 10)', '(10,)', '()')
    """
    return str(tuple(int(d) for d in shape))


def render_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    indent: str = "",
    rule: bool = False,
) -> list[str]:
    """Left-aligned columns two spaces apart, the last one unpadded; one string per line.

    ``rule`` adds a line of dashes under the header; ``indent`` starts every line.

    >>> render_table(("key", "shape"), [("w", "(2, 3)"), ("bias", "(3,)")], rule=True)
    ['key   shape', '----  ------', 'w     (2, 3)', 'bias  (3,)']
    """
    body = [tuple(r) for r in rows]
    table = [tuple(header), *body]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    if rule:
        table.insert(1, tuple("-" * w for w in widths))
    return [
        (indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))).rstrip()
        for r in table
    ]


def lazy_pattern(pattern: str) -> Callable[[], re.Pattern[str]]:
    """``re.compile(pattern)`` on the first call, the same compiled pattern on every later one.

    For a module's patterns that most commands never use: compiling one at import costs 0.05-0.5 ms
    of every command's start-up. Call it where the pattern is used (hoisted out of hot loops)::

        _EMA = lazy_pattern(r"(?P<of>.+)/ExponentialMovingAverage(?:_\\d+)?")
        m = _EMA().fullmatch(key)

    >>> digits = lazy_pattern(r"\\d+")
    >>> digits().findall("a1b22"), digits() is digits()
    (['1', '22'], True)
    """

    @functools.cache
    def compiled() -> re.Pattern[str]:
        return re.compile(pattern)

    return compiled
