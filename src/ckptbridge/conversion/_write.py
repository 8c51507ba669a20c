"""Write one output checkpoint (TF1 or TF2 tensor bundle) from a source and a list of actions.

Tensors that need no transform (no steps, or only reshapes) are copied as raw bytes straight
from the source shard (``BundleWriter.add_raw``), never decoded; the others are read, transformed
and written one at a time. Partitioned targets are written back as slices.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ckptbridge._errors import ConversionError
from ckptbridge._progress import advance
from ckptbridge.conversion._actions import Action

if TYPE_CHECKING:
    import numpy as np

    from ckptbridge.format import Checkpoint, RawLocation


class Partition(NamedTuple):
    """How a partitioned target variable is stored: the full shape and each part's offset/shape."""

    full_shape: tuple[int, ...]
    parts: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # (offset, shape) per part


class WriteStats:
    """Bytes written raw, decoded and transformed, hard-linked (a plain class: a dataclass costs
    every command's start-up to create)."""

    def __init__(self) -> None:
        self.bytes_copied = 0
        self.bytes_transformed = 0
        self.bytes_linked = 0


def raw_source(src: Checkpoint, action: Action) -> RawLocation | None:
    """Where the action's bytes can be copied from unchanged, or None when they must be decoded."""
    from ckptbridge.transforms import is_byte_preserving

    m = action.match
    if m is None or len(m.sources) != 1 or not is_byte_preserving(m.steps):
        return None
    loc = src.raw_location(m.sources[0])
    if loc is None or loc.dtype != action.dtype or math.prod(loc.shape) != math.prod(action.shape):
        return None
    return dataclasses.replace(loc, shape=tuple(action.shape))


def expected_value(
    src: Checkpoint, action: Action, template: Checkpoint | None, step: int | None
) -> np.ndarray:
    """The value ``action`` writes, computed from the source (or template / step number)."""
    import numpy as np

    from ckptbridge.format._dtypes import numpy_dtype

    want = numpy_dtype(action.dtype)
    if action.kind == "step":
        if step is None:
            if template is not None and action.template_key in template.entries:
                return np.asarray(template.read(action.template_key))
            step = 0
        return np.full(action.shape, step, dtype=want)
    if action.kind == "template":
        if template is None or action.template_key is None:
            raise ConversionError(f"no template value for {action.key!r}")
        return np.asarray(template.read(action.template_key))
    assert action.match is not None  # kind == "match"
    from ckptbridge.transforms import apply_steps

    m = action.match
    arrays = [src.read(k) for k in m.sources]
    value = np.asarray(apply_steps(arrays, m.steps)) if m.steps else arrays[0]
    if tuple(value.shape) != tuple(action.shape):
        if math.prod(value.shape) != math.prod(action.shape):
            raise ConversionError(
                f"{action.key!r}: the plan produces shape {tuple(value.shape)} from "
                f"{list(m.sources)} but the target expects {action.shape}. Fix: add a "
                "reshape/transpose transform for it in the rules"
            )
        value = value.reshape(action.shape)
    if value.dtype != want:
        raise ConversionError(
            f"{action.key!r}: source {list(m.sources)} is {value.dtype} but the target expects "
            f"{action.dtype}. Fix: add a cast step ({{op: cast, dtype: {action.dtype}}}) for it"
        )
    return value


def write_actions(
    writer: Any,
    src: Checkpoint,
    actions: tuple[Action, ...],
    *,
    template: Checkpoint | None,
    step: int | None,
    partitions: dict[str, Partition],
) -> WriteStats:
    """Add every action's entry to ``writer`` (a BundleWriter), raw bytes where possible."""
    stats = WriteStats()
    for action in actions:
        part = partitions.get(action.key)
        loc = raw_source(src, action) if part is None else None
        if loc is not None:
            writer.add_raw(action.key, loc)
            stats.bytes_copied += loc.size
            advance(loc.size)
            continue
        encoded = _step_bytes(action, step) if part is None else None
        if encoded is not None:  # the step counter, written without numpy
            written = writer.add_chunks(action.key, action.dtype, action.shape, [encoded])
            stats.bytes_transformed += written
            advance(written)
            continue
        value = expected_value(src, action, template, step)
        if part is None:
            writer.add(action.key, value)
        else:
            import numpy as np

            for offset, sl in slices_of(part):
                writer.add_slice(
                    action.key, part.full_shape, offset, np.ascontiguousarray(value[sl])
                )
        stats.bytes_transformed += int(value.nbytes)
        advance(int(value.nbytes))
        del value
    return stats


INT_FORMATS = {"int8": "<b", "uint8": "<B", "int16": "<h", "uint16": "<H", "int32": "<i",
               "uint32": "<I", "int64": "<q", "uint64": "<Q"}  # fmt: skip
"""``struct`` formats of the integer dtypes (little-endian, as checkpoints store them)."""


def _step_bytes(action: Action, step: int | None) -> bytes | None:
    """A ``step`` action's bytes (``expected_value`` encoded) for an integer dtype and a known
    step, else None (and when the step does not fit the dtype: ``expected_value`` says why)."""
    fmt = INT_FORMATS.get(action.dtype)
    if action.kind != "step" or step is None or fmt is None:
        return None
    try:
        return struct.pack(fmt, step) * math.prod(action.shape)
    except struct.error:
        return None


def slices_of(part: Partition) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Each part's offset and the numpy index that cuts it out of the full tensor."""
    for offset, shape in part.parts:
        yield offset, tuple(slice(o, o + n) for o, n in zip(offset, shape, strict=True))


def verify_output(
    out_prefix: Path,
    src: Checkpoint,
    actions: tuple[Action, ...],
    *,
    template: Checkpoint | None,
    step: int | None,
) -> None:
    """Re-read ``out_prefix`` and compare every entry with the expected bytes, one at a time."""
    from ckptbridge.format import open_checkpoint

    with open_checkpoint(out_prefix) as out:
        for action in actions:
            if action.key not in out.entries:
                raise ConversionError(f"verify: {action.key!r} is missing from {out_prefix}")
            got = out.read(action.key)
            want = expected_value(src, action, template, step)
            if got.dtype != want.dtype or got.shape != want.shape or not _same_bytes(got, want):
                raise ConversionError(
                    f"verify: {action.key!r} in {out_prefix} differs from the expected value "
                    f"(dtype {got.dtype} vs {want.dtype}, shape {got.shape} vs {want.shape})"
                )
            del got, want


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    import numpy as np

    if a.dtype.kind == "O" or b.dtype.kind == "O":
        return bool(np.array_equal(a, b))
    fa = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    fb = np.ascontiguousarray(b).reshape(-1).view(np.uint8)
    if fa.size != fb.size:
        return False
    step = 1 << 24
    return all(np.array_equal(fa[i : i + step], fb[i : i + step]) for i in range(0, fa.size, step))
