"""String tensors in a bundle: ``[varint64 len]*n [masked crc32c of lengths] [bytes]*n``.

The entry checksum covers each length as a little-endian uint32 (uint64 above 4 GiB), then the
4 stored checksum bytes, then the string bytes, exactly as TensorFlow's ``WriteStringTensor``::

    >>> import numpy as np
    >>> data, crc = encode_strings([b"ab", b""])
    >>> decode_strings(np.frombuffer(data, np.uint8), 2)[0].tolist()
    [b'ab', b'']
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import google_crc32c

from ckptbridge.format._proto import ProtoError, encode_varint, read_varint
from ckptbridge.format._table import mask_crc, unmask_crc

if TYPE_CHECKING:
    import numpy as np

_UINT32_MAX = 0xFFFFFFFF


def _length_bytes(length: int) -> bytes:
    return struct.pack("<I", length) if length <= _UINT32_MAX else struct.pack("<Q", length)


def decode_strings(
    raw: np.ndarray[Any, np.dtype[np.uint8]], count: int
) -> tuple[np.ndarray[Any, Any], int]:
    """Decode ``count`` strings from the stored bytes; return ``(object array, unmasked crc)``.

    Raises ``ValueError`` when lengths overrun the entry or the length checksum fails.
    """
    import numpy as np

    items, crc = decode_string_list(raw.tobytes(), count)
    out = np.empty(count, dtype=object)
    out[:] = items
    return out, crc


def decode_string_list(buf: bytes, count: int) -> tuple[list[bytes], int]:
    """:func:`decode_strings` as a list of bytes (no numpy): ``(values, unmasked crc)``.

    >>> decode_string_list(encode_strings([b"ab"])[0], 1)[0]
    [b'ab']
    """
    lengths: list[int] = []
    pos = 0
    crc = 0
    try:
        for _ in range(count):
            length, pos = read_varint(buf, pos)
            lengths.append(length)
            crc = google_crc32c.extend(crc, _length_bytes(length))
    except ProtoError as exc:
        raise ValueError(f"string lengths do not decode ({exc})") from None
    if pos + 4 > len(buf):
        raise ValueError("the entry ends inside its length checksum")
    stored = buf[pos : pos + 4]
    if unmask_crc(struct.unpack("<I", stored)[0]) != crc:
        raise ValueError("the checksum of the string lengths does not match")
    crc = google_crc32c.extend(crc, stored)
    pos += 4
    if pos + sum(lengths) != len(buf):
        raise ValueError(
            f"string lengths add up to {sum(lengths)} bytes, the entry holds {len(buf) - pos}"
        )
    out: list[bytes] = []
    for length in lengths:
        out.append(buf[pos : pos + length])
        pos += length
    crc = google_crc32c.extend(crc, buf[pos - sum(lengths) : pos])
    return out, crc


def encode_strings(values: Iterable[Any]) -> tuple[bytes, int]:
    """Encode strings (bytes, or str as UTF-8) as TensorFlow stores them; return (data, crc).

    Example::

        >>> encode_strings([b"x"])[0][:1]
        b'\\x01'
    """
    items = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values]
    crc = 0
    lengths = b""
    for item in items:
        lengths += encode_varint(len(item))
        crc = google_crc32c.extend(crc, _length_bytes(len(item)))
    checksum = struct.pack("<I", mask_crc(crc))
    crc = google_crc32c.extend(crc, checksum)
    body = b"".join(items)
    crc = google_crc32c.extend(crc, body)
    return lengths + checksum + body, crc
