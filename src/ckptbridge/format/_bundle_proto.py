"""The tensor-bundle protos (``tensor_bundle.proto``) and TensorFlow's slice-key encoding.

* ``BundleHeaderProto``: num_shards=1, endianness=2 (LITTLE=0, BIG=1), version=3 (VersionDef:
  producer=1, min_consumer=2, bad_consumers=3).
* ``BundleEntryProto``: dtype=1, shape=2 (TensorShapeProto: dim=2 {size=1, name=2},
  unknown_rank=3), shard_id=3, offset=4, size=5, crc32c=6 (fixed32), slices=7 (TensorSliceProto:
  extent=1 {start=1, length=2}; a missing length means the whole dimension).

Slices of a partitioned variable are stored under ``checkpoint::EncodeTensorNameSlice`` keys built
from TensorFlow's ``OrderedCode``::

    >>> encode_slice_key("v", [(0, 2)])
    b'\\x00v\\x00\\x01\\x01\\x01\\x80\\x82'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ckptbridge.format._proto import (
    ProtoError,
    as_bytes,
    as_int,
    as_int64,
    field_bytes,
    field_fixed32,
    field_varint,
    iter_fields,
)

Extent = tuple[int, int | None]  # (start, length); length None = the whole dimension


@dataclass
class EntryProto:
    """A decoded ``BundleEntryProto``."""

    dtype: int = 0
    shape: tuple[int, ...] = ()
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0
    slices: list[list[Extent]] = field(default_factory=list)


@dataclass
class HeaderProto:
    """A decoded ``BundleHeaderProto``."""

    num_shards: int = 0
    endianness: int = 0
    producer: int = 0
    min_consumer: int = 0


def decode_shape(data: bytes) -> tuple[int, ...]:
    """Decode a ``TensorShapeProto``; unknown rank or negative sizes raise :class:`ProtoError`."""
    dims: list[int] = []
    for number, _, value in iter_fields(data):
        if number == 2:
            size = 0
            for sub, _, sub_value in iter_fields(as_bytes(value, "shape.dim")):
                if sub == 1:
                    size = as_int64(sub_value, "shape.dim.size")
            if size < 0:
                raise ProtoError(f"shape has a dimension of size {size}")
            dims.append(size)
        elif number == 3 and as_int(value, "shape.unknown_rank"):
            raise ProtoError("shape has unknown rank")
    return tuple(dims)


def encode_shape(shape: tuple[int, ...]) -> bytes:
    """Encode a ``TensorShapeProto``."""
    return b"".join(field_bytes(2, field_varint(1, dim) if dim else b"") for dim in shape)


def _decode_slice(data: bytes) -> list[Extent]:
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


def encode_slice(extents: list[Extent]) -> bytes:
    """Encode a ``TensorSliceProto``."""
    out = b""
    for start, length in extents:
        body = (field_varint(1, start) if start else b"") + (
            field_varint(2, length) if length is not None else b""
        )
        out += field_bytes(1, body)
    return out


def decode_entry(data: bytes) -> EntryProto:
    """Decode a ``BundleEntryProto``.

    Example::

        >>> decode_entry(encode_entry(EntryProto(dtype=1, shape=(2,), size=8))).shape
        (2,)
    """
    entry = EntryProto()
    for number, _, value in iter_fields(data):
        if number == 1:
            entry.dtype = as_int(value, "entry.dtype")
        elif number == 2:
            entry.shape = decode_shape(as_bytes(value, "entry.shape"))
        elif number == 3:
            entry.shard_id = as_int64(value, "entry.shard_id")
        elif number == 4:
            entry.offset = as_int64(value, "entry.offset")
        elif number == 5:
            entry.size = as_int64(value, "entry.size")
        elif number == 6:
            entry.crc32c = as_int(value, "entry.crc32c")
        elif number == 7:
            entry.slices.append(_decode_slice(as_bytes(value, "entry.slices")))
    return entry


def encode_entry(entry: EntryProto) -> bytes:
    """Encode a ``BundleEntryProto`` (field order as TensorFlow writes it)."""
    out = field_varint(1, entry.dtype) + field_bytes(2, encode_shape(entry.shape))
    if entry.slices:
        return out + b"".join(field_bytes(7, encode_slice(s)) for s in entry.slices)
    if entry.shard_id:
        out += field_varint(3, entry.shard_id)
    if entry.offset:
        out += field_varint(4, entry.offset)
    if entry.size:
        out += field_varint(5, entry.size)
    return out + field_fixed32(6, entry.crc32c)


def decode_header(data: bytes) -> HeaderProto:
    """Decode a ``BundleHeaderProto``."""
    header = HeaderProto()
    for number, _, value in iter_fields(data):
        if number == 1:
            header.num_shards = as_int64(value, "header.num_shards")
        elif number == 2:
            header.endianness = as_int(value, "header.endianness")
        elif number == 3:
            for sub, _, sub_value in iter_fields(as_bytes(value, "header.version")):
                if sub == 1:
                    header.producer = as_int64(sub_value, "version.producer")
                elif sub == 2:
                    header.min_consumer = as_int64(sub_value, "version.min_consumer")
    return header


def encode_header(num_shards: int) -> bytes:
    """Encode the header TensorFlow writes: little-endian, format version producer 1."""
    return field_varint(1, num_shards) + field_bytes(3, field_varint(1, 1))


_ESCAPES = {0x00: b"\x00\xff", 0xFF: b"\xff\x00"}


def _num_increasing(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return bytes([len(body)]) + body


def _signed_increasing(value: int) -> bytes:
    magnitude = ~value if value < 0 else value
    if magnitude < 64:
        return bytes([(0x80 ^ value) & 0xFF])
    length = magnitude.bit_length() // 7 + 1
    header = {
        2: (0xC0, 0), 3: (0xE0, 0), 4: (0xF0, 0), 5: (0xF8, 0), 6: (0xFC, 0),
        7: (0xFE, 0), 8: (0xFF, 0), 9: (0xFF, 0x80), 10: (0xFF, 0xC0),
    }[length]  # fmt: skip
    buf = bytearray((value & ((1 << 80) - 1)).to_bytes(10, "big")[10 - length :])
    buf[0] ^= header[0]
    buf[1] ^= header[1]
    return bytes(buf)


def encode_slice_key(name: str, extents: list[Extent]) -> bytes:
    """Return the table key under which TensorFlow stores one slice of ``name``.

    Mirrors ``checkpoint::EncodeTensorNameSlice``: ``OrderedCode`` of 0, the name, the rank, then
    each dimension's start and length (-1 for a whole dimension).

    Example::

        >>> encode_slice_key("w", [(0, None)])[-2:]
        b'\\x80\\x7f'
    """
    escaped = b"".join(_ESCAPES.get(byte, bytes([byte])) for byte in name.encode("utf-8"))
    out = _num_increasing(0) + escaped + b"\x00\x01" + _num_increasing(len(extents))
    for start, length in extents:
        out += _signed_increasing(start) + _signed_increasing(-1 if length is None else length)
    return out
