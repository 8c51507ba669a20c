"""Native reader of the tensor-bundle (V2) format: ``<prefix>.index`` + ``<prefix>.data-*``.

Opening reads and validates the whole index (a few kB); data shards are memory-mapped on first
read and tensors are returned as read-only numpy views of the mapped pages::

    reader = BundleReader(Path("old/model.ckpt-1000"))
    kernel = reader.read("dense/kernel")
"""

from __future__ import annotations

import contextlib
import math
import mmap
from pathlib import Path
from typing import Any, BinaryIO

import google_crc32c
import numpy as np

from ckptbridge._errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsupportedCheckpointError,
)
from ckptbridge.format._bundle_proto import (
    EntryProto,
    decode_entry,
    decode_header,
    encode_slice_key,
)
from ckptbridge.format._dtypes import dtype_label, has_numpy_form, numpy_dtype
from ckptbridge.format._proto import ProtoError
from ckptbridge.format._strings import decode_strings
from ckptbridge.format._table import TableError, read_table, unmask_crc
from ckptbridge.format._types import Entry, RawLocation

MAX_SHARDS = 99999  # TensorFlow names shards with five digits
_MAX_RANK = 64  # numpy's limit
_MAX_EXTENT = 1 << 56  # keeps shape products x itemsize (<= 16) inside numpy's intp
_FIX = "The file is damaged or incomplete; copy it again from its source."


def data_path(prefix: Path, shard: int, num_shards: int) -> Path:
    """Return the path of one data shard, as TensorFlow names it.

    Example::

        >>> data_path(Path("m.ckpt"), 0, 1).name
        'm.ckpt.data-00000-of-00001'
    """
    return prefix.with_name(f"{prefix.name}.data-{shard:05d}-of-{num_shards:05d}")


