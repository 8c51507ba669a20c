"""Apply rule steps to arrays, or predict the shape they produce (numpy only, no TensorFlow).

A match feeds one target from its sources (in ``Match.sources`` order) through ``steps``. The
working value is a list of arrays: ``concat`` joins the list into one array, every other step is
applied to each array in the list. Exactly one array must remain at the end.

>>> import numpy as np
>>> from ckptbridge.rules import Reshape, Transpose
>>> apply_steps([np.zeros((2, 3))], [Transpose(), Reshape(shape=(6,))]).shape
(6,)
>>> infer_shape([(7, 7, 512, 4096)], [Reshape(shape=(-1, 4096))])
(25088, 4096)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ckptbridge._errors import MappingError, RulesError
from ckptbridge.rules._steps import (
    Add,
    Cast,
    Concat,
    PermuteBlocks,
    Reshape,
    Slice,
    Split,
    Step,
    Transpose,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["apply_steps", "infer_shape", "is_byte_preserving", "resolve_dtype"]

Shape = tuple[int, ...]


def is_byte_preserving(steps: Sequence[Step]) -> bool:
    """True when the single source's bytes can be copied unchanged (no steps, or only reshapes).

    >>> is_byte_preserving([Reshape(shape=(1, 1))])
    True
    """
    return all(isinstance(s, Reshape) for s in steps)


def resolve_dtype(name: str) -> np.dtype[Any]:
    """The numpy dtype for a name such as ``float16`` or ``bfloat16`` (via ml_dtypes).

    >>> resolve_dtype("bfloat16").name
    'bfloat16'
    """
    import numpy as np

    try:
        return np.dtype(name)
    except TypeError:
        pass
    import ml_dtypes

    found = getattr(ml_dtypes, name, None)
    if found is None:
        raise RulesError(
            f"cast: unknown dtype {name!r}; expected a numpy or ml_dtypes name such as "
            "'float16', 'float32' or 'bfloat16'"
        )
    dtype: np.dtype[Any] = np.dtype(found)
    return dtype


def infer_shape(shapes: Sequence[Shape], steps: Sequence[Step]) -> Shape:
    """The shape ``apply_steps`` would produce, or MappingError/RulesError saying which step fails.

    >>> from ckptbridge.rules import Split
    >>> infer_shape([(10, 8)], [Split(axis=1, parts=4, index=2)])
    (10, 2)
    """
    current: list[Shape] = [tuple(s) for s in shapes]
    if not current:
        raise MappingError("transform: no source arrays; a match needs at least one source")
    for i, step in enumerate(steps):
        where = f"step [{i}] ({step.op})"
        if isinstance(step, Concat):
            current = [_concat_shape(current, step.axis, where)]
        else:
            current = [_step_shape(s, step, where) for s in current]
    if len(current) != 1:
        raise MappingError(
            f"transform: {len(current)} source arrays remain after the steps; expected one. "
            "Add a 'concat' step, or give a single source"
        )
    return current[0]


def apply_steps(
    arrays: Sequence[np.ndarray[Any, Any]], steps: Sequence[Step]
) -> np.ndarray[Any, Any]:
    """Run ``steps`` over ``arrays`` (sources in ``Match.sources`` order) and return the result.

    >>> import numpy as np
    >>> from ckptbridge.rules import Add
    >>> apply_steps([np.zeros(4, np.float32)], [Add(value=1.0, start=2)]).tolist()
    [0.0, 0.0, 1.0, 1.0]
    """
    import numpy as np

    infer_shape([a.shape for a in arrays], steps)  # validates every step before touching data
    current = [np.asarray(a) for a in arrays]
    for step in steps:
        if isinstance(step, Concat):
            current = [np.concatenate(current, axis=step.axis)]
        else:
            current = [_apply_one(a, step) for a in current]
    out: np.ndarray[Any, Any] = current[0]
    return out if out.flags.c_contiguous else np.ascontiguousarray(out)


def _axis(axis: int, ndim: int, where: str) -> int:
    if not -ndim <= axis < ndim:
        raise MappingError(
            f"transform {where}: axis {axis} is out of range for a rank-{ndim} array"
        )
    return axis % ndim


def _step_shape(shape: Shape, step: Step, where: str) -> Shape:
    if isinstance(step, Transpose):
        perm = step.perm if step.perm is not None else tuple(reversed(range(len(shape))))
        if sorted(perm) != list(range(len(shape))):
            raise MappingError(
                f"transform {where}: perm {perm} is not a permutation of the {len(shape)} axes "
                f"of shape {shape}"
            )
        return tuple(shape[p] for p in perm)
    if isinstance(step, Reshape):
        return _reshape_shape(shape, step.shape, where)
    if isinstance(step, Split):
        return _split_shape(shape, step, where)
    if isinstance(step, Slice):
        ax = _axis(step.axis, len(shape), where)
        if step.step == 0:
            raise RulesError(f"transform {where}: slice step must not be 0")
        n = len(range(*slice(step.start, step.stop, step.step).indices(shape[ax])))
        return (*shape[:ax], n, *shape[ax + 1 :])
    if isinstance(step, Cast):
        resolve_dtype(step.dtype)
        return shape
    if isinstance(step, Add):
        if shape:
            _axis(step.axis, len(shape), where)
        return shape
    if isinstance(step, PermuteBlocks):
        ax = _axis(step.axis, len(shape), where)
        if sorted(step.order) != list(range(step.parts)):
            raise RulesError(
                f"transform {where}: order {step.order} is not a permutation of range({step.parts})"
            )
        if shape[ax] % step.parts:
            raise MappingError(
                f"transform {where}: axis {step.axis} of shape {shape} has {shape[ax]} entries, "
                f"not divisible into {step.parts} blocks"
            )
        return shape
    raise RulesError(f"transform {where}: unknown step")  # pragma: no cover - union is closed


def _reshape_shape(shape: Shape, new: Shape, where: str) -> Shape:
    size = math.prod(shape)
    if list(new).count(-1) > 1:
        raise RulesError(f"transform {where}: at most one -1 in reshape {new}")
    known = math.prod(d for d in new if d != -1)
    if -1 in new:
        if known == 0 or size % known:
            raise MappingError(
                f"transform {where}: cannot reshape {shape} ({size} elements) to {new}"
            )
        new = tuple(size // known if d == -1 else d for d in new)
    elif known != size:
        raise MappingError(
            f"transform {where}: cannot reshape {shape} ({size} elements) to {new} ({known} elements)"
        )
    return tuple(new)


def _split_shape(shape: Shape, step: Split, where: str) -> Shape:
    ax = _axis(step.axis, len(shape), where)
    dim = shape[ax]
    if (step.parts is None) == (step.sizes is None):
        raise RulesError(f"transform {where}: give exactly one of 'parts' or 'sizes'")
    if step.parts is not None:
        if dim % step.parts:
            raise MappingError(
                f"transform {where}: axis {step.axis} of shape {shape} ({dim}) does not split into "
                f"{step.parts} equal parts"
            )
        count, size = step.parts, dim // step.parts
    else:
        sizes = step.sizes or ()
        if sum(sizes) != dim:
            raise MappingError(
                f"transform {where}: sizes {sizes} add up to {sum(sizes)}, but axis {step.axis} "
                f"of shape {shape} has {dim}"
            )
        count = len(sizes)
        size = sizes[step.index] if step.index < count else 0
    if step.index >= count:
        raise MappingError(f"transform {where}: index {step.index} but only {count} parts")
    return (*shape[:ax], size, *shape[ax + 1 :])


def _concat_shape(shapes: list[Shape], axis: int, where: str) -> Shape:
    first = shapes[0]
    ax = _axis(axis, len(first), where)
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(s, first, strict=True)) if i != ax
        ):
            raise MappingError(
                f"transform {where}: cannot concatenate shapes {shapes} along axis {axis}"
            )
    return (*first[:ax], sum(s[ax] for s in shapes), *first[ax + 1 :])


def _apply_one(a: np.ndarray[Any, Any], step: Step) -> np.ndarray[Any, Any]:
    import numpy as np

    if isinstance(step, Transpose):
        return np.transpose(a, step.perm)
    if isinstance(step, Reshape):
        return a.reshape(step.shape)
    if isinstance(step, Split):
        ax = step.axis % a.ndim
        bounds = _split_bounds(a.shape[ax], step)
        return _take(a, ax, slice(*bounds))
    if isinstance(step, Slice):
        return _take(a, step.axis % a.ndim, slice(step.start, step.stop, step.step))
    if isinstance(step, Cast):
        return a.astype(resolve_dtype(step.dtype))
    if isinstance(step, Add):
        out = a.copy()
        if out.ndim == 0:
            scalar: np.ndarray[Any, Any] = out + np.asarray(step.value, dtype=out.dtype)
            return scalar
        idx = [slice(None)] * out.ndim
        idx[step.axis % out.ndim] = slice(step.start, step.stop)
        out[tuple(idx)] += np.asarray(step.value, dtype=out.dtype)
        return out
    if isinstance(step, PermuteBlocks):
        ax = step.axis % a.ndim
        blocks = np.split(a, step.parts, axis=ax)
        return np.concatenate([blocks[i] for i in step.order], axis=ax)
    raise RulesError("transform: unknown step")  # pragma: no cover


def _split_bounds(dim: int, step: Split) -> tuple[int, int]:
    if step.parts is not None:
        size = dim // step.parts
        return step.index * size, (step.index + 1) * size
    sizes = step.sizes or ()
    start = sum(sizes[: step.index])
    return start, start + sizes[step.index]


def _take(a: np.ndarray[Any, Any], axis: int, sl: slice) -> np.ndarray[Any, Any]:
    idx: list[slice] = [slice(None)] * a.ndim
    idx[axis] = sl
    return a[tuple(idx)]
