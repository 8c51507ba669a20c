"""Native reader of the pre-2017 V1 single-file checkpoint format (no TensorFlow import).

A V1 file is a LevelDB table (the container of a bundle's ``.index``). The empty key holds a
``SavedTensorSliceMeta`` (each tensor's name, shape, dtype and stored slices); every slice is a
``SavedSlice`` record under ``checkpoint::EncodeTensorNameSlice(name, slice)``, its values in a
``TensorProto`` (see :mod:`ckptbridge.format._v1_proto`). Opening reads the footer, the index
block and the metadata; a read fetches and checks (CRC32C) only the blocks of that tensor's
slices. A sharded save (``export-00000-of-00002``) is read across all its files::

    reader = V1Reader(Path("model.ckpt"))
    reader.read("Variable")
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import struct
from dataclasses import dataclass
from typing import IO, Any

import google_crc32c
import numpy as np

from ckptbridge._errors import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    UnsupportedCheckpointError,
)
from ckptbridge.format._bundle_proto import Extent, encode_slice_key
from ckptbridge.format._dtypes import dtype_label, has_numpy_form, numpy_dtype
from ckptbridge.format._proto import ProtoError
from ckptbridge.format._resolve import has_table_magic, not_a_checkpoint_hint
from ckptbridge.format._snappy import SnappyError, decompress
from ckptbridge.format._storage import Location
from ckptbridge.format._table import (
    FOOTER_SIZE,
    MAGIC,
    TRAILER_SIZE,
    TableError,
    _block_entries,
    _handle,
    unmask_crc,
)
from ckptbridge.format._types import Entry
from ckptbridge.format._v1_proto import (
    TensorMeta,
    decode_meta,
    decode_saved_slice,
    decode_values,
)

_FIX = "The file is damaged or incomplete; copy it again from its source."
_EXPECTED = "Expected a TensorFlow V1 checkpoint (a LevelDB table of tensor slices)."
_SHARD = re.compile(r"-(\d{5})-of-(\d{5})$")
_MAX_RANK = 64  # numpy's limit
_MAX_EXTENT = 1 << 56  # keeps shape products x itemsize (<= 16) inside numpy's intp
# A snappy element expands at most 64 bytes from 3: a legitimate block (V1 data blocks hold whole
# slices, so they can be large) never declares more than this many times its compressed size.
_SNAPPY_RATIO = 22
_CHECKPOINT_VERSION = 1  # TF_CHECKPOINT_VERSION: readers accept min_consumer up to this


class _Table:
    """Key lookups in one table file: the index block is kept, data blocks are read on demand."""

    def __init__(self, path: Location) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("rb")
        self._cached: tuple[int, dict[bytes, bytes]] | None = None
        try:
            self._file.seek(0, 2)
            size = self._file.tell()
            if size < FOOTER_SIZE:
                raise TableError(f"{size} bytes, smaller than a table footer ({FOOTER_SIZE} bytes)")
            footer = self._pread(size - FOOTER_SIZE, FOOTER_SIZE)
            if struct.unpack_from("<Q", footer, 40)[0] != MAGIC:
                raise TableError(f"the file does not end with the table magic number 0x{MAGIC:x}")
            self._limit = size - FOOTER_SIZE
            _, _, pos = _handle(footer, 0)
            offset, length, _ = _handle(footer, pos)
            index = _block_entries(self._block(offset, length, "index"), "index")
            self._keys = [key for key, _ in index]
            self._handles = [_handle(handle, 0)[:2] for _, handle in index]
        except (TableError, ProtoError):
            self.close()
            raise
        if any(b <= a for a, b in itertools.pairwise(self._keys)):
            self.close()
            raise TableError("the index block's keys are not in strictly increasing order")

    def _pread(self, offset: int, length: int) -> bytes:
        self._file.seek(offset)
        data = self._file.read(length)
        if len(data) != length:  # the file shrank after it was opened
            raise TableError(f"the file ends before byte {offset + length}")
        return data

    def _block(self, offset: int, length: int, what: str) -> bytes:
        if offset + length + TRAILER_SIZE > self._limit:
            raise TableError(
                f"{what} block at byte {offset} with {length} bytes ends past the table data "
                f"({self._limit} bytes)"
            )
        contents = self._pread(offset, length)
        trailer = self._pread(offset + length, TRAILER_SIZE)
        kind, stored = trailer[0], struct.unpack_from("<I", trailer, 1)[0]
        if unmask_crc(stored) != google_crc32c.extend(google_crc32c.value(contents), bytes([kind])):
            raise TableError(f"{what} block at byte {offset}: checksum mismatch")
        if kind == 1:
            try:
                return decompress(contents, limit=_SNAPPY_RATIO * len(contents))
            except SnappyError as exc:
                raise TableError(
                    f"{what} block at byte {offset}: bad snappy data ({exc})"
                ) from None
        if kind != 0:
            raise TableError(f"{what} block at byte {offset} uses unknown compression type {kind}")
        return contents

    def get(self, key: bytes) -> bytes | None:
        """Return the value stored under ``key``, or None."""
        i = bisect.bisect_left(self._keys, key)  # the first block whose last key is >= key
        if i == len(self._keys):
            return None
        if self._cached is None or self._cached[0] != i:
            offset, length = self._handles[i]
            entries = _block_entries(self._block(offset, length, "data"), "data")
            self._cached = (i, dict(entries))
        return self._cached[1].get(key)

    def close(self) -> None:
        self._file.close()
        self._cached = None


@dataclass
class _Tensor:
    meta: TensorMeta
    dtype: str
    slices: list[tuple[list[Extent], int]]  # (extents, index of the file holding it)


def shard_files(path: Location) -> list[Location]:
    """The files of a V1 save: ``path`` itself, or every shard of ``name-NNNNN-of-MMMMM``.

    Example::

        >>> from pathlib import Path
        >>> [p.name for p in shard_files(Path("export-00001-of-00002"))]
        ['export-00000-of-00002', 'export-00001-of-00002']
    """
    found = _SHARD.search(path.name)
    if found is None or int(found.group(2)) <= 1:
        return [path]
    stem = path.name[: found.start()]
    count = int(found.group(2))
    return [path.with_name(f"{stem}-{i:05d}-of-{count:05d}") for i in range(count)]


def _first_overlap(boxes: list[list[tuple[int, int]]]) -> tuple[int, int] | None:
    """Indexes of two overlapping non-empty boxes, or None. A sweep along the axis with the most
    distinct starts: linear for partitioned variables, no allocation of the tensor."""
    live = [i for i, box in enumerate(boxes) if box and all(a < b for a, b in box)]
    if len(live) < 2:
        return None
    axis = max(range(len(boxes[live[0]])), key=lambda a: len({boxes[i][a][0] for i in live}))
    active: list[int] = []
    for i in sorted(live, key=lambda i: boxes[i][axis][0]):
        active = [j for j in active if boxes[j][axis][1] > boxes[i][axis][0]]
        for j in active:
            pairs = zip(boxes[i], boxes[j], strict=True)
            if all(max(s1, s2) < min(e1, e2) for (s1, e1), (s2, e2) in pairs):
                return j, i
        active.append(i)
    return None


class V1Reader:
    """Lists and reads a V1 checkpoint natively; see the module docstring."""

    def __init__(self, path: Location) -> None:
        self.path = path
        if not has_table_magic(path):
            raise CorruptCheckpointError(
                f"{path} is not a checkpoint: there is no {path.name}.index beside it and the file "
                f"does not end with the table magic number. {not_a_checkpoint_hint(path)}"
            )
        self._tables: list[_Table] = []
        self._tensors: dict[str, _Tensor] = {}
        try:
            for file in shard_files(path):
                self._open(file)
            self.entries: dict[str, Entry] = {
                name: self._validate(name, self._tensors[name]) for name in sorted(self._tensors)
            }
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------------
    def _open(self, file: Location) -> None:
        if not file.is_file():
            present = sorted(p.name for p in file.parent.glob(_SHARD.sub("", file.name) + "-*"))
            raise CheckpointNotFoundError(
                f"V1 checkpoint shard {file} is missing; {self.path.name} is one of "
                f"{len(shard_files(file))} shards, found {present or 'none'}. Copy every shard "
                "next to it."
            )
        try:
            table = _Table(file)
        except (TableError, ProtoError) as exc:
            raise CorruptCheckpointError(
                f"{file} is not a readable V1 checkpoint: {exc}. {_FIX}"
            ) from None
        self._tables.append(table)
        try:
            header = table.get(b"")
            meta = None if header is None else decode_meta(header)
        except (TableError, ProtoError) as exc:
            raise CorruptCheckpointError(
                f"{file}: the tensor list (the record under the empty key) does not decode "
                f"({exc}). {_FIX}"
            ) from None
        if meta is None:
            raise CorruptCheckpointError(
                f"{file} is a table without a V1 tensor list (SavedTensorSliceMeta under the "
                f"empty key). {_EXPECTED}"
            )
        if meta.min_consumer > _CHECKPOINT_VERSION:
            raise UnsupportedCheckpointError(
                f"{file}: V1 checkpoint version {meta.producer} needs a reader of version "
                f"{meta.min_consumer} or later; ckptbridge reads version {_CHECKPOINT_VERSION}. "
                "Re-save the checkpoint with the TensorFlow release that wrote it."
            )
        for tensor in meta.tensors:
            self._register(file, tensor, len(self._tables) - 1)

    def _register(self, file: Location, tensor: TensorMeta, table: int) -> None:
        known = self._tensors.get(tensor.name)
        if known is None:
            dtype = dtype_label(tensor.dtype, f"dtype{tensor.dtype}")
            self._tensors[tensor.name] = known = _Tensor(tensor, dtype, [])
        elif (known.meta.shape, known.meta.dtype) != (tensor.shape, tensor.dtype):
            raise CorruptCheckpointError(
                f"{file}: tensor {tensor.name!r} is listed twice, as {list(known.meta.shape)} "
                f"{known.dtype} and as {list(tensor.shape)} DataType {tensor.dtype}. {_FIX}"
            )
        known.slices.extend((extents, table) for extents in tensor.slices)

    def _validate(self, name: str, tensor: _Tensor) -> Entry:
        where = f"{self.path}: tensor {name!r}"
        shape = tensor.meta.shape
        extent = math.prod(max(dim, 1) for dim in shape)
        if len(shape) > _MAX_RANK or extent >= _MAX_EXTENT:
            raise CorruptCheckpointError(
                f"{where}: shape {list(shape)[:8]} (rank {len(shape)}) cannot be represented: at "
                f"most rank {_MAX_RANK} and {_MAX_EXTENT} elements. {_FIX}"
            )
        boxes = [self._box(where, shape, extents) for extents, _ in tensor.slices]
        covered = sum(math.prod(stop - start for start, stop in box) for box in boxes)
        if covered != math.prod(shape):
            raise CorruptCheckpointError(
                f"{where}: its slices hold {covered} elements, the full shape {list(shape)} "
                f"needs {math.prod(shape)}. {_FIX}"
            )
        overlap = _first_overlap(boxes)
        if overlap is not None:
            first, second = (tensor.slices[i][0] for i in overlap)
            raise CorruptCheckpointError(
                f"{where}: slices {first} and {second} overlap, so part of the tensor is never "
                f"stored. {_FIX}"
            )
        itemsize = numpy_dtype(tensor.dtype).itemsize if has_numpy_form(tensor.dtype) else 0
        if tensor.dtype == "string":
            itemsize = 0
        whole = len(boxes) == 1 and all(
            e[0] == 0 and e[1] == d for e, d in zip(boxes[0], shape, strict=True)
        )
        return Entry(name, tensor.dtype, shape, math.prod(shape) * itemsize, not whole)

    @staticmethod
    def _box(where: str, shape: tuple[int, ...], extents: list[Extent]) -> list[tuple[int, int]]:
        if len(extents) != len(shape):
            raise CorruptCheckpointError(
                f"{where}: a slice of rank {len(extents)} for a tensor of rank {len(shape)}. {_FIX}"
            )
        box = []
        for (start, length), dim in zip(extents, shape, strict=True):
            stop = dim if length is None else start + length
            if start < 0 or stop < start or stop > dim:
                raise CorruptCheckpointError(
                    f"{where}: slice [{start}, +{length}) lies outside a dimension of size {dim}. "
                    + _FIX
                )
            box.append((start, stop))
        return box

    # -- reading -------------------------------------------------------------------------------
    def _slice_values(
        self, name: str, tensor: _Tensor, extents: list[Extent], table: int
    ) -> np.ndarray[Any, Any]:
        file = self._tables[table].path
        where = f"{file}: tensor {name!r} slice {extents}"
        box = self._box(where, tensor.meta.shape, extents)
        shape = tuple(stop - start for start, stop in box)
        try:
            record = self._tables[table].get(encode_slice_key(name, extents))
            saved = None if record is None else decode_saved_slice(record)
            if saved is None:
                raise CorruptCheckpointError(f"{where}: its data record is missing. {_FIX}")
            if saved.name != name or saved.extents != extents:
                raise CorruptCheckpointError(
                    f"{where}: the data record holds {saved.name!r} slice {saved.extents} "
                    f"instead. {_FIX}"
                )
            values = decode_values(saved.tensor, tensor.dtype, math.prod(shape))
        except (TableError, ProtoError) as exc:
            raise CorruptCheckpointError(f"{where} does not decode ({exc}). {_FIX}") from None
        return values.reshape(shape)

    def read(self, key: str) -> np.ndarray[Any, Any]:
        """Return the tensor under ``key`` (strings as an object array of bytes), read-only."""
        tensor = self._tensors[key]
        if not has_numpy_form(tensor.dtype):
            raise UnsupportedCheckpointError(
                f"{self.path}: entry {key!r} holds {tensor.dtype} data, which has no numpy form; "
                "skip this key (ckptbridge reads the dtypes of variables)"
            )
        # Every slice is decoded (bounded by its stored bytes) before the whole tensor is
        # allocated; _validate has checked that the slices tile it exactly.
        parts = [(ext, self._slice_values(key, tensor, ext, t)) for ext, t in tensor.slices]
        shape = tensor.meta.shape
        if self.entries[key].sliced:
            out = np.empty(shape, dtype=numpy_dtype(tensor.dtype))
            for extents, values in parts:
                index = tuple(
                    slice(start, None if length is None else start + length)
                    for start, length in extents
                )
                out[index] = values
        elif parts:
            out = parts[0][1].reshape(shape)
        else:
            out = np.empty(shape, dtype=numpy_dtype(tensor.dtype))
        out.flags.writeable = False
        return out

    def close(self) -> None:
        """Close the files (arrays already returned stay valid)."""
        for table in self._tables:
            table.close()