class BundleReader:
    """Reads one tensor bundle; see the module docstring."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = prefix
        self.index_path = prefix.with_name(prefix.name + ".index")
        self._maps: dict[int, tuple[BinaryIO, mmap.mmap | None]] = {}
        self._protos: dict[str, EntryProto] = {}
        self._slice_protos: dict[bytes, EntryProto] = {}
        self.entries: dict[str, Entry] = {}
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            raise CheckpointNotFoundError(
                f"checkpoint index {self.index_path} does not exist"
            ) from None
        try:
            items = read_table(data, str(self.index_path))
        except TableError as exc:
            raise CorruptCheckpointError(
                f"{self.index_path} is not a readable checkpoint index: {exc}. "
                "Expected a TensorFlow tensor-bundle index (LevelDB table). " + _FIX
            ) from None
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
        if header.endianness not in (0, 1) or header.min_consumer > 1:
            raise UnsupportedCheckpointError(
                f"{self.index_path}: bundle endianness {header.endianness}, format version "
                f"{header.producer} (min consumer {header.min_consumer}); ckptbridge reads format "
                "version 1 bundles. Re-save the checkpoint with a TensorFlow 2.x release."
            )
        self.num_shards = header.num_shards
        self.big_endian = header.endianness == 1
        for key, value in items[1:]:
            proto = decode_entry(value)
            if key.startswith(b"\x00"):
                self._slice_protos[key] = proto
            else:
                name = key.decode("utf-8", "replace")
                if name in self._protos:
                    raise CorruptCheckpointError(
                        f"{self.index_path}: keys {name!r} ... are not UTF-8 and collide once "
                        "decoded, so entries would be lost. " + _FIX
                    )
                self._protos[name] = proto
        for name, entry_proto in self._protos.items():
            self.entries[name] = self._validate(name, entry_proto)

    def _validate(self, key: str, proto: EntryProto) -> Entry:
        dtype = dtype_label(proto.dtype, f"dtype{proto.dtype}")
        # Non-empty shapes are bounded by the bytes stored; numpy also bounds empty ones.
        extent = math.prod(max(dim, 1) for dim in proto.shape) if 0 in proto.shape else 0
        if len(proto.shape) > _MAX_RANK or extent >= _MAX_EXTENT:
            raise CorruptCheckpointError(
                f"{self.index_path}: entry {key!r}: shape {list(proto.shape)[:8]} (rank "
                f"{len(proto.shape)}) cannot be represented: at most rank {_MAX_RANK} and "
                f"{_MAX_EXTENT} elements. " + _FIX
            )
        if proto.slices:
            nbytes = self._validate_slices(key, proto, dtype)
            return Entry(key, dtype, proto.shape, nbytes, True)
        self._validate_stored(key, proto, dtype)
        return Entry(key, dtype, proto.shape, proto.size, False)

    def _validate_stored(self, key: str, proto: EntryProto, dtype: str) -> None:
        where = f"{self.index_path}: entry {key!r}"
        if not 0 <= proto.shard_id < self.num_shards or proto.offset < 0 or proto.size < 0:
            raise CorruptCheckpointError(
                f"{where} points to shard {proto.shard_id} offset {proto.offset} size {proto.size}, "
                f"expected a shard in 0..{self.num_shards - 1} and non-negative offsets. " + _FIX
            )
        count = math.prod(proto.shape)
        if not has_numpy_form(dtype):
            return
        if dtype == "string":  # one varint per element, a 4-byte checksum, then the bytes
            ok = count + 4 <= proto.size
            expected = f"at least {count + 4}"
        else:
            needed = count * numpy_dtype(dtype).itemsize
            ok, expected = proto.size == needed, str(needed)
        if not ok:
            raise CorruptCheckpointError(
                f"{where}: shape {list(proto.shape)} of {dtype} needs {expected} bytes, "
                f"the index records {proto.size}. " + _FIX
            )

    def _validate_slices(self, key: str, proto: EntryProto, dtype: str) -> int:
        where = f"{self.index_path}: partitioned entry {key!r}"
        covered = nbytes = 0
        for extents in proto.slices:
            shape = self._slice_shape(where, proto.shape, extents)
            stored = self._slice_protos.get(encode_slice_key(key, extents))
            if (
                stored is None
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
        if covered != math.prod(proto.shape):
            raise CorruptCheckpointError(
                f"{where}: its slices hold {covered} elements, the full shape "
                f"{list(proto.shape)} needs {math.prod(proto.shape)}. " + _FIX
            )
        return nbytes

    @staticmethod
    def _slice_shape(
        where: str, full: tuple[int, ...], extents: list[tuple[int, int | None]]
    ) -> tuple[int, ...]:
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

    def _check_shards(self) -> None:
        needed: dict[int, int] = {}
        stored = [p for p in self._protos.values() if not p.slices]
        for proto in [*stored, *self._slice_protos.values()]:
            needed[proto.shard_id] = max(needed.get(proto.shard_id, 0), proto.offset + proto.size)
        for shard, end in sorted(needed.items()):
            path = data_path(self.prefix, shard, self.num_shards)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
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
    def _map(self, shard: int) -> mmap.mmap | None:
        if shard not in self._maps:
            path = data_path(self.prefix, shard, self.num_shards)
            handle = path.open("rb")
            size = path.stat().st_size
            self._maps[shard] = (
                handle,
                mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if size else None,
            )
        return self._maps[shard][1]

    def _bytes(self, key: str, proto: EntryProto) -> np.ndarray[Any, np.dtype[np.uint8]]:
        if proto.size == 0:
            return np.zeros(0, np.uint8)
        mapped = self._map(proto.shard_id)
        if mapped is None:
            raise CorruptCheckpointError(f"data shard {proto.shard_id} of {self.prefix} is empty")
        if proto.offset + proto.size > len(mapped):  # the shard shrank after it was opened
            raise CorruptCheckpointError(
                f"{data_path(self.prefix, proto.shard_id, self.num_shards)} is {len(mapped)} bytes "
                f"but entry {key!r} ends at byte {proto.offset + proto.size}. " + _FIX
            )
        return np.frombuffer(mapped, np.uint8, count=proto.size, offset=proto.offset)

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

    def _read_stored(self, key: str, proto: EntryProto, dtype: str) -> np.ndarray[Any, Any]:
        self._check_numpy_form(key, dtype)
        raw = self._bytes(key, proto)
        if dtype == "string":
            try:
                values, crc = decode_strings(raw, math.prod(proto.shape))
            except ValueError as exc:
                raise CorruptCheckpointError(
                    f"{self.prefix}: string entry {key!r}: {exc}. " + _FIX
                ) from None
            self._check_crc(key, proto, crc)
            return values.reshape(proto.shape)
        self._check_crc(key, proto, google_crc32c.value(raw))
        array = raw.view(numpy_dtype(dtype)).reshape(proto.shape)
        if self.big_endian:
            array = array.view(array.dtype.newbyteorder(">")).astype(array.dtype)
        return array

    def read(self, key: str) -> np.ndarray[Any, Any]:
        """Return the tensor stored under ``key`` (see :meth:`Checkpoint.read`)."""
        proto = self._protos[key]
        dtype = self.entries[key].dtype
        if not proto.slices:
            return self._read_stored(key, proto, dtype)
        self._check_numpy_form(key, dtype)
        out = np.empty(proto.shape, dtype=numpy_dtype(dtype))
        filled = np.zeros(proto.shape, dtype=bool)  # slices must tile the tensor exactly
        for extents in proto.slices:
            stored = self._slice_protos[encode_slice_key(key, extents)]
            index = tuple(
                slice(start, None if length is None else start + length)
                for start, length in extents
            )
            if filled[index].any():
                raise CorruptCheckpointError(
                    f"{self.index_path}: partitioned entry {key!r}: slice {extents} overlaps "
                    "another slice, so part of the tensor is never stored. " + _FIX
                )
            filled[index] = True
            out[index] = self._read_stored(key, stored, dtype)
        out.flags.writeable = False
        return out

    def raw_location(self, key: str) -> RawLocation | None:
        """Return where the raw bytes of ``key`` are, or None for sliced and string entries."""
        proto = self._protos[key]
        entry = self.entries[key]
        if proto.slices or entry.dtype == "string" or self.big_endian:
            return None
        path = data_path(self.prefix, proto.shard_id, self.num_shards)
        return RawLocation(path, proto.offset, proto.size, proto.crc32c, entry.dtype, entry.shape)

    def close(self) -> None:
        """Unmap the shards (arrays still referencing a map keep it alive until they are freed)."""
        for handle, mapped in self._maps.values():
            if mapped is not None:
                with contextlib.suppress(BufferError):  # numpy views still use it: freed with them
                    mapped.close()
            handle.close()
        self._maps.clear()
