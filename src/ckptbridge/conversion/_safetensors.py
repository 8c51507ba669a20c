"""Write mapped weights as a safetensors file, streamed: never more than one tensor in memory.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length N, N
bytes of JSON (``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
{str: str}}``), then the tensors' little-endian bytes back to back. The header is padded with
spaces so the data starts at a multiple of 8, as the specification allows. The ``safetensors``
library builds a file from tensors held in memory; here every offset is known from the plan
before any byte is read, so the header is written first and each tensor is appended as it is
read: untransformed tensors are copied in chunks straight from the source shard (their CRC32C
checked on the way), the others are read, transformed and written one at a time::

    write_safetensors(Path("out/model.safetensors"), src, tensors, {"source": "old/model.ckpt-5"})
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import google_crc32c
import numpy as np

from ckptbridge._errors import ConversionError
from ckptbridge.conversion._actions import Action
from ckptbridge.conversion._write import WriteStats, expected_value, raw_source

__all__ = ["SAFETENSORS_DTYPES", "plan_fingerprint", "tensor_name", "write_safetensors"]

SAFETENSORS_DTYPES = {
    "float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16",
    "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8",
    "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8", "bool": "BOOL",
    "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2",
}  # fmt: skip
_CHUNK = 8 << 20  # bytes copied per read
_ATTR_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


def tensor_name(target_name: str) -> str:
    """The safetensors name of a target variable: its path, without ``:0`` or TF2's attribute
    suffix.

    >>> tensor_name("dense/kernel:0"), tensor_name("model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE")
    ('dense/kernel', 'model/dense/kernel')
    """
    name = target_name[: -len(_ATTR_SUFFIX)] if target_name.endswith(_ATTR_SUFFIX) else target_name
    return name[:-2] if name.endswith(":0") else name


def plan_fingerprint(plan: Any) -> str:
    """SHA-256 of the plan's matches (target, sources, steps): the same mapping, the same digest.

    >>> from ckptbridge.engine import MappingPlan
    >>> len(plan_fingerprint(MappingPlan()))
    64
    """
    matches = [
        {k: v for k, v in m.items() if k in ("target", "sources", "steps")}
        for m in plan.to_dict()["matches"]
    ]
    return hashlib.sha256(json.dumps(matches, sort_keys=True).encode("utf-8")).hexdigest()


def _header(tensors: Sequence[tuple[str, Action]], metadata: dict[str, str]) -> tuple[bytes, int]:
    header: dict[str, Any] = {"__metadata__": metadata}
    offset = 0
    for name, action in tensors:
        dtype = SAFETENSORS_DTYPES.get(action.dtype)
        if dtype is None:
            raise ConversionError(
                f"{name!r} is {action.dtype}, which safetensors cannot store (it stores "
                f"{', '.join(sorted(SAFETENSORS_DTYPES))}). Fix: add a cast step for it in the "
                "rules, or list it under ignore_target"
            )
        from ckptbridge.format._dtypes import numpy_dtype

        size = math.prod(action.shape) * numpy_dtype(action.dtype).itemsize
        header[name] = {"dtype": dtype, "shape": list(action.shape),
                        "data_offsets": [offset, offset + size]}  # fmt: skip
        offset += size
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # the data starts 8-byte aligned
    return text, offset


def write_safetensors(
    path: Path,
    src: Any,
    tensors: Sequence[tuple[str, Action]],
    metadata: dict[str, str],
    *,
    progress: Callable[[int], None] | None = None,
) -> WriteStats:
    """Write ``tensors`` (safetensors name, action) from ``src`` into ``path``, sorted by name.

    ``progress`` is called with the bytes written after each piece. Raises ConversionError for a
    dtype safetensors has no code for, CorruptCheckpointError for damaged source bytes.
    """
    ordered = sorted(tensors, key=lambda t: t[0])
    names = [n for n, _ in ordered]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConversionError(f"two target variables share the safetensors name(s) {dup[:3]}")
    header, total = _header(ordered, metadata)
    stats = WriteStats()
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(header)))
        out.write(header)
        for name, action in ordered:
            loc = raw_source(src, action)
            if loc is not None:
                _copy_checked(out, loc, name, progress)
                stats.bytes_copied += loc.size
                continue
            value = _transposed_view(src, action)
            if value is None:
                value = expected_value(src, action, None, None)
            stats.bytes_transformed += _write_slabs(out, value, progress)
            del value
        if out.tell() != 8 + len(header) + total:
            raise ConversionError(
                f"{path}: wrote {out.tell()} bytes, the header promises {8 + len(header) + total}"
            )
    return stats


def _transposed_view(src: Any, action: Action) -> np.ndarray[Any, Any] | None:
    """For a single source whose steps are only transposes (after reshapes of the stored, still
    contiguous, array): a view of the mapped source, never a copy; else None."""
    from ckptbridge.rules._steps import Reshape, Transpose

    m = action.match
    if m is None or len(m.sources) != 1 or not m.steps:
        return None
    kinds = [type(step) for step in m.steps]
    if set(kinds) - {Reshape, Transpose} or Transpose not in kinds:
        return None
    if Reshape in kinds[kinds.index(Transpose) :]:  # a reshape of a transposed view copies
        return None
    value: np.ndarray[Any, Any] = src.read(m.sources[0])
    for step in m.steps:
        if isinstance(step, Reshape):
            value = value.reshape(step.shape)
        elif isinstance(step, Transpose):
            value = value.transpose(step.perm)
    if value.shape != tuple(action.shape) or str(value.dtype) != action.dtype:
        return None
    return value


def _write_slabs(
    out: BinaryIO, value: np.ndarray[Any, Any], progress: Callable[[int], None] | None
) -> int:
    """Write ``value`` C-ordered and little-endian, a slab of leading rows at a time: a transposed
    view is never made contiguous whole, so only the source (mapped) and one slab are in memory."""
    rows = value.shape[0] if value.ndim else 1
    per_row = max(1, value.nbytes // max(rows, 1))
    step = max(1, _CHUNK // per_row)
    written = 0
    for start in range(0, rows, step):
        slab = np.ascontiguousarray(value[start : start + step] if value.ndim else value)
        if slab.dtype.byteorder == ">":
            slab = slab.astype(slab.dtype.newbyteorder("<"))
        data = slab.reshape(-1).view(np.uint8)
        out.write(data.data)
        written += int(data.size)
        if progress is not None:
            progress(int(data.size))
        del slab, data
    return written


def _copy_checked(
    out: BinaryIO, loc: Any, name: str, progress: Callable[[int], None] | None
) -> None:
    crc, got = 0, 0
    with Path(loc.path).open("rb") as fin:
        fin.seek(loc.offset)
        while got < loc.size:
            raw = fin.read(min(_CHUNK, loc.size - got))
            if not raw:
                break
            got += len(raw)
            crc = google_crc32c.extend(crc, raw)
            out.write(raw)
            if progress is not None:
                progress(len(raw))
    loc.check_read(crc, got, name)
