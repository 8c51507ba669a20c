"""Streaming, atomic writer of the tensor-bundle format that TensorFlow reads.

One tensor is in memory at a time (none for :meth:`BundleWriter.add_raw`, which copies bytes from a
source shard in chunks). Data goes to temporary files; :meth:`BundleWriter.finish` renames them to
``<prefix>.data-NNNNN-of-MMMMM`` and writes the ``.index`` last (under a temporary name, renamed)::

    with BundleWriter("out/model.ckpt") as writer:
        writer.add("dense/kernel", kernel)

Durability policy (:data:`DURABILITY`, the same for every file ckptbridge writes): outputs are
*atomic*, not *durable*. A process killed at any moment (``kill -9``, out of memory, Ctrl-C) leaves
either no ``.index`` under the final name (no checkpoint) or a complete checkpoint, because every
file is written under a temporary name and renamed, the index last (a conversion stages whole
outputs the same way). Nothing is fsynced: TensorFlow's own saver does not fsync either (its
``BundleWriter::Finish`` closes and renames; the POSIX ``WritableFile::Close`` is an ``fclose``,
``Sync`` only an ``fflush``), nor does ``cp``. The kernel writes the data back within about half a
minute; a power cut or kernel crash before then can leave files with missing bytes, and reading
them fails the size or CRC32C checks (ckptbridge's and TensorFlow's) rather than giving wrong
values. Run ``sync`` after a conversion when it must survive a power cut.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

import google_crc32c

from ckptbridge._errors import CkptBridgeError, ConversionError, CorruptCheckpointError
from ckptbridge.format._bundle import MAX_SHARDS, data_path
from ckptbridge.format._bundle_proto import (
    EntryProto,
    Extent,
    encode_entry,
    encode_header,
    encode_slice_key,
)
from ckptbridge.format._dtypes import (
    UnknownDtypeError,
    enum_from_name,
    itemsize,
    name_from_numpy,
    numpy_dtype,
)
from ckptbridge.format._storage import iter_range
from ckptbridge.format._strings import encode_strings
from ckptbridge.format._table import build_table, mask_crc
from ckptbridge.format._types import RawLocation

if TYPE_CHECKING:
    import numpy as np

CHUNK = 8 << 20
DURABILITY = "atomic"  # renamed into place; never fsynced (see the module docstring)
PREALLOCATE_MIN = 1 << 20  # a tensor this big gets its file blocks allocated before it is written


class _Shard:
    """One data shard: a temporary file being written, or (``file`` None) one adopted whole."""

    def __init__(self, path: Path, *, adopted: bool = False) -> None:
        self.path = path
        self.file: BinaryIO | None = None if adopted else path.open("wb")
        self.size = path.stat().st_size if adopted else 0

    def write(self, data: Any) -> None:
        assert self.file is not None  # only the writer's own shards are appended to
        self.file.write(data)


class BundleWriter:
    """Write a tensor bundle; a context manager that finishes on success and aborts on error.

    ``max_shard_bytes`` starts a new data shard when the next tensor would exceed it (a tensor is
    never split across shards).
    """

    def __init__(
        self, prefix: str | os.PathLike[str], *, max_shard_bytes: int | None = None
    ) -> None:
        self.prefix = Path(prefix)
        if max_shard_bytes is not None and max_shard_bytes <= 0:
            raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
        self.max_shard_bytes = max_shard_bytes
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._token = os.urandom(6).hex()
        self._shards: list[_Shard] = []
        self._entries: dict[bytes, EntryProto] = {}
        self._closed = False

    # -- context manager -----------------------------------------------------------------------
    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.finish()
        else:
            self.abort()

    # -- adding --------------------------------------------------------------------------------
    def _check_key(self, key: bytes) -> None:
        if self._closed:
            raise ConversionError(f"BundleWriter for {self.prefix} is already finished or aborted")
        if not key:
            raise ConversionError("an entry key must not be empty (the empty key holds the header)")
        if key in self._entries:
            raise ConversionError(
                f"duplicate entry {key.decode('utf-8', 'replace')!r} for {self.prefix}"
            )

    def _shard_for(self, size: int) -> _Shard:
        current = self._shards[-1] if self._shards else None
        limit = self.max_shard_bytes
        if (
            current is None
            or current.file is None
            or (limit is not None and current.size and current.size + size > limit)
        ):
            if len(self._shards) >= MAX_SHARDS:
                raise ConversionError(
                    f"{self.prefix}: more than {MAX_SHARDS} shards; raise max_shard_bytes"
                )
            name = f"{self.prefix.name}.data-tmp{len(self._shards):05d}.tempstate{self._token}"
            current = _Shard(self.prefix.with_name(name))
            self._shards.append(current)
        if current.file is not None and size >= PREALLOCATE_MIN:
            _preallocate(current.file.fileno(), current.size, size)
        return current

    def _append(
        self, key: bytes, dtype: str, shape: tuple[int, ...], data: Any, crc: int, size: int
    ) -> None:
        shard = self._shard_for(size)
        shard.write(data)
        self._entries[key] = EntryProto(
            dtype=enum_from_name(dtype), shape=shape, shard_id=len(self._shards) - 1,
            offset=shard.size, size=size, crc32c=mask_crc(crc),
        )  # fmt: skip
        shard.size += size

    def _add_bytes(self, key: bytes, array: np.ndarray[Any, Any]) -> None:
        import numpy as np

        self._check_key(key)
        try:
            dtype = name_from_numpy(array.dtype)
        except UnknownDtypeError as exc:
            raise ConversionError(f"entry {key.decode('utf-8', 'replace')!r}: {exc}") from None
        shape = tuple(int(d) for d in array.shape)
        if dtype == "string":
            data, crc = encode_strings(array.reshape(-1).tolist())
            self._append(key, dtype, shape, data, crc, len(data))
            return
        flat = np.ascontiguousarray(array, dtype=numpy_dtype(dtype)).reshape(-1).view(np.uint8)
        self._append(key, dtype, shape, flat, google_crc32c.value(flat), flat.size)

    def add(self, key: str, array: np.ndarray[Any, Any] | Any) -> None:
        """Add one whole tensor (any numpy array, or anything ``np.asarray`` accepts).

        Example::

            writer.add("global_step", np.int64(1000))
        """
        import numpy as np

        self._add_bytes(key.encode("utf-8"), np.asarray(array))

    def add_string(self, key: str, value: bytes) -> None:
        """Add a scalar string tensor: ``add(key, np.array(value, dtype=object))`` without numpy.

        Example::

            writer.add_string("_CHECKPOINTABLE_OBJECT_GRAPH", graph_bytes)
        """
        name = key.encode("utf-8")
        self._check_key(name)
        data, crc = encode_strings([value])
        self._append(name, "string", (), data, crc, len(data))

    def add_raw(self, key: str, src: RawLocation) -> None:
        """Copy a tensor's bytes from a source shard without decoding, verifying its CRC32C.

        Example::

            writer.add_raw("new/name", reader.raw_location("old/name"))
        """
        encoded = key.encode("utf-8")
        self._check_key(encoded)
        expected = math.prod(src.shape) * itemsize(src.dtype)
        if src.size != expected:
            raise ConversionError(
                f"raw source for {key!r}: {src.size} bytes, shape needs {expected}"
            )
        shard = self._shard_for(src.size)
        assert shard.file is not None
        start = shard.size
        crc = got = 0
        for chunk in iter_range(src.path, src.offset, src.size, CHUNK):  # local or by range
            crc = google_crc32c.extend(crc, chunk)
            shard.file.write(chunk)
            got += len(chunk)
        try:
            src.check_read(crc, got, key)
        except CorruptCheckpointError:
            shard.file.seek(start)
            shard.file.truncate()
            raise
        self._entries[encoded] = EntryProto(
            dtype=enum_from_name(src.dtype), shape=src.shape, shard_id=len(self._shards) - 1,
            offset=start, size=src.size, crc32c=src.crc32c,
        )  # fmt: skip
        shard.size += src.size

    def add_chunks(
        self,
        key: str,
        dtype: str,
        shape: tuple[int, ...],
        chunks: Iterable[Any],
        *,
        crc32c: Callable[[], int] | None = None,
    ) -> int:
        """Add one tensor from its encoded bytes in pieces (``bytes`` or uint8 arrays), so a
        tensor of any size streams through; return the number of bytes written.

        ``crc32c``: when the producer of ``chunks`` computes the CRC32C of the bytes it yields
        (the transform stream does, while each chunk is in its cache), a function returning it
        (unmasked) once ``chunks`` is exhausted; the writer then does not read the bytes again.

        Example::

            writer.add_chunks("w", "float16", (1024, 1024), (a.astype(np.float16) for a in parts))
        """
        encoded = key.encode("utf-8")
        self._check_key(encoded)
        expected = math.prod(shape) * itemsize(dtype)
        shard = self._shard_for(expected)
        assert shard.file is not None
        start, crc = shard.size, 0
        try:
            for chunk in chunks:
                if crc32c is None:
                    crc = google_crc32c.extend(crc, chunk)
                shard.file.write(chunk)
                shard.size += memoryview(chunk).nbytes
            if crc32c is not None:
                crc = crc32c()
            if shard.size - start != expected:
                raise ConversionError(
                    f"entry {key!r}: {shard.size - start} bytes streamed, {dtype} {shape} needs "
                    f"{expected}"
                )
        except BaseException:
            shard.file.seek(start)
            shard.file.truncate()
            shard.size = start
            raise
        self._entries[encoded] = EntryProto(
            dtype=enum_from_name(dtype), shape=tuple(shape), shard_id=len(self._shards) - 1,
            offset=start, size=expected, crc32c=mask_crc(crc),
        )  # fmt: skip
        return expected

    def add_shard(
        self, path: str | os.PathLike[str], entries: Iterable[tuple[str, RawLocation]]
    ) -> int:
        """Take the complete data file ``path`` (beside the prefix: a hard link or a copy of a
        source shard) as the next data shard, holding ``entries`` where each location says
        (``offset``, ``size``, ``crc32c``, dtype, shape; its ``path`` is not used). The writer
        renames the file into place on :meth:`finish` and deletes it on :meth:`abort`; it does not
        read or fsync it: checking its bytes is the caller's. Return the shard number.

        Example::

            os.link(loc.path, "out/model.ckpt.reused")
            writer.add_shard("out/model.ckpt.reused", [("new/name", loc)])
        """
        shard_path = Path(path)
        if shard_path.parent.resolve() != self.prefix.parent.resolve():
            raise ConversionError(f"{shard_path}: an adopted shard must sit beside {self.prefix}")
        items = [(key.encode("utf-8"), loc) for key, loc in entries]
        for encoded, _ in items:
            self._check_key(encoded)
        if len(self._shards) >= MAX_SHARDS:
            raise ConversionError(f"{self.prefix}: more than {MAX_SHARDS} shards")
        shard = _Shard(shard_path, adopted=True)
        for encoded, loc in items:
            if loc.offset < 0 or loc.offset + loc.size > shard.size:
                raise ConversionError(
                    f"{shard_path}: entry {encoded.decode('utf-8', 'replace')!r} at bytes "
                    f"{loc.offset}..{loc.offset + loc.size} lies outside the file ({shard.size} B)"
                )
        self._shards.append(shard)
        number = len(self._shards) - 1
        for encoded, loc in items:
            self._entries[encoded] = EntryProto(
                dtype=enum_from_name(loc.dtype), shape=tuple(loc.shape), shard_id=number,
                offset=loc.offset, size=loc.size, crc32c=loc.crc32c,
            )  # fmt: skip
        return number

    def add_slice(
        self,
        key: str,
        full_shape: tuple[int, ...],
        offset: tuple[int, ...],
        array: np.ndarray[Any, Any],
    ) -> None:
        """Add one slice of a partitioned variable at ``offset`` within ``full_shape``.

        Example::

            writer.add_slice("emb", (10, 4), (0, 0), part0)   # rows 0..4
            writer.add_slice("emb", (10, 4), (5, 0), part1)   # rows 5..9
        """
        import numpy as np

        array = np.asarray(array)
        full = tuple(int(d) for d in full_shape)
        if (
            len(offset) != len(full)
            or array.ndim != len(full)
            or any(o < 0 or o + n > d for o, n, d in zip(offset, array.shape, full, strict=False))
        ):
            raise ConversionError(
                f"slice of {key!r}: offset {tuple(offset)} + shape {array.shape} does not fit in {full}"
            )
        extents: list[Extent] = [
            (o, None) if (o == 0 and n == d) else (o, n)
            for o, n, d in zip(offset, array.shape, full, strict=True)
        ]
        if all(length is None for _, length in extents):
            self.add(key, array)
            return
        self._add_bytes(encode_slice_key(key, extents), array)
        dtype = enum_from_name(name_from_numpy(array.dtype))
        encoded = key.encode("utf-8")
        entry = self._entries.get(encoded)
        if entry is None:
            entry = self._entries[encoded] = EntryProto(dtype=dtype, shape=full)
        elif not entry.slices or entry.dtype != dtype or entry.shape != full:
            raise ConversionError(
                f"slice of {key!r} conflicts with its earlier entry (dtype/shape)"
            )
        entry.slices.append(extents)

    # -- finishing -----------------------------------------------------------------------------
    def finish(self) -> Path:
        """Rename the shards into place, then write the index (under a temporary name, renamed):
        atomic against a killed process, not fsynced (see the module docstring). Return the prefix."""
        if self._closed:
            raise ConversionError(f"BundleWriter for {self.prefix} is already finished or aborted")
        try:
            if not self._shards:
                self._shard_for(0)
            total = len(self._shards)
            for number, shard in enumerate(self._shards):
                if shard.file is not None:
                    shard.file.close()
                os.replace(shard.path, data_path(self.prefix, number, total))
            items = [(b"", encode_header(total))]
            items += [(key, encode_entry(self._entries[key])) for key in sorted(self._entries)]
            index = self.prefix.with_name(f"{self.prefix.name}.index.tempstate{self._token}")
            with index.open("wb") as handle:
                handle.write(build_table(items))
            os.replace(index, self.prefix.with_name(self.prefix.name + ".index"))
        except OSError as exc:
            self.abort()
            raise ConversionError(f"writing checkpoint {self.prefix} failed: {exc}") from exc
        except CkptBridgeError:
            self.abort()
            raise
        self._closed = True
        return self.prefix

    def abort(self) -> None:
        """Close and delete the temporary files; nothing appears under the prefix."""
        self._closed = True
        for shard in self._shards:
            if shard.file is not None:
                shard.file.close()
            shard.path.unlink(missing_ok=True)
        self.prefix.with_name(f"{self.prefix.name}.index.tempstate{self._token}").unlink(
            missing_ok=True
        )
        self._shards.clear()


_fallocate: Any = None  # libc's fallocate(2) once looked up; False where there is none


def _preallocate(fd: int, offset: int, length: int) -> None:
    """Allocate ``length`` bytes at ``offset`` of ``fd`` before they are written (Linux
    ``fallocate(2)``, mode 0): the file system then reserves blocks once instead of page by page,
    and the page-cache writes that follow cost about a third less. Best effort: where the call or
    the file system's support is missing nothing happens (never glibc's ``posix_fallocate``, which
    then writes zeros); a failure such as ENOSPC shows again, as an error, at the write."""
    global _fallocate
    if _fallocate is None:
        _fallocate = _find_fallocate()
    if _fallocate:
        _fallocate(fd, 0, offset, length)


def _find_fallocate() -> Any:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).fallocate64
    except (OSError, AttributeError):
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    function.restype = ctypes.c_int
    return function
