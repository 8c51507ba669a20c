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

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ckptbridge.format._proto import (
    BYTES,
    FIXED32,
    FIXED64,
    PACKABLE,
    VARINT,
    ProtoError,
    as_bytes,
    as_int,
    as_int32,
    as_int64,
    field_bytes,
    field_fixed32,
    field_varint,
    known_fields,
    packed_ints,
    read_varint,
)

Extent = tuple[int, int | None]  # (start, length); length None = the whole dimension


@dataclass(slots=True)
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
    bad_consumers: tuple[int, ...] = ()


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    byte = buf[pos]  # an IndexError past the end becomes a ProtoError in the callers
    if byte < 0x80:
        return byte, pos + 1
    return read_varint(buf, pos)


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _skip(buf: bytes, pos: int, tag: int) -> int:
    """Skip the value of an unknown field (or a known one with another wire type) at ``pos``."""
    wire = tag & 7
    if tag >> 3 == 0 or tag >> 32:
        raise ProtoError(f"invalid field tag {tag} before byte {pos}")
    if wire == VARINT:
        return read_varint(buf, pos)[1]
    if wire == BYTES:
        size, pos = read_varint(buf, pos)
        end = pos + size
    elif wire in (FIXED32, FIXED64):
        end = pos + (4 if wire == FIXED32 else 8)
    else:
        raise ProtoError(f"unsupported wire type {wire} for field {tag >> 3}")
    if end > len(buf):
        raise ProtoError(f"field {tag >> 3} runs past the end of its message")
    return end


def _bytes_field(buf: bytes, pos: int) -> tuple[bytes, int]:
    size, pos = _varint(buf, pos)
    end = pos + size
    if end > len(buf):
        raise ProtoError(f"a field claims {size} bytes, only {len(buf) - pos} remain")
    return buf[pos:end], end


def _tag(buf: bytes, pos: int) -> tuple[int, int]:
    tag = buf[pos]
    if tag < 0x80:
        return tag, pos + 1
    return read_varint(buf, pos, limit=5)


_SHAPES: dict[bytes, tuple[int, ...]] = {}  # checkpoints repeat a few shapes many times
_MAX_CACHED = 1 << 16


def decode_shape(data: bytes) -> tuple[int, ...]:
    """Decode a ``TensorShapeProto``; unknown rank or negative sizes raise :class:`ProtoError`.

    Example::

        >>> decode_shape(encode_shape((3, 0, 2)))
        (3, 0, 2)
    """
    shape = _SHAPES.get(data)
    if shape is None:
        try:
            shape = _decode_shape(data)
        except IndexError:
            raise ProtoError("shape: a field runs past the end of its message") from None
        if len(_SHAPES) < _MAX_CACHED:
            _SHAPES[data] = shape
    return shape


def _decode_shape(data: bytes) -> tuple[int, ...]:
    dims: list[int] = []
    unknown_rank = 0
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _tag(data, pos)
        if tag == 0x12:  # dim {size=1, name=2}
            body, pos = _bytes_field(data, pos)
            size = 0
            sub = 0
            while sub < len(body):
                sub_tag, sub = _tag(body, sub)
                if sub_tag == 0x08:
                    value, sub = _varint(body, sub)
                    size = _int64(value)
                else:
                    sub = _skip(body, sub, sub_tag)
            if size < 0:
                raise ProtoError(f"shape has a dimension of size {size}")
            dims.append(size)
        elif tag == 0x18:  # unknown_rank (bool)
            unknown_rank, pos = _varint(data, pos)
        else:
            pos = _skip(data, pos, tag)
    if unknown_rank:
        raise ProtoError("shape has unknown rank")
    return tuple(dims)


def encode_shape(shape: tuple[int, ...]) -> bytes:
    """Encode a ``TensorShapeProto``."""
    return b"".join(field_bytes(2, field_varint(1, dim) if dim else b"") for dim in shape)


def _decode_slice(data: bytes) -> list[Extent]:
    extents: list[Extent] = []
    for _, value in known_fields(data, {1: BYTES}):
        start, length = 0, None
        for sub, sub_value in known_fields(as_bytes(value, "slice.extent"), {1: VARINT, 2: VARINT}):
            if sub == 1:
                start = as_int64(sub_value, "slice.extent.start")
            else:
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
    """Decode a ``BundleEntryProto`` exactly as protobuf does: the last scalar wins, repeated
    ``shape`` messages merge, fields with an unexpected wire type are skipped as unknown.

    Example::

        >>> decode_entry(encode_entry(EntryProto(dtype=1, shape=(2,), size=8))).shape
        (2,)
    """
    try:
        return _decode_entry(data)
    except IndexError:
        raise ProtoError("entry: a field runs past the end of its message") from None


def _decode_entry(data: bytes) -> EntryProto:
    entry = EntryProto()
    shape = b""
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _tag(data, pos)
        if tag == 0x08:  # dtype (enum, int32)
            value, pos = _varint(data, pos)
            entry.dtype = as_int32(value)
        elif tag == 0x12:  # shape: repeated occurrences of a message field merge
            body, pos = _bytes_field(data, pos)
            shape += body
        elif tag == 0x18:  # shard_id (int32)
            value, pos = _varint(data, pos)
            entry.shard_id = as_int32(value)
        elif tag == 0x20:  # offset (int64)
            value, pos = _varint(data, pos)
            entry.offset = _int64(value)
        elif tag == 0x28:  # size (int64)
            value, pos = _varint(data, pos)
            entry.size = _int64(value)
        elif tag == 0x35:  # crc32c (fixed32)
            if pos + 4 > end:
                raise ProtoError("entry.crc32c is truncated")
            entry.crc32c = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        elif tag == 0x3A:  # slices (repeated TensorSliceProto)
            body, pos = _bytes_field(data, pos)
            entry.slices.append(_decode_slice(body))
        else:
            pos = _skip(data, pos, tag)
    if shape:
        entry.shape = decode_shape(shape)
    return entry


