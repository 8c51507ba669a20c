"""Native reader of the tensor-bundle (V2) format: ``<prefix>.index`` + ``<prefix>.data-*``.

Opening reads and validates the whole index (bounded in size, read only from a regular file).
Tensors are read on demand, two ways: a read-only numpy *view* of the memory-mapped shard (no copy;
the fastest), or an owning *copy* read with ``pread`` (safe even when the file is truncated or
rewritten underneath, which a mapped view cannot be: touching a page truncated away kills the
process with SIGBUS)::

    reader = BundleReader(Path("old/model.ckpt-1000"))
    kernel = reader.read("dense/kernel")             # view of the mapped shard
    owned = reader.read("dense/kernel", copy=True)   # independent, writable
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import google_crc32c

from ckptbridge._errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsupportedCheckpointError,
)
from ckptbridge.format._bundle_proto import (
    STORED_TAIL,
    EntryProto,
    Extent,
    decode_entries,
    decode_entry,
    decode_header,
    decode_record,
    slice_key,
    varint_of,
)
from ckptbridge.format._dtypes import dtype_label, has_numpy_form, itemsize, numpy_dtype
from ckptbridge.format._files import (
    INDEX_LIMIT,
    corrupt_guard,
    open_regular,
    os_error,
    read_regular,
    regular_stat,
)
from ckptbridge.format._gc import collector_paused
from ckptbridge.format._proto import ProtoError, as_int32, read_varint
from ckptbridge.format._storage import Location, RemotePath
from ckptbridge.format._strings import decode_string_list
from ckptbridge.format._table import TableError, block_limit, data_blocks, read_table, unmask_crc
from ckptbridge.format._types import ENTRY_MAKER, Entry, RawLocation, new_entry

if TYPE_CHECKING:
    import numpy as np

MAX_SHARDS = 99999  # TensorFlow names shards with five digits
_MAX_RANK = 64  # numpy's limit
_MAX_EXTENT = 1 << 56  # keeps shape products x itemsize (<= 16) inside numpy's intp
_FIX = "The file is damaged or incomplete; copy it again from its source."
_MAX_PAIR_CHECKS = 1 << 22  # overlap tests between the slices of one variable


P = TypeVar("P", bound=Location)


def data_path(prefix: P, shard: int, num_shards: int) -> P:
    """Return the path of one data shard, as TensorFlow names it.

    Example::

        >>> data_path(Path("m.ckpt"), 0, 1).name
        'm.ckpt.data-00000-of-00001'
    """
    return cast(P, prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}"))


def _decode_keys(protos: dict[bytes, EntryProto]) -> dict[str, EntryProto] | None:
    """``protos`` keyed by their keys decoded as UTF-8 (distinct keys stay distinct), or None
    when a key is not UTF-8 (then decoded one by one, looking for collisions)."""
    try:
        return {key.decode("utf-8"): proto for key, proto in protos.items()}
    except UnicodeDecodeError:
        return None


class BundleReader:
    """Reads one tensor bundle; see the module docstring."""

    def __init__(self, prefix: Location) -> None:
        self.prefix = prefix
        self.index_path = prefix.with_name(prefix.name + ".index")
        self._fds: dict[int, int] = {}
        self._maps: dict[int, mmap.mmap] = {}
        # key -> its BundleEntryProto, decoded, or as its index bytes (decoded when read)
        self._protos: dict[str, EntryProto | bytes] = {}
        self._ends: dict[int, int] | None = None  # shard -> end of its data, when known
        self._slices: dict[str, list[tuple[list[Extent], EntryProto]]] = {}
        self._broken: dict[str, str] = {}  # partitioned entries whose slices overlap: read fails
        self.entries: dict[str, Entry] = {}
        if isinstance(self.index_path, RemotePath):  # one ranged request
            data = self.index_path.store.read_whole(
                self.index_path, INDEX_LIMIT, "checkpoint index"
            )
        else:
            data = read_regular(self.index_path, INDEX_LIMIT, "checkpoint index")
        # Reading and decoding create objects, never cycles: the collector would only rescan
        # everything else (all of TensorFlow, if imported), once per 700 records.
        with corrupt_guard(str(self.index_path)), collector_paused():
            if not self._load_stored(data):
                try:
                    items = read_table(data, str(self.index_path))
                except TableError as exc:
                    raise CorruptCheckpointError(
                        f"{self.index_path} is not a readable checkpoint index: {exc}. "
                        "Expected a TensorFlow tensor-bundle index (LevelDB table). " + _FIX
                    ) from None
                del data
                try:
                    self._load(items)
                except ProtoError as exc:
                    raise CorruptCheckpointError(
                        f"{self.index_path}: an index record does not decode ({exc}). " + _FIX
                    ) from None
        self._check_shards()

    # -- opening -------------------------------------------------------------------------------
    def _load(self, items: list[tuple[bytes, bytes]]) -> None:
        if not items or items[0][0] != b"":
            raise CorruptCheckpointError(
                f"{self.index_path} has no bundle header (empty key). " + _FIX
            )
        header = decode_header(items[0][1])
        if not 1 <= header.num_shards <= MAX_SHARDS:
            raise CorruptCheckpointError(
                f"{self.index_path}: header declares {header.num_shards} data shards, "
                f"expected 1 to {MAX_SHARDS}. " + _FIX
            )
        if header.endianness not in (0, 1) or header.min_consumer > 1 or 1 in header.bad_consumers:
            raise UnsupportedCheckpointError(
                f"{self.index_path}: bundle endianness {header.endianness}, format version "
                f"{header.producer} (min consumer {header.min_consumer}, bad consumers "
                f"{list(header.bad_consumers)[:4]}); ckptbridge reads format version 1 bundles. "
                "Re-save the checkpoint with a TensorFlow 2.x release."
            )
        self.num_shards = header.num_shards
        self.big_endian = header.endianness == 1
        keys, values = [k for k, _ in items[1:]], [v for _, v in items[1:]]
        items.clear()  # the raw table is no longer needed: lower the peak memory
        protos = dict(zip(keys, decode_entries(values), strict=True))
        del keys, values
        # A key is a slice exactly when a partitioned entry names it, as TensorFlow's
        # CheckpointReader decides; any other key (even one starting with NUL) is an entry.
        slice_keys = {slice_key(k, extents) for k, p in protos.items() for extents in p.slices}
        named: dict[str, EntryProto] = {}
        if not slice_keys and (decoded := _decode_keys(protos)) is not None:
            named = decoded
        for key, proto in protos.items() if not named else ():
            if key in slice_keys:
                continue
            name = key.decode("utf-8", "replace")
            if name in named:
                raise CorruptCheckpointError(
                    f"{self.index_path}: keys {name!r} ... are not UTF-8 and collide once "
                    "decoded, so entries would be lost. " + _FIX
                )
            named[name] = proto
            if proto.slices:
                self._slices[name] = [
                    (extents, protos.get(slice_key(key, extents), _MISSING))
                    for extents in proto.slices
                ]
        # Checks per entry, with what depends only on (dtype, shape) worked out once per pair.
        kinds: dict[tuple[int, tuple[int, ...]], tuple[str, int]] = {}
        self._protos = cast(dict[str, EntryProto | bytes], named)
        entries, shards = self.entries, self.num_shards
        for name, proto in named.items():
            kind = kinds.get((proto.dtype, proto.shape))
            if kind is None:
                kind = kinds[proto.dtype, proto.shape] = self._kind(name, proto)
            dtype, needed = kind
            if proto.slices:
                nbytes = self._validate_slices(name, proto, dtype)
                entries[name] = new_entry(name, dtype, proto.shape, nbytes, True)
                continue
            if proto.size != needed or not 0 <= proto.shard_id < shards or proto.offset < 0:
                self._validate_stored(name, proto, dtype)  # strings, or an error to explain
            entries[name] = new_entry(name, dtype, proto.shape, proto.size, False)

    def _load_stored(self, data: bytes) -> bool:
        """The header and entries of an index as TensorFlow writes it for unpartitioned
        variables, in one pass over its data blocks (each checked by :func:`data_blocks`), no
        list of items: each record taken as :func:`decode_record`'s fast path takes it (the usual
        one- to four-byte offsets and sizes read inline, anything else through
        :data:`STORED_TAIL`), dtype and shape decoded once per distinct prefix, the checks of
        :meth:`_load` made on the fields, the record kept as its bytes (no object per record).
        Returns False at the first thing it does not take (a damaged table, a slice, another
        layout, a key that is not UTF-8, a check that fails), having set nothing but
        ``num_shards``: the caller then reads the table and :meth:`_load` decodes and checks
        everything as usual, giving the same entries or error.
        """
        try:
            return self._load_blocks(data_blocks(data, str(self.index_path)))
        except (TableError, ProtoError, IndexError, UnicodeDecodeError):
            return False

    def _load_blocks(self, blocks: Iterator[bytes]) -> bool:
        block = next(blocks, b"")
        limit = block_limit(block)
        if limit < 3 or block[0] != 0 or block[2] >= 0x80:  # the header: the first, empty key
            return False
        pos = 3 + block[1]
        end = pos + block[2]
        if block[1] != 0 or end > limit:
            return False
        header = decode_header(block[pos:end])
        shards = header.num_shards
        if not 1 <= shards <= MAX_SHARDS or header.endianness not in (0, 1):
            return False
        if header.min_consumer > 1 or 1 in header.bad_consumers:
            return False
        self.num_shards = shards  # for _sized (what _load sets again if this returns False)
        entries: dict[str, Entry] = {}
        protos: dict[str, EntryProto | bytes] = {}
        kinds: dict[bytes, tuple[str, tuple[int, ...], int] | None] = {}
        ends: dict[int, int] = {}
        top = 0  # the end of the data in shard 0
        tail = STORED_TAIL.fullmatch
        new_object, (set_key, set_dtype, set_shape, set_nbytes, set_sliced) = ENTRY_MAKER
        key = last = b""
        pos = end
        while True:  # `while True` loops: CPython 3.11 specializes a function called once only
            while True:  # at an unconditional backward jump, never at a `while cond` loop's
                if pos >= limit:
                    break
                shared, unshared, size = block[pos], block[pos + 1], block[pos + 2]
                if shared | unshared | size < 0x80 and pos + 3 <= limit:
                    pos += 3  # the common case: three one-byte varints
                else:
                    shared, pos = read_varint(block, pos, limit=5)
                    unshared, pos = read_varint(block, pos, limit=5)
                    size, pos = read_varint(block, pos, limit=5)
                start = pos + unshared
                pos = start + size
                if shared > len(key) or pos > limit:
                    return False
                key = (
                    key[:shared] + block[start - unshared : start]
                    if shared
                    else block[start - unshared : start]
                )
                if key <= last or key[0] == 0:  # out of order; a slice key (or a NUL-led name)
                    return False
                last = key
                # The record: dtype, shape (``head``), then shard_id, offset, size and crc32c as
                # STORED_TAIL takes them, the usual varints read here, the others by STORED_TAIL.
                cut = start + 4 + block[start + 3]
                if block[start] != 0x08 or block[start + 2] != 0x12 or cut + 5 > pos:
                    return False
                if block[start + 1] | block[start + 3] >= 0x80:
                    return False
                name = key.decode("utf-8")
                head = block[start:cut]
                kind = kinds.get(head, _UNKNOWN)
                if kind is _UNKNOWN:
                    kind = kinds[head] = self._stored_kind(name, head)
                if kind is None:
                    return False
                dtype, shape, needed = kind
                at, offset, stored, shard_id = cut, 0, 0, 0
                tag = block[at]
                if tag == 0x20:  # offset: one to four bytes (below 256 MB)
                    byte = block[at + 1]
                    if byte < 0x80:
                        offset, at = byte, at + 2
                    else:
                        offset, byte = byte & 0x7F, block[at + 2]
                        if byte < 0x80:
                            offset, at = offset | byte << 7, at + 3
                        else:
                            offset, byte = offset | (byte & 0x7F) << 7, block[at + 3]
                            if byte < 0x80:
                                offset, at = offset | byte << 14, at + 4
                            elif block[at + 4] < 0x80:
                                offset |= (byte & 0x7F) << 14 | block[at + 4] << 21
                                at += 5
                            else:
                                at = -1
                    tag = block[at]
                if tag == 0x28 and at > 0:  # size: one to three bytes (below 2 MB)
                    byte = block[at + 1]
                    if byte < 0x80:
                        stored, at = byte, at + 2
                    else:
                        stored, byte = byte & 0x7F, block[at + 2]
                        if byte < 0x80:
                            stored, at = stored | byte << 7, at + 3
                        elif block[at + 3] < 0x80:
                            stored |= (byte & 0x7F) << 7 | block[at + 3] << 14
                            at += 4
                        else:
                            at = -1
                    tag = block[at]
                if tag != 0x35 or at + 5 != pos:  # another layout, longer varints, a shard_id
                    found = tail(block, cut, pos)
                    if found is None:
                        return False
                    shard, offset_bytes, size_bytes, _ = found.groups()
                    offset, stored = varint_of(offset_bytes), varint_of(size_bytes)
                    shard_id = 0 if shard is None else as_int32(varint_of(shard))
                    if not 0 <= shard_id < shards:
                        return False
                if stored != needed and not self._sized(name, block[start:pos], dtype, needed):
                    return False
                stop = offset + stored  # at most 9-byte varints: never negative
                if shard_id == 0:
                    if stop > top:
                        top = stop
                elif stop > ends.get(shard_id, 0):
                    ends[shard_id] = stop
                entry = new_object(Entry)  # new_entry(name, dtype, shape, stored, False), inline
                set_key(entry, name)
                set_dtype(entry, dtype)
                set_shape(entry, shape)
                set_nbytes(entry, stored)
                set_sliced(entry, False)
                entries[name] = entry
                protos[name] = block[start:pos]
            if pos != limit:
                return False
            following = next(blocks, None)
            if following is None:
                break
            block, limit = following, block_limit(following)
            key, pos = b"", 0
        if top > ends.get(0, 0):
            ends[0] = top
        self.big_endian = header.endianness == 1
        self.entries, self._protos, self._ends = entries, protos, ends
        return True

    def _stored_kind(self, name: str, head: bytes) -> tuple[str, tuple[int, ...], int] | None:
        """:meth:`_kind` of a record's dtype and shape fields, or None if they do not decode or
        fail its checks (then :meth:`_load` reports it)."""
        try:
            proto = decode_entry(head)
            dtype, needed = self._kind(name, proto)
        except (ProtoError, CorruptCheckpointError):
            return None
        return dtype, proto.shape, needed

    def _sized(self, name: str, value: bytes, dtype: str, needed: int) -> bool:
        """Whether a record whose size is not ``needed`` passes :meth:`_validate_stored`
        (strings and dtypes without a numpy form have no fixed size)."""
        if needed >= 0:
            return False
        try:
            self._validate_stored(name, decode_entry(value), dtype)
        except (ProtoError, CorruptCheckpointError):
            return False
        return True

    def _proto(self, key: str) -> EntryProto:
        proto = self._protos[key]
        if isinstance(proto, bytes):  # decoded once, when first read
            proto = self._protos[key] = decode_record(proto)
        return proto

    def _kind(self, key: str, proto: EntryProto) -> tuple[str, int]:
        """The dtype name and the exact byte size (-1: not fixed) of ``proto``'s dtype and shape."""
        dtype = dtype_label(proto.dtype, f"dtype{proto.dtype}")
        # Non-empty shapes are bounded by the bytes stored; numpy also bounds empty ones.
        extent = math.prod(max(dim, 1) for dim in proto.shape) if 0 in proto.shape else 0
        if len(proto.shape) > _MAX_RANK or extent >= _MAX_EXTENT:
            raise CorruptCheckpointError(
                f"{self.index_path}: entry {key!r}: shape {list(proto.shape)[:8]} (rank "
                f"{len(proto.shape)}) cannot be represented: at most rank {_MAX_RANK} and "
                f"{_MAX_EXTENT} elements. " + _FIX
            )
        if not has_numpy_form(dtype) or dtype == "string":
            return dtype, -1
        return dtype, math.prod(proto.shape) * itemsize(dtype)

    def _validate_stored(self, key: str, proto: EntryProto, dtype: str) -> None:
        where = f"{self.index_path}: entry {key!r}"
        if not 0 <= proto.shard_id < self.num_shards or proto.offset < 0 or proto.size < 0:
            raise CorruptCheckpointError(
                f"{where} points to shard {proto.shard_id} offset {proto.offset} size {proto.size}, "
                f"expected a shard in 0..{self.num_shards - 1} and non-negative offsets. " + _FIX
            )
        if not has_numpy_form(dtype):
            return
        count = math.prod(proto.shape)
        if dtype == "string":  # one varint per element, a 4-byte checksum, then the bytes
            ok = count + 4 <= proto.size
            expected = f"at least {count + 4}"
        else:
            needed = count * itemsize(dtype)
            ok, expected = proto.size == needed, str(needed)
        if not ok:
            raise CorruptCheckpointError(
                f"{where}: shape {list(proto.shape)} of {dtype} needs {expected} bytes, "
                f"the index records {proto.size}. " + _FIX
            )

    def _validate_slices(self, key: str, proto: EntryProto, dtype: str) -> int:
        where = f"{self.index_path}: partitioned entry {key!r}"
        covered = nbytes = 0
        boxes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        for extents, stored in self._slices[key]:
            shape = self._slice_shape(where, proto.shape, extents)
            if (
                stored is _MISSING
                or stored.slices
                or stored.dtype != proto.dtype
                or stored.shape != shape
            ):
                raise CorruptCheckpointError(
                    f"{where}: slice {extents} of shape {list(shape)} is missing from the index "
                    "or has a different dtype/shape. " + _FIX
                )
            self._validate_stored(key, stored, dtype)
            covered += math.prod(shape)
            nbytes += stored.size
            if math.prod(shape):
                starts = tuple(start for start, _ in extents)
                boxes.append((starts, tuple(a + n for a, n in zip(starts, shape, strict=True))))
        overlap = _overlap(where, boxes)  # checked before anything is allocated
        if overlap:  # the other entries stay readable; reading this one fails
            self._broken[key] = overlap
        elif covered != math.prod(proto.shape):
            raise CorruptCheckpointError(
                f"{where}: its slices hold {covered} elements, the full shape "
                f"{list(proto.shape)} needs {math.prod(proto.shape)}. " + _FIX
            )
        return nbytes

    @staticmethod
    def _slice_shape(where: str, full: tuple[int, ...], extents: list[Extent]) -> tuple[int, ...]:
        if len(extents) != len(full):
            raise CorruptCheckpointError(
                f"{where}: slice rank {len(extents)} != tensor rank {len(full)}"
            )
        shape = []
        for (start, length), dim in zip(extents, full, strict=True):
            size = dim - start if length is None else length
            if start < 0 or size < 0 or start + size > dim:
                raise CorruptCheckpointError(
                    f"{where}: slice [{start}, +{length}) lies outside a dimension of size {dim}"
                )
            shape.append(size)
        return tuple(shape)

    def _stored_protos(self) -> list[EntryProto]:
        out = [p for p in self._protos.values() if isinstance(p, EntryProto) and not p.slices]
        return out + [stored for parts in self._slices.values() for _, stored in parts]

    def _shard_ends(self) -> dict[int, int]:
        """Shard -> the end of the data the index places in it (shards with data only)."""
        if self._ends is not None:
            return {shard: end for shard, end in self._ends.items() if end > 0}
        needed: dict[int, int] = {}
        stored = self._stored_protos()
        if self.num_shards == 1:  # every shard_id was checked to be 0
            end = max([p.offset + p.size for p in stored], default=0)
            needed = {0: end} if end > 0 else {}
        for proto in stored if self.num_shards > 1 else ():
            end = proto.offset + proto.size
            if end > needed.get(proto.shard_id, 0):
                needed[proto.shard_id] = end
        return needed

    def _check_shards(self) -> None:
        for shard, end in sorted(self._shard_ends().items()):
            path = data_path(self.prefix, shard, self.num_shards)
            try:
                size = (
                    path.store.size(path)
                    if isinstance(path, RemotePath)
                    else regular_stat(path, "data shard").st_size
                )
            except CheckpointNotFoundError:
                if isinstance(path, Path) and os.path.lexists(path):  # a dangling link, ...
                    raise
                present = sorted(
                    p.name for p in self.prefix.parent.glob(self.prefix.name + ".data-*")
                )
                raise CheckpointNotFoundError(
                    f"data shard {path} is missing; the index {self.index_path.name} needs "
                    f"{self.num_shards} shard(s), found {present or 'none'}. Copy every "
                    f"{self.prefix.name}.data-* file next to the index."
                ) from None
            if end > size:
                raise CorruptCheckpointError(
                    f"{path} is {size} bytes but the index places data up to byte {end}; the "
                    "shard is truncated. " + _FIX
                )

    # -- reading -------------------------------------------------------------------------------
    def _fd(self, shard: int) -> int:
        fd = self._fds.get(shard)
        if fd is None:
            local = cast(Path, data_path(self.prefix, shard, self.num_shards))  # not remote
            fd = self._fds[shard] = open_regular(local, "data shard")
        return fd

    def _truncated(self, key: str, proto: EntryProto, size: int) -> CorruptCheckpointError:
        return CorruptCheckpointError(
            f"{data_path(self.prefix, proto.shard_id, self.num_shards)} is {size} bytes but entry "
            f"{key!r} ends at byte {proto.offset + proto.size}: the shard was truncated or "
            "replaced after it was opened. " + _FIX
        )

    def _view(self, key: str, proto: EntryProto) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """The stored bytes as a view of the mapped shard, after checking the file still holds
        them (the check makes truncation before the read a clean error; see ``copy=True``).
        A remote shard has nothing to map: the bytes are fetched by range, read-only."""
        import numpy as np

        shard = data_path(self.prefix, proto.shard_id, self.num_shards)
        if isinstance(shard, RemotePath):
            fetched = self._fetch(key, proto, shard)
            fetched.flags.writeable = False
            return fetched
        fd = self._fd(proto.shard_id)
        end = proto.offset + proto.size
        size = os.fstat(fd).st_size
        mapped = self._maps.get(proto.shard_id)
        if mapped is None and end <= size:
            try:
                mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            except OSError as exc:  # ENOMEM under an address-space limit (ulimit -v)
                raise os_error(exc, shard, "data shard") from None
            self._maps[proto.shard_id] = mapped
        if mapped is None or end > size or end > len(mapped):
            raise self._truncated(key, proto, size)
        return np.frombuffer(mapped, np.uint8, count=proto.size, offset=proto.offset)

    def _copy(self, key: str, proto: EntryProto) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """The stored bytes read with ``pread`` into a new array (a short read is an error);
        a remote shard's by ranged requests."""
        import numpy as np

        shard = data_path(self.prefix, proto.shard_id, self.num_shards)
        if isinstance(shard, RemotePath):
            return self._fetch(key, proto, shard)
        fd = self._fd(proto.shard_id)
        out = np.empty(proto.size, np.uint8)
        view = out.data  # a writable memoryview of the new array
        done = 0
        try:
            while done < proto.size:
                got = os.preadv(fd, [view[done:]], proto.offset + done)
                if got <= 0:
                    raise self._truncated(key, proto, os.fstat(fd).st_size)
                done += got
        except OSError as exc:
            path = data_path(self.prefix, proto.shard_id, self.num_shards)
            raise os_error(exc, str(path), "data shard") from None
        finally:
            view.release()
        return out

    def _stored_bytes(self, key: str, proto: EntryProto) -> bytes:
        """The stored bytes as ``bytes`` (``pread``, or ranged requests): :meth:`_copy` without
        numpy, for string entries."""
        shard = data_path(self.prefix, proto.shard_id, self.num_shards)
        if isinstance(shard, RemotePath):
            data = b"".join(shard.store.read_parts(shard, proto.offset, proto.size))
            if len(data) != proto.size:
                raise self._truncated(key, proto, proto.offset + len(data))
            return data
        fd = self._fd(proto.shard_id)
        parts: list[bytes] = []
        done = 0
        try:
            while done < proto.size:
                part = os.pread(fd, proto.size - done, proto.offset + done)
                if not part:
                    raise self._truncated(key, proto, os.fstat(fd).st_size)
                parts.append(part)
                done += len(part)
        except OSError as exc:
            raise os_error(exc, str(shard), "data shard") from None
        return b"".join(parts)

    def read_strings(self, key: str) -> list[bytes]:
        """The elements of the string entry ``key``, flat, as bytes (checked; no numpy).

        Example: ``reader.read_strings("_CHECKPOINTABLE_OBJECT_GRAPH")[0]``.
        """
        proto = self._proto(key)
        if self.entries[key].dtype != "string":
            raise UnsupportedCheckpointError(
                f"{self.prefix}: entry {key!r} holds {self.entries[key].dtype}, not strings; "
                "read it with read()"
            )
        if proto.slices:  # partitioned: assembled as an array
            return [bytes(v) for v in self.read(key).reshape(-1)]
        if key in self._broken:
            raise CorruptCheckpointError(self._broken[key])
        with corrupt_guard(f"{self.prefix}: entry {key!r}"):
            return self._stored_strings(key, proto)

    def _stored_strings(self, key: str, proto: EntryProto) -> list[bytes]:
        try:
            values, crc = decode_string_list(self._stored_bytes(key, proto), math.prod(proto.shape))
        except ValueError as exc:
            raise CorruptCheckpointError(
                f"{self.prefix}: string entry {key!r}: {exc}. " + _FIX
            ) from None
        self._check_crc(key, proto, crc)
        return values

    def _fetch(
        self, key: str, proto: EntryProto, path: RemotePath
    ) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """A remote entry's bytes, fetched by range (parallel parts) into a new array."""
        import numpy as np

        out = np.empty(proto.size, np.uint8)
        done = 0
        for part in path.store.read_parts(path, proto.offset, proto.size):
            if not part:
                break
            out[done : done + len(part)] = np.frombuffer(part, np.uint8)
            done += len(part)
        if done != proto.size:
            raise self._truncated(key, proto, proto.offset + done)
        return out

    def _check_crc(self, key: str, proto: EntryProto, actual: int) -> None:
        if actual != unmask_crc(proto.crc32c):
            path = data_path(self.prefix, proto.shard_id, self.num_shards)
            raise CorruptCheckpointError(
                f"{path}: entry {key!r} (bytes {proto.offset}..{proto.offset + proto.size}) fails its "
                f"CRC32C check: the index records 0x{unmask_crc(proto.crc32c):08x}, the data gives "
                f"0x{actual:08x}. " + _FIX
            )

    def _check_numpy_form(self, key: str, dtype: str) -> None:
        if not has_numpy_form(dtype):
            raise UnsupportedCheckpointError(
                f"{self.prefix}: entry {key!r} holds {dtype} data, which has no numpy form; "
                "skip this key (it is not a variable value)"
            )

    def _read_stored(
        self, key: str, proto: EntryProto, dtype: str, copy: bool
    ) -> np.ndarray[Any, Any]:
        import numpy as np

        if dtype == "string":  # decoded into new bytes objects: always read as a copy
            values = np.empty(math.prod(proto.shape), dtype=object)
            values[:] = self._stored_strings(key, proto)
            return values.reshape(proto.shape)
        if proto.size == 0:
            return np.zeros(proto.shape, numpy_dtype(dtype))
        raw = self._copy(key, proto) if copy else self._view(key, proto)
        self._check_crc(key, proto, google_crc32c.value(raw))
        array = raw.view(numpy_dtype(dtype)).reshape(proto.shape)
        if self.big_endian:
            array = array.byteswap(inplace=copy) if copy else array.byteswap()
        return array

    def read(self, key: str, *, copy: bool = False) -> np.ndarray[Any, Any]:
        """Return the tensor stored under ``key`` (see :meth:`Checkpoint.read`)."""
        import numpy as np

        proto = self._proto(key)
        dtype = self.entries[key].dtype
        self._check_numpy_form(key, dtype)
        if key in self._broken:
            raise CorruptCheckpointError(self._broken[key])
        with corrupt_guard(f"{self.prefix}: entry {key!r}"):
            if not proto.slices:
                return self._read_stored(key, proto, dtype, copy)
            # The slices were checked to tile the tensor exactly when the index was opened.
            out = np.empty(proto.shape, dtype=numpy_dtype(dtype))
            for extents, stored in self._slices[key]:
                index = tuple(
                    slice(start, None if length is None else start + length)
                    for start, length in extents
                )
                out[index] = self._read_stored(key, stored, dtype, copy)
            out.flags.writeable = copy
            return out

    def raw_location(self, key: str) -> RawLocation | None:
        """Return where the raw bytes of ``key`` are, or None for sliced and string entries."""
        proto = self._proto(key)
        entry = self.entries[key]
        if proto.slices or entry.dtype == "string" or self.big_endian:
            return None
        path = data_path(self.prefix, proto.shard_id, self.num_shards)
        return RawLocation(path, proto.offset, proto.size, proto.crc32c, entry.dtype, entry.shape)

    def close(self) -> None:
        """Unmap the shards (arrays still referencing a map keep it alive until they are freed)."""
        for mapped in self._maps.values():
            with contextlib.suppress(BufferError):  # numpy views still use it: freed with them
                mapped.close()
        for fd in self._fds.values():
            os.close(fd)
        self._maps.clear()
        self._fds.clear()


