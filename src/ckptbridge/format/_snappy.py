"""Raw Snappy decompression for the ``.index`` blocks TensorFlow 1.1 wrote compressed.

Decoding is compiled (``cramjam``) and bounded: the length a block declares is checked before
anything is allocated, against what Snappy can expand its input to (at most 64 bytes for every 3)
and against the size of an index block (TensorFlow writes 256 KiB blocks, plus at most one long
entry). Damaged input raises :class:`SnappyError`::

    >>> decompress(b"\\x06\\x04ab\\x01\\x02")  # "ab", then a 4-byte copy at offset 2
    b'ababab'
"""

from __future__ import annotations

import cramjam

from ckptbridge.format._proto import ProtoError, read_varint

MAX_OUTPUT = 16 << 20  # one index block: 64 times TensorFlow's block size
_MAX_RATIO = 22  # a 3-byte copy element expands to at most 64 bytes


class SnappyError(ValueError):
    """Malformed Snappy data."""


def decompress(data: bytes, *, limit: int = MAX_OUTPUT) -> bytes:
    """Decompress one raw Snappy buffer (no framing) of at most ``limit`` bytes.

    Example::

        >>> decompress(b"\\x03\\x08abc")
        b'abc'
    """
    try:
        expected, _ = read_varint(data, 0, limit=5)
    except ProtoError as exc:
        raise SnappyError(f"bad length header ({exc})") from None
    if expected > limit:
        raise SnappyError(f"declares {expected} bytes, more than the {limit} allowed")
    if expected > _MAX_RATIO * len(data):
        raise SnappyError(
            f"declares {expected} bytes, more than {len(data)} compressed bytes can expand to"
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as exc:
        raise SnappyError(str(exc).removeprefix("snappy: ")) from None
