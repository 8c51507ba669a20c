"""Small text helpers shared by the reports and tables."""

from __future__ import annotations

__all__ = ["human_bytes"]


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