_MISSING = EntryProto(dtype=-1)
_UNKNOWN: Any = object()


def _overlap(where: str, boxes: list[tuple[tuple[int, ...], tuple[int, ...]]]) -> str | None:
    """Describe the first two (non-empty) boxes ``(starts, ends)`` that overlap, or None.

    Sweeps along the axis with the most distinct starts, so slices along one axis (how
    TensorFlow partitions) cost ``n log n``; a slice listed twice overlaps itself.
    """
    if len(boxes) < 2:
        return None
    axis = max(range(len(boxes[0][0])), key=lambda d: len({b[0][d] for b in boxes}), default=0)
    rank = len(boxes[0][0])
    ordered = sorted(boxes, key=lambda b: b[0][axis] if rank else 0)
    active: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    checks = 0
    for box in ordered:
        if rank:
            active = [a for a in active if a[1][axis] > box[0][axis]]
        for other in active:
            checks += 1
            if all(other[0][d] < box[1][d] and box[0][d] < other[1][d] for d in range(rank)):
                return (
                    f"{where}: slice at {list(box[0])} overlaps the slice at {list(other[0])}, "
                    "so part of the tensor is never stored. " + _FIX
                )
        if checks > _MAX_PAIR_CHECKS:
            raise UnsupportedCheckpointError(
                f"{where}: {len(boxes)} slices are too many to check for overlaps; "
                "ckptbridge reads variables split into at most a few thousand slices."
            )
        active.append(box)
    return None
