"""The V1 checkpoint protos (``saved_tensor_slice.proto``) and the values of a ``TensorProto``.

* ``SavedTensorSlices``: meta=1 (``SavedTensorSliceMeta``), data=2 (``SavedSlice``).
* ``SavedTensorSliceMeta``: tensor=1 (``SavedSliceMeta``: name=1, shape=2, type=3, slice=4),
  versions=2 (``VersionDef``: producer=1, min_consumer=2).
* ``SavedSlice``: name=1, slice=2 (``TensorSliceProto``: extent=1 {start=1, length=2}; no
  length means the whole dimension), data=3 (``TensorProto``).
* ``TensorProto`` values: ``tensor_content``=4 (raw little-endian bytes), or the typed repeated
  field TensorFlow's ``checkpoint::Fill`` writes for the dtype (see ``_VALUE_FIELD``).

Every decoder is bounded by the bytes it is given and raises :class:`ProtoError`::

    >>> from ckptbridge.format._proto import field_bytes
    >>> decode_values(field_bytes(5, b"\\x00\\x00\\x80\\x3f"), "float32", 1).tolist()
    [1.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ckptbridge.format._bundle_proto import Extent, decode_shape
from ckptbridge.format._dtypes import numpy_dtype
from ckptbridge.format._proto import (
    BYTES,
    FIXED32,
    FIXED64,
    VARINT,
    FieldValue,
    ProtoError,
    as_bytes,
    as_int,
    as_int64,
    encode_varint,
    iter_fields,
)

# dtype name -> TensorProto field number of its values (tensorflow/core/framework/tensor.proto and
# the SaveTypeTraits of tensorflow/core/util/saved_tensor_slice_util.h). bfloat16 shares half_val.
_VALUE_FIELD: dict[str, int] = {
    "float32": 5, "float64": 6, "complex64": 9, "complex128": 12,
    "int32": 7, "int16": 7, "int8": 7, "uint8": 7, "uint16": 7,
    "int64": 10, "bool": 11, "float16": 13, "bfloat16": 13, "uint32": 16, "uint64": 17,
    "string": 8, "float8_e5m2": 18, "float8_e4m3fn": 18,
}  # fmt: skip
_FIXED = {5, 6, 9, 12, 18}  # float, double, complex pairs, float8 bytes: fixed width
_TENSOR_CONTENT = 4
_RUN = 1 << 18  # varints decoded per numpy pass


@dataclass
class TensorMeta:
    """One ``SavedSliceMeta``: a tensor's name, full shape, ``DataType`` and stored slices."""

    name: str
    shape: tuple[int, ...] = ()
    dtype: int = 0
    slices: list[list[Extent]] = field(default_factory=list)


@dataclass
class SliceMeta:
    """A decoded ``SavedTensorSliceMeta``."""

    tensors: list[TensorMeta] = field(default_factory=list)
    producer: int = 0
    min_consumer: int = 0


@dataclass
class SavedSlice:
    """A decoded ``SavedSlice``: ``tensor`` is the still-encoded ``TensorProto``."""

    name: str = ""
    extents: list[Extent] = field(default_factory=list)
    tensor: bytes = b""


def _text(value: FieldValue, what: str) -> str:
    try:
        return as_bytes(value, what).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtoError(f"{what} is not UTF-8 text") from None


def decode_extents(data: bytes) -> list[Extent]:
    """Decode a ``TensorSliceProto`` into ``(start, length)`` pairs (length None = whole dim)."""
    extents: list[Extent] = []
    for number, _, value in iter_fields(data):
        if number != 1:
            continue
        start, length = 0, None
        for sub, _, sub_value in iter_fields(as_bytes(value, "slice.extent")):
            if sub == 1:
                start = as_int64(sub_value, "slice.extent.start")
            elif sub == 2:
                length = as_int64(sub_value, "slice.extent.length")
        extents.append((start, length))
    return extents


def _decode_tensor_meta(data: bytes) -> TensorMeta:
    meta = TensorMeta("")
    for number, _, value in iter_fields(data):
        if number == 1:
            meta.name = _text(value, "tensor.name")
        elif number == 2:
            meta.shape = decode_shape(as_bytes(value, "tensor.shape"))
        elif number == 3:
            meta.dtype = as_int(value, "tensor.type")
        elif number == 4:
            meta.slices.append(decode_extents(as_bytes(value, "tensor.slice")))
    return meta


def decode_meta(data: bytes) -> SliceMeta | None:
    """Decode the ``SavedTensorSlices`` under the empty key; None when it has no ``meta``.

    Example::

        >>> from ckptbridge.format._proto import field_bytes
        >>> decode_meta(field_bytes(1, field_bytes(1, field_bytes(1, b"w")))).tensors[0].name
        'w'
    """
    found: SliceMeta | None = None
    for number, _, value in iter_fields(data):
        if number != 1:
            continue
        found = found or SliceMeta()
        for sub, _, sub_value in iter_fields(as_bytes(value, "meta")):
            if sub == 1:
                found.tensors.append(_decode_tensor_meta(as_bytes(sub_value, "meta.tensor")))
            elif sub == 2:
                for key, _, version in iter_fields(as_bytes(sub_value, "meta.versions")):
                    if key == 1:
                        found.producer = as_int64(version, "versions.producer")
                    elif key == 2:
                        found.min_consumer = as_int64(version, "versions.min_consumer")
    return found


