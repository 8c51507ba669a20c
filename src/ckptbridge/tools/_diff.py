"""Compare two checkpoints entry by entry: keys, dtypes, shapes and the largest difference.

Streams one tensor at a time (memory-mapped, compared in chunks), so checkpoints of any size diff
in bounded memory, and imports no TensorFlow::

    d = ckptbridge.tools._diff.diff("run1/model.ckpt-10", "run2/model.ckpt-10")
    print(d)          # table of keys only in A / only in B / mismatches / max |a - b|
    d.identical       # True when every key, dtype, shape and value agrees
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ckptbridge._text import fmt_shape, render_table

if TYPE_CHECKING:
    import numpy as np

_CHUNK = 1 << 20  # elements compared per step


@dataclass(frozen=True)
class KeyDiff:
    """One key present in both checkpoints.

    ``max_abs_diff`` is the largest ``|a - b|`` (0.0 when equal; ``inf`` where only one side is
    NaN; ``None`` when dtypes or shapes differ). For string/bool entries it is 0.0 or 1.0.
    """

    key: str
    dtype_a: str
    dtype_b: str
    shape_a: tuple[int, ...]
    shape_b: tuple[int, ...]
    max_abs_diff: float | None

    @property
    def same(self) -> bool:
        return (
            self.dtype_a == self.dtype_b
            and self.shape_a == self.shape_b
            and self.max_abs_diff == 0.0
        )


@dataclass
class DiffReport:
    """The result of :func:`diff`."""

    a: str
    b: str
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)
    common: list[KeyDiff] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when both hold the same keys with equal dtypes, shapes and values."""
        return not self.only_in_a and not self.only_in_b and all(k.same for k in self.common)

    @property
    def mismatched(self) -> list[KeyDiff]:
        """Common keys whose dtype or shape differ."""
        return [k for k in self.common if k.dtype_a != k.dtype_b or k.shape_a != k.shape_b]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``inf`` written as the string ``"inf"``)."""
        return {
            "a": self.a,
            "b": self.b,
            "identical": self.identical,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "common": [
                {
                    "key": k.key,
                    "dtype": [k.dtype_a, k.dtype_b],
                    "shape": [list(k.shape_a), list(k.shape_b)],
                    "max_abs_diff": _json_float(k.max_abs_diff),
                    "same": k.same,
                }
                for k in self.common
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as one JSON document."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def __str__(self) -> str:
        lines = [f"A: {self.a}", f"B: {self.b}"]
        lines += [f"only in A: {k}" for k in self.only_in_a]
        lines += [f"only in B: {k}" for k in self.only_in_b]
        rows = []
        for k in self.common:
            a = f"{k.dtype_a} {fmt_shape(k.shape_a)}"
            if k.dtype_a != k.dtype_b or k.shape_a != k.shape_b:
                detail = f"{a} vs {k.dtype_b} {fmt_shape(k.shape_b)}"
            else:
                detail = f"{a} max|a-b| = {_fmt(k.max_abs_diff)}"
            rows.append((f"{'=' if k.same else '!'} {k.key}", detail))
        if rows:
            lines += render_table(("  key", "dtype, shape, difference"), rows)
        n_diff = sum(not k.same for k in self.common)
        lines.append(
            f"{len(self.common)} common ({n_diff} differ), {len(self.only_in_a)} only in A, "
            f"{len(self.only_in_b)} only in B: {'identical' if self.identical else 'different'}"
        )
        return "\n".join(lines)


def diff(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> DiffReport:
    """Compare checkpoints ``a`` and ``b`` (prefixes, directories or V1 files).

    Example::

        report = diff("old/model.ckpt-1000", "converted/model.ckpt-1000")
        assert report.identical, str(report)
    """
    from ckptbridge.format import open_checkpoint

    with open_checkpoint(a) as ca, open_checkpoint(b) as cb:
        report = DiffReport(a=str(ca.prefix), b=str(cb.prefix))
        keys_a, keys_b = set(ca.entries), set(cb.entries)
        report.only_in_a = sorted(keys_a - keys_b)
        report.only_in_b = sorted(keys_b - keys_a)
        for key in sorted(keys_a & keys_b):
            ea, eb = ca.entries[key], cb.entries[key]
            value: float | None = None
            if ea.dtype == eb.dtype and tuple(ea.shape) == tuple(eb.shape):
                value = max_abs_diff(ca.read(key), cb.read(key))
            report.common.append(
                KeyDiff(key, ea.dtype, eb.dtype, tuple(ea.shape), tuple(eb.shape), value)
            )
    return report


def max_abs_diff(x: np.ndarray, y: np.ndarray) -> float:
    """Largest ``|x - y|`` of two same-shaped arrays, computed in chunks.

    NaN against NaN counts as equal, NaN against a number as ``inf``; strings and other
    non-numeric arrays give 0.0 when equal and 1.0 when not.

    Example: ``max_abs_diff(np.array([1.0, 2.0]), np.array([1.0, 2.5]))`` -> ``0.5``.
    """
    import numpy as np

    fx, fy = x.reshape(-1), y.reshape(-1)
    numeric = _numeric(fx.dtype) and _numeric(fy.dtype)
    worst = 0.0
    for start in range(0, fx.size, _CHUNK):
        cx, cy = fx[start : start + _CHUNK], fy[start : start + _CHUNK]
        if not numeric:
            if not np.array_equal(cx, cy):
                return 1.0
            continue
        worst = max(worst, _chunk_diff(cx, cy))
        if worst == float("inf"):
            break
    return worst


def _numeric(dtype: np.dtype[Any]) -> bool:
    """Numbers, including ml_dtypes' bfloat16/float8/int4 (numpy kind 'V')."""
    return dtype.kind in "fciub" or dtype.type.__module__.startswith("ml_dtypes")


def _chunk_diff(cx: np.ndarray, cy: np.ndarray) -> float:
    import numpy as np

    if cx.dtype.kind in "iub" and cy.dtype.kind in "iub":
        if cx.size == 0 or np.array_equal(cx, cy):
            return 0.0
        if max(cx.dtype.itemsize, cy.dtype.itemsize) >= 8:  # beyond 2**53 float64 rounds
            return float(np.abs(cx.astype(object) - cy.astype(object)).max())
    wide = np.complex128 if "c" in (cx.dtype.kind, cy.dtype.kind) else np.float64
    ax, ay = cx.astype(wide), cy.astype(wide)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(ax - ay)
    nx, ny = np.isnan(ax), np.isnan(ay)
    if nx.any() or ny.any():
        d = np.where(nx & ny, 0.0, np.where(nx | ny, np.inf, d))
    # equal infinities give nan in ax - ay: they are equal
    d = np.where(np.isnan(d) & (ax == ay), 0.0, d)
    return float(d.max()) if d.size else 0.0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.6g}"


def _json_float(value: float | None) -> float | str | None:
    if value is None or value == float("inf"):
        return None if value is None else "inf"
    return value
