"""Tensor values for people: numpy's printout and summary statistics, or bounded JSON lists.

What TensorFlow's ``inspect_checkpoint --tensor_name/--all_tensors`` prints, plus min, max,
mean, std and NaN/Inf counts; ``ckptbridge inspect PATH --tensor KEY`` uses it::

    for t in tensor_values("old/model.ckpt-1000", ["dense/kernel"]):
        print(t)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ckptbridge._text import DEFAULT_MAX_ELEMENTS, fmt_shape

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DEFAULT_MAX_ELEMENTS", "TensorValues", "tensor_values"]


@dataclass
class TensorValues:
    """One tensor: key, dtype, shape, statistics (None for non-numbers) and the value itself."""

    key: str
    dtype: str
    shape: tuple[int, ...]
    stats: dict[str, float | int] | None
    value: np.ndarray[Any, Any]

    def to_dict(self, max_elements: int = DEFAULT_MAX_ELEMENTS) -> dict[str, Any]:
        """JSON-ready: values as nested lists when the tensor has at most ``max_elements``
        elements, else ``null`` with ``"truncated": true``; NaN/Inf as strings."""
        small = self.value.size <= max_elements
        return {
            "key": self.key,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "stats": self.stats,
            "values": _jsonable(self.value) if small else None,
            "truncated": not small,
        }

    def __str__(self) -> str:
        import numpy as np

        head = f"tensor {self.key}  {self.dtype} {fmt_shape(self.shape)}"
        if self.stats is not None:
            head += "\n" + "  ".join(f"{k} {_num(v)}" for k, v in self.stats.items())
        return head + "\n" + np.array2string(self.value)  # numpy's print options decide


def tensor_values(
    path: str | os.PathLike[str], keys: Sequence[str] | None = None
) -> list[TensorValues]:
    """The values of ``keys`` (every entry when None) of the checkpoint at ``path``, in order.

    Raises ``EntryNotFoundError`` (a ``KeyError``) for an unknown key, with close matches.

    Example::

        [t.stats["max"] for t in tensor_values("m.ckpt", ["w"])]
    """
    import numpy as np

    from ckptbridge.format import OBJECT_GRAPH_KEY, open_checkpoint

    out = []
    with open_checkpoint(path) as ckpt:
        wanted = list(keys) if keys else [k for k in ckpt.entries if k != OBJECT_GRAPH_KEY]
        for key in wanted:
            value = np.array(ckpt.read(key))
            entry = ckpt.entries[ckpt.stored_key(key)]
            out.append(TensorValues(key, entry.dtype, tuple(value.shape), _stats(value), value))
    return out


def _as_float(value: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    import numpy as np

    if value.dtype.kind in "fiub" or value.dtype.type.__module__.startswith("ml_dtypes"):
        return value.astype(np.float64)
    return None


def _stats(value: np.ndarray[Any, Any]) -> dict[str, float | int] | None:
    import numpy as np

    x = _as_float(value)
    if x is None:
        return None
    finite = x[np.isfinite(x)]
    stats: dict[str, float | int] = {}
    if finite.size:
        stats.update(min=float(finite.min()), max=float(finite.max()),
                     mean=float(finite.mean()), std=float(finite.std()))  # fmt: skip
    stats.update(nan=int(np.isnan(x).sum()), inf=int(np.isinf(x).sum()))
    return stats


def _num(v: float | int) -> str:
    return str(v) if isinstance(v, int) else f"{v:.6g}"


def _jsonable(value: np.ndarray[Any, Any]) -> Any:
    import numpy as np

    if value.dtype.kind == "O" or value.dtype.kind == "S":
        flat = [
            v.decode("utf-8", "backslashreplace") if isinstance(v, bytes) else str(v)
            for v in value.reshape(-1)
        ]
        return np.array(flat, dtype=object).reshape(value.shape).tolist()
    if value.dtype.kind == "c":
        return [[_float(z.real), _float(z.imag)] for z in value.reshape(-1)]
    x = value if value.dtype.kind in "iub" else _as_float(value)
    if x is None:
        return None
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        return np.vectorize(_float, otypes=[object])(x).tolist()
    return x.tolist()


def _float(v: float) -> float | str:
    f = float(v)
    return f if math.isfinite(f) else str(f)
