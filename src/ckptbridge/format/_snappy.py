"""Raw Snappy decompression for the rare ``.index`` blocks TensorFlow 1.1 wrote compressed.

Blocks are small (at most a few hundred kB), so a bounded pure-Python decoder is enough. Every
length and back-reference is checked; damaged input raises :class:`SnappyError`::

    >>> decompress(b"\\x03\\x08abc")
    b'abc'
"""

from __future__ import annotations

from ckptbridge.format._proto import ProtoError, read_varint

MAX_OUTPUT = 64 << 20


class SnappyError(ValueError):
    """Malformed Snappy data."""


def _literal(data: bytes, pos: int, tag: int) -> tuple[int, int]:
    """Return ``(length, new_pos)`` of a literal element whose tag byte was at ``pos - 1``."""
    length = tag >> 2
    if length >= 60:
        extra = length - 59
        if pos + extra > len(data):
            raise SnappyError("literal length runs past the end")
        length = int.from_bytes(data[pos : pos + extra], "little")
        pos += extra
    return length + 1, pos


def decompress(data: bytes, *, limit: int = MAX_OUTPUT) -> bytes:
    """Decompress one raw Snappy buffer (no framing) that declares at most ``limit`` bytes.

    Example::

        >>> decompress(b"\\x06\\x04ab\\x01\\x02")  # "ab" then a 4-byte copy at offset 2
        b'ababab'
    """
    try:
        expected, pos = read_varint(data, 0, limit=5)
    except ProtoError as exc:
        raise SnappyError(f"bad length header ({exc})") from None
    if expected > limit:
        raise SnappyError(f"declares {expected} bytes, more than the {limit} allowed")
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length, pos = _literal(data, pos, tag)
            if pos + length > len(data):
                raise SnappyError("literal runs past the end")
            out += data[pos : pos + length]
            pos += length
        else:
            width = {1: 1, 2: 2, 3: 4}[kind]
            if pos + width > len(data):
                raise SnappyError("copy element truncated")
            if kind == 1:
                length = ((tag >> 2) & 7) + 4
                offset = ((tag >> 5) << 8) | data[pos]
            else:
                length = (tag >> 2) + 1
                offset = int.from_bytes(data[pos : pos + width], "little")
            pos += width
            if offset == 0 or offset > len(out):
                raise SnappyError(f"copy offset {offset} outside the {len(out)} bytes decoded")
            for _ in range(length):
                out.append(out[-offset])
        if len(out) > expected:
            raise SnappyError(f"output exceeds the declared {expected} bytes")
    if len(out) != expected:
        raise SnappyError(f"decoded {len(out)} bytes, header declared {expected}")
    return bytes(out)
