"""LevelDB-format immutable tables, the container of a bundle's ``.index`` file (and of V1 files).

Layout: data blocks, a meta-index block, an index block, then a 48-byte footer (two block handles,
padding, magic ``0xdb4775248b80fb57``). Each block holds prefix-compressed entries, a restart array
and a 5-byte trailer (compression type, masked CRC32C of contents + type). Reading validates every
handle, length and checksum, so crafted files fail with :class:`TableError` instead of hanging::

    >>> read_table(build_table([(b"a", b"1"), (b"b", b"2")]), "x.index")
    [(b'a', b'1'), (b'b', b'2')]
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator

import google_crc32c

from ckptbridge.format._proto import ProtoError, encode_varint, read_varint
from ckptbridge.format._snappy import SnappyError, decompress

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5
_MASK_DELTA = 0xA282EAD8
BLOCK_SIZE = 262144  # TensorFlow's table::Options default
RESTART_INTERVAL = 16


class TableError(ValueError):
    """A malformed table; the message says what and where."""


class CompressedTableError(TableError):
    """A block uses a compression type other than none (0) or snappy (1)."""


def mask_crc(crc: int) -> int:
    """Mask a CRC32C the way LevelDB and TensorFlow store it.

    Example::

        >>> unmask_crc(mask_crc(12345))
        12345
    """
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """Invert :func:`mask_crc`."""
    rot = (masked - _MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _handle(buf: bytes, pos: int) -> tuple[int, int, int]:
    offset, pos = read_varint(buf, pos)
    size, pos = read_varint(buf, pos)
    return offset, size, pos


def _block(data: bytes, offset: int, size: int, limit: int, what: str) -> bytes:
    if offset + size + TRAILER_SIZE > limit:
        raise TableError(
            f"{what} block at byte {offset} with {size} bytes ends past the table data ({limit} bytes)"
        )
    contents = data[offset : offset + size]
    kind = data[offset + size]
    (stored,) = struct.unpack_from("<I", data, offset + size + 1)
    actual = google_crc32c.extend(google_crc32c.value(contents), bytes([kind]))
    if unmask_crc(stored) != actual:
        raise TableError(f"{what} block at byte {offset}: checksum mismatch (damaged file)")
    if kind == 1:  # snappy: TensorFlow 1.1 wrote some indexes this way
        try:
            return decompress(contents)
        except SnappyError as exc:
            raise TableError(f"{what} block at byte {offset}: bad snappy data ({exc})") from None
    if kind != 0:
        raise CompressedTableError(
            f"{what} block at byte {offset} uses compression type {kind}; TensorFlow checkpoint "
            "indexes are uncompressed (0) or snappy (1), so this file is damaged or not an index"
        )
    return contents


def _block_entries(block: bytes, what: str) -> list[tuple[bytes, bytes]]:
    if len(block) < 4:
        raise TableError(f"{what} block is {len(block)} bytes, too short for its restart count")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    if num_restarts == 0 or limit < 0:
        raise TableError(f"{what} block claims {num_restarts} restart points in {len(block)} bytes")
    entries: list[tuple[bytes, bytes]] = []
    append = entries.append
    key = b""
    pos = 0
    while pos < limit:
        if pos + 3 <= limit and block[pos] | block[pos + 1] | block[pos + 2] < 0x80:
            shared, unshared, value_len = block[pos], block[pos + 1], block[pos + 2]
            pos += 3  # the common case: three one-byte varints
        else:
            shared, pos = read_varint(block, pos, limit=5)
            unshared, pos = read_varint(block, pos, limit=5)
            value_len, pos = read_varint(block, pos, limit=5)
        end = pos + unshared
        if shared > len(key) or end + value_len > limit:
            raise TableError(f"{what} block: entry at byte {pos} overruns its block")
        key = key[:shared] + block[pos:end] if shared else block[pos:end]
        pos = end + value_len
        append((key, block[end:pos]))
    return entries


def read_table(data: bytes, name: str) -> list[tuple[bytes, bytes]]:
    """Return every ``(key, value)`` of a table held in ``data``, in key order.

    ``name`` appears in error messages. Raises :class:`TableError` on any damage.

    Example::

        >>> read_table(build_table([]), "empty.index")
        []
    """
    items: list[tuple[bytes, bytes]] = []
    try:
        for block in data_blocks(data, name):
            items.extend(_block_entries(block, "data"))
    except ProtoError as exc:
        raise TableError(f"{name}: malformed block handle or entry ({exc})") from None
    for (prev, _), (key, _) in itertools.pairwise(items):
        if key <= prev:
            raise TableError(f"{name}: keys are not in strictly increasing order")
    return items


def data_blocks(data: bytes, name: str) -> Iterator[bytes]:
    """The contents of each data block of the table in ``data``, in order, each checked as it is
    reached (footer, handles, bounds, no overlap, CRC32C, decompressed): the blocks
    :func:`read_table` reads, for readers that parse the entries themselves (with
    :func:`block_limit`). Raises :class:`TableError`, or :class:`ProtoError` for a malformed
    handle (which :func:`read_table` reports as a :class:`TableError`).

    Example::

        >>> len(list(data_blocks(build_table([(b"a", b"1")]), "x.index")))
        1
    """
    if len(data) < FOOTER_SIZE:
        raise TableError(f"{name} is {len(data)} bytes, smaller than a table footer (48 bytes)")
    footer = data[-FOOTER_SIZE:]
    (magic,) = struct.unpack_from("<Q", footer, 40)
    if magic != MAGIC:
        raise TableError(f"{name} does not end with the table magic number 0x{MAGIC:x}")
    limit = len(data) - FOOTER_SIZE
    _, _, pos = _handle(footer, 0)
    index_offset, index_size, _ = _handle(footer, pos)
    index = _block_entries(_block(data, index_offset, index_size, limit, "index"), "index")
    end = 0
    for _, handle in index:
        offset, size, _ = _handle(handle, 0)
        if offset < end:  # TensorFlow writes data blocks one after another
            raise TableError(
                f"{name}: data block at byte {offset} overlaps the block before it "
                f"(which ends at byte {end}); the index block is damaged"
            )
        end = offset + size + TRAILER_SIZE
        yield _block(data, offset, size, limit, "data")


def block_limit(block: bytes) -> int:
    """Where the entries of a block end (its restart array begins), or -1 when the restart
    count does not fit the block (:func:`read_table` reports that as damage).

    Example::

        >>> block_limit(b"\\x00\\x00\\x00\\x00\\x01\\x00\\x00\\x00")
        0
    """
    if len(block) < 4:
        return -1
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * num_restarts
    return -1 if num_restarts == 0 else limit


class _BlockBuilder:
    def __init__(self, restart_interval: int) -> None:
        self.interval = restart_interval
        self.buf = bytearray()
        self.restarts = [0]
        self.count = 0
        self.last = b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count < self.interval:
            limit = min(len(key), len(self.last))
            while shared < limit and key[shared] == self.last[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buf))
            self.count = 0
        self.buf += encode_varint(shared) + encode_varint(len(key) - shared)
        self.buf += encode_varint(len(value)) + key[shared:] + value
        self.last = key
        self.count += 1

    def finish(self) -> bytes:
        tail = b"".join(struct.pack("<I", r) for r in self.restarts)
        return bytes(self.buf) + tail + struct.pack("<I", len(self.restarts))


def _emit(out: bytearray, contents: bytes) -> bytes:
    """Append a block with its trailer; return its encoded handle."""
    handle = encode_varint(len(out)) + encode_varint(len(contents))
    crc = google_crc32c.extend(google_crc32c.value(contents), b"\x00")
    out += contents + b"\x00" + struct.pack("<I", mask_crc(crc))
    return handle


def build_table(items: list[tuple[bytes, bytes]]) -> bytes:
    """Encode sorted ``(key, value)`` pairs as an uncompressed table (TensorFlow's layout).

    Example::

        >>> len(build_table([(b"", b"header")])) > 48
        True
    """
    out = bytearray()
    index = _BlockBuilder(1)
    block = _BlockBuilder(RESTART_INTERVAL)
    for key, value in items:
        block.add(key, value)
        if len(block.buf) >= BLOCK_SIZE:
            index.add(block.last, _emit(out, block.finish()))
            block = _BlockBuilder(RESTART_INTERVAL)
    if block.buf:
        index.add(block.last, _emit(out, block.finish()))
    meta_handle = _emit(out, _BlockBuilder(RESTART_INTERVAL).finish())
    index_handle = _emit(out, index.finish())
    footer = (meta_handle + index_handle).ljust(40, b"\x00") + struct.pack("<Q", MAGIC)
    return bytes(out) + footer
