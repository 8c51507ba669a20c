"""A minimal, bounded protobuf wire-format decoder and encoder.

Only what checkpoints need: varints, length-delimited fields and fixed32/fixed64. Every read is
bounds-checked and raises :class:`ProtoError` (a ``ValueError``) on malformed input; callers turn it
into a :class:`~ckptbridge.CorruptCheckpointError` naming the file.

Decoders read known fields through :func:`known_fields`, which applies protobuf's rule for a field
that arrives with another wire type than its declaration: it is an unknown field, skipped, never
reinterpreted (a fixed32 ``endianness`` is not an integer ``endianness``)::

    >>> list(iter_fields(field_varint(1, 150)))
    [(1, 0, 150)]
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5

FieldValue = int | bytes


class ProtoError(ValueError):
    """Malformed protobuf bytes."""


def read_varint(buf: bytes | memoryview, pos: int, *, limit: int = 10) -> tuple[int, int]:
    """Decode one varint at ``pos``; return ``(value, new_pos)``. At most ``limit`` bytes."""
    result = 0
    shift = 0
    end = len(buf)
    for i in range(limit):
        if pos + i >= end:
            raise ProtoError(f"varint runs past the end of the buffer at byte {pos}")
        byte = buf[pos + i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos + i + 1
        shift += 7
    raise ProtoError(f"varint longer than {limit} bytes at byte {pos}")


def iter_fields(buf: bytes | memoryview) -> Iterator[tuple[int, int, FieldValue]]:
    """Yield ``(field_number, wire_type, value)``; bytes fields as ``bytes``, numbers as ``int``.

    Example::

        >>> list(iter_fields(field_bytes(2, b"ab")))
        [(2, 2, b'ab')]
    """
    pos = 0
    end = len(buf)
    while pos < end:
        tag, pos = read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ProtoError(f"field number 0 at byte {pos}")
        value: FieldValue
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == BYTES:
            size, pos = read_varint(buf, pos)
            if size > end - pos:
                raise ProtoError(f"field {number} claims {size} bytes, only {end - pos} remain")
            value = bytes(buf[pos : pos + size])
            pos += size
        elif wire == FIXED32:
            if pos + 4 > end:
                raise ProtoError(f"fixed32 field {number} truncated")
            value = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        elif wire == FIXED64:
            if pos + 8 > end:
                raise ProtoError(f"fixed64 field {number} truncated")
            value = int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        else:
            raise ProtoError(f"unsupported wire type {wire} for field {number}")
        yield number, wire, value


def known_fields(
    buf: bytes | memoryview, wires: dict[int, int]
) -> Iterator[tuple[int, FieldValue]]:
    """Yield ``(field_number, value)`` for the fields declared in ``wires`` (number -> wire type)
    that arrive with that wire type; everything else is skipped as protobuf skips unknown fields.

    A packable repeated scalar (declared ``VARINT``) is also yielded when it arrives packed
    (``BYTES``), as protobuf accepts both; decode it with :func:`packed_ints`.

    Example::

        >>> list(known_fields(field_fixed32(2, 1) + field_varint(2, 0), {2: VARINT}))
        [(2, 0)]
    """
    for number, wire, value in iter_fields(buf):
        expected = wires.get(number)
        if expected == wire or (expected == PACKABLE and wire in (VARINT, BYTES)):
            yield number, value


PACKABLE = -1  # for known_fields: a repeated varint scalar, packed or not


def as_int32(value: int) -> int:
    """An ``int32``/enum field as protobuf reads it from a varint: the low 32 bits, signed.

    Example::

        >>> as_int32((1 << 32) + 5), as_int32(0xFFFFFFFF)
        (5, -1)
    """
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def as_bytes(value: FieldValue, what: str) -> bytes:
    """Return ``value`` as bytes or raise :class:`ProtoError` naming ``what``."""
    if not isinstance(value, bytes):
        raise ProtoError(f"{what}: expected a length-delimited field, found a number")
    return value


def as_int(value: FieldValue, what: str) -> int:
    """Return ``value`` as an int or raise :class:`ProtoError` naming ``what``."""
    if not isinstance(value, int):
        raise ProtoError(f"{what}: expected a number, found bytes")
    return value


def as_int64(value: FieldValue, what: str) -> int:
    """Return ``value`` as a signed 64-bit int (two's complement of the varint)."""
    number = as_int(value, what)
    return number - (1 << 64) if number >= 1 << 63 else number


def packed_ints(value: FieldValue, what: str) -> list[int]:
    """Decode a repeated int64 field given either packed (bytes) or one unpacked number."""
    if isinstance(value, int):
        return [as_int64(value, what)]
    out: list[int] = []
    pos = 0
    while pos < len(value):
        number, pos = read_varint(value, pos)
        out.append(as_int64(number, what))
    return out


def encode_varint(value: int) -> bytes:
    """Encode a non-negative or int64 value as a varint.

    Example::

        >>> encode_varint(300)
        b'\\xac\\x02'
    """
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    """Encode a varint field (``int32/int64/uint64/bool/enum``)."""
    return encode_varint(number << 3 | VARINT) + encode_varint(value)


def field_bytes(number: int, data: bytes) -> bytes:
    """Encode a length-delimited field (string, bytes, sub-message, packed)."""
    return encode_varint(number << 3 | BYTES) + encode_varint(len(data)) + data


def field_fixed32(number: int, value: int) -> bytes:
    """Encode a fixed32 field."""
    return encode_varint(number << 3 | FIXED32) + struct.pack("<I", value & 0xFFFFFFFF)


def encode_field(number: int, wire: int, value: FieldValue) -> bytes:
    """Re-encode a field as yielded by :func:`iter_fields` (to keep unknown fields verbatim)."""
    if wire == BYTES:
        return field_bytes(number, as_bytes(value, f"field {number}"))
    if wire == VARINT:
        return field_varint(number, as_int(value, f"field {number}"))
    width = 4 if wire == FIXED32 else 8
    return encode_varint(number << 3 | wire) + as_int(value, f"field {number}").to_bytes(
        width, "little"
    )