def decode_saved_slice(data: bytes) -> SavedSlice | None:
    """Decode the ``data`` of a ``SavedTensorSlices`` record; None when it has none."""
    found: SavedSlice | None = None
    for number, _, value in iter_fields(data):
        if number != 2:
            continue
        found = found or SavedSlice()
        for sub, _, sub_value in iter_fields(as_bytes(value, "data")):
            if sub == 1:
                found.name = _text(sub_value, "data.name")
            elif sub == 2:
                found.extents = decode_extents(as_bytes(sub_value, "data.slice"))
            elif sub == 3:
                found.tensor = as_bytes(sub_value, "data.data")
    return found


def _varints(data: bytes, count: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """Decode exactly ``count`` packed varints with numpy: one vectorised pass per byte position
    (at most 10), over runs of ``_RUN`` values so temporaries stay bounded."""
    raw = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(raw < 0x80)
    if len(ends) != count or (count and ends[-1] != len(raw) - 1) or (not count and len(raw)):
        raise ProtoError(f"holds {len(ends)} varint values, expected {count}")
    if len(ends) == len(raw):  # every value below 128: one byte each
        return raw.astype(np.uint64)
    out = np.empty(count, np.uint64)
    for low in range(0, count, _RUN):
        high = min(low + _RUN, count)
        run_ends = ends[low:high]
        starts = np.empty_like(run_ends)
        starts[0] = ends[low - 1] + 1 if low else 0
        starts[1:] = run_ends[:-1] + 1
        lengths = run_ends - starts + 1
        if lengths.max() > 10:
            raise ProtoError("a varint is longer than 10 bytes")
        values = (raw[starts] & 0x7F).astype(np.uint64)
        for k in range(1, int(lengths.max())):  # byte k of each value, 0 where it has none
            byte = np.where(lengths > k, raw[np.minimum(starts + k, run_ends)] & 0x7F, 0)
            values |= byte.astype(np.uint64) << np.uint64(7 * k)
        out[low:high] = values
    return out


def _collect(tensor: bytes, number: int) -> tuple[bytes, list[bytes], bytes]:
    """Return (packed payload of field ``number``, its string items, tensor_content)."""
    packed: list[bytes] = []
    items: list[bytes] = []
    content = b""
    for got, wire, value in iter_fields(tensor):
        if got == _TENSOR_CONTENT:
            content = as_bytes(value, "tensor_content")
        elif got != number:
            continue
        elif number == 8:
            items.append(as_bytes(value, "string_val"))
        elif wire == BYTES:  # packed (what TensorFlow writes); several runs concatenate
            packed.append(as_bytes(value, f"field {number}"))
        elif wire == VARINT:
            packed.append(encode_varint(as_int(value, f"field {number}")))
        elif wire in (FIXED32, FIXED64):
            width = 4 if wire == FIXED32 else 8
            packed.append(as_int(value, f"field {number}").to_bytes(width, "little"))
    return b"".join(packed), items, content  # one run: no copy


def decode_values(tensor: bytes, dtype: str, count: int) -> np.ndarray[Any, Any]:
    """Return the ``count`` values of an encoded ``TensorProto`` of ``dtype``, flat.

    Reads ``tensor_content`` when present, else the typed field TensorFlow writes for ``dtype``.
    Raises :class:`ProtoError` unless exactly ``count`` values are stored.

    Example::

        >>> from ckptbridge.format._proto import field_bytes
        >>> decode_values(field_bytes(13, b"\\x80\\x78"), "float16", 1)  # half_val 0x3c00
        array([1.], dtype=float16)
    """
    number = _VALUE_FIELD.get(dtype)
    if number is None:
        raise ProtoError(f"dtype {dtype} has no TensorProto value field")
    packed, items, content = _collect(tensor, number)
    target = numpy_dtype(dtype)
    if content:
        if dtype == "string" or len(content) != count * target.itemsize:
            raise ProtoError(
                f"tensor_content holds {len(content)} bytes, expected {count} {dtype} values"
            )
        return np.frombuffer(content, target.newbyteorder("<")).astype(target)
    if dtype == "string":
        if len(items) != count:
            raise ProtoError(f"holds {len(items)} strings, expected {count}")
        out = np.empty(count, dtype=object)
        out[:] = items
        return out
    if number in _FIXED:
        if len(packed) != count * target.itemsize:
            raise ProtoError(f"holds {len(packed)} value bytes, expected {count} {dtype} values")
        return np.frombuffer(packed, target.newbyteorder("<")).astype(target)
    values = _varints(packed, count)
    if dtype == "bool":
        return values.astype(bool)
    if number == 13:  # half_val: the 16 bits of each float16/bfloat16 in an int32
        return (values & 0xFFFF).astype(np.uint16).view(target)
    return values.view(np.int64).astype(target)  # wraps like TensorFlow's integer casts