# The layout TensorFlow (and BundleWriter) write for a stored entry, after ``dtype`` and
# ``shape``: optional shard_id, offset, size (varints of at most 9 bytes), then the crc32c.
STORED_TAIL = re.compile(
    rb"(?:\x18([\x80-\xff]{0,8}[\x00-\x7f]))?(?:\x20([\x80-\xff]{0,8}[\x00-\x7f]))?"
    rb"(?:\x28([\x80-\xff]{0,8}[\x00-\x7f]))?\x35(.{4})",
    re.DOTALL,
)


def varint_of(data: bytes | None) -> int:
    """The value of one varint of at most 9 bytes given as its bytes (None: absent, 0)."""
    if data is None:
        return 0
    size = len(data)
    if size == 1:
        return data[0]
    if size == 2:
        return data[0] & 0x7F | data[1] << 7
    if size == 3:
        return data[0] & 0x7F | (data[1] & 0x7F) << 7 | data[2] << 14
    x = int.from_bytes(data, "little")  # drop the continuation bits, 7 value bits per byte
    if size == 4:  # offsets of 2 MB to 256 MB: the most common in large indexes
        return (x & 0x7F) | (x >> 1 & 0x3F80) | (x >> 2 & 0x1FC000) | (x >> 3 & 0xFE00000)
    return (
        (x & 0x7F) | (x >> 1 & 0x3F80) | (x >> 2 & 0x1FC000) | (x >> 3 & 0xFE00000)
        | (x >> 4 & 0x7F0000000) | (x >> 5 & 0x3F800000000) | (x >> 6 & 0x1FC0000000000)
        | (x >> 7 & 0xFE000000000000) | (x >> 8 & 0x7F00000000000000)
    )  # fmt: skip


def decode_entries(values: Iterable[bytes]) -> list[EntryProto]:
    """Decode many ``BundleEntryProto`` values: :func:`decode_entry` for each, with a fast path
    for the layout TensorFlow writes (:func:`decode_record`: one regular-expression match, the
    dtype and shape decoded once per distinct prefix). Anything else goes through
    :func:`decode_entry`, so the result is the same.

    Example::

        >>> decode_entries([encode_entry(EntryProto(dtype=1, shape=(2,), size=8))])[0].size
        8
    """
    return [decode_record(value) for value in values]


_HEADS: dict[bytes, EntryProto] = {}  # dtype and shape fields -> decoded (dtype, shape only)


def decode_record(value: bytes) -> EntryProto:
    """:func:`decode_entry` of one value, through a fast path for the layout TensorFlow writes
    when it applies (dtype and shape decoded once per distinct prefix in this process).

    Example::

        >>> decode_record(encode_entry(EntryProto(dtype=1, shape=(2,), size=8))).size
        8
    """
    if len(value) > 8 and value[0] == 0x08 and value[2] == 0x12 and value[1] | value[3] < 0x80:
        cut = 4 + value[3]
        found = STORED_TAIL.fullmatch(value, cut)
        if found is not None:
            head = value[:cut]
            known = _HEADS.get(head)
            if known is None:
                known = decode_entry(head)
                if len(_HEADS) < _MAX_CACHED:
                    _HEADS[head] = known
            shard, offset, size, crc = found.groups()
            return EntryProto(
                known.dtype, known.shape, 0 if shard is None else as_int32(varint_of(shard)),
                varint_of(offset), varint_of(size), int.from_bytes(crc, "little"),
            )  # fmt: skip
    return decode_entry(value)


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
    """Decode a ``BundleHeaderProto`` (fields with an unexpected wire type are skipped).

    Example::

        >>> decode_header(encode_header(2)).num_shards
        2
    """
    header = HeaderProto()
    version = b""
    for number, value in known_fields(data, {1: VARINT, 2: VARINT, 3: BYTES}):
        if number == 1:
            header.num_shards = as_int32(as_int(value, "header.num_shards"))
        elif number == 2:
            header.endianness = as_int32(as_int(value, "header.endianness"))
        else:
            version += as_bytes(value, "header.version")  # a repeated message field merges
    bad: list[int] = []
    for sub, sub_value in known_fields(version, {1: VARINT, 2: VARINT, 3: PACKABLE}):
        if sub == 1:
            header.producer = as_int32(as_int(sub_value, "version.producer"))
        elif sub == 2:
            header.min_consumer = as_int32(as_int(sub_value, "version.min_consumer"))
        else:
            bad += [as_int32(v) for v in packed_ints(sub_value, "version.bad_consumers")]
    header.bad_consumers = tuple(bad)
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
    return slice_key(name.encode("utf-8"), extents)


def slice_key(name: bytes, extents: list[Extent]) -> bytes:
    """:func:`encode_slice_key` of a name given as the raw bytes of its table key."""
    escaped = b"".join(_ESCAPES.get(byte, bytes([byte])) for byte in name)
    out = _num_increasing(0) + escaped + b"\x00\x01" + _num_increasing(len(extents))
    for start, length in extents:
        out += _signed_increasing(start) + _signed_increasing(-1 if length is None else length)
    return out
