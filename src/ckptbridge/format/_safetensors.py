"""safetensors files as checkpoints, read natively (no ``safetensors`` import).

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length N, N
bytes of JSON (``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
{str: str}}``), then the tensors' bytes back to back, offsets counted from the end of the header.
The whole header is checked when the file is opened, as the ``safetensors`` library checks it:
every dtype known, every shape a list of non-negative integers, every byte range the size its
dtype and shape need, the ranges neither overlapping nor leaving gaps and ending where the file
ends. Anything else is a :class:`CorruptCheckpointError` naming the file and the tensor. Local
files are memory-mapped (a read returns a read-only view); remote ones are read by byte range::

    reader = SafetensorsReader(Path("model.safetensors"))
    reader.read("dense/kernel")
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptbridge._errors import CorruptCheckpointError
from ckptbridge.format._files import open_regular, os_error
from ckptbridge.format._storage import Location, RemotePath
from ckptbridge.format._types import SAFETENSORS_SUFFIX, Entry

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SAFETENSORS_SUFFIX", "SafetensorsReader", "is_safetensors_file"]

HEADER_LIMIT = 100 << 20  # the safetensors library refuses larger headers too
# safetensors dtype code -> ckptbridge dtype name
DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "C64": "complex64",
}  # fmt: skip


def is_safetensors_file(path: Location) -> bool:
    """True for a file named ``*.safetensors``, or one that starts like one (a header length,
    then ``{``).

    >>> is_safetensors_file(Path("model.safetensors"))
    True
    """
    if path.name.endswith(SAFETENSORS_SUFFIX):
        return True
    try:
        head = _read(path, 0, 9)
    except (OSError, CorruptCheckpointError):
        return False
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] > 1


def _read(path: Location, offset: int, length: int) -> bytes:
    if isinstance(path, RemotePath):
        return path.store.read_range(path, offset, length)
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


class SafetensorsReader:
    """Lists and reads the tensors of a ``.safetensors`` file (module docstring)."""

    def __init__(self, path: Location) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        if isinstance(path, RemotePath):
            size = path.store.size(path)
            head = path.store.read_range(path, 0, 8)
        else:
            fd = open_regular(Path(path), "safetensors file")
            try:
                size = os.fstat(fd).st_size
                head = os.pread(fd, 8, 0)
                if size > 8:
                    self._map = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            except OSError as exc:
                raise os_error(exc, path, "safetensors file") from None
            finally:
                os.close(fd)
        if len(head) < 8:
            self._corrupt(f"is {size} bytes, shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", head)
        if length > min(HEADER_LIMIT, size - 8):
            self._corrupt(
                f"says its header is {length} bytes, but the file holds {size - 8} after the "
                f"length{' (and headers are at most 100 MiB)' if length > HEADER_LIMIT else ''}"
            )
        self.data_start = 8 + length
        self.data_size = size - self.data_start
        self.metadata: dict[str, str] = {}
        self.entries: dict[str, Entry] = {}
        self._spans: dict[str, tuple[int, int]] = {}
        self._parse(self._bytes(8, length))

    def _corrupt(self, what: str) -> None:
        self.close()
        raise CorruptCheckpointError(
            f"{self.path} {what}: not a valid safetensors file. The file is damaged or "
            "incomplete; write it again"
        )

    def _bytes(self, offset: int, length: int) -> bytes:
        if self._map is not None:
            return self._map[offset : offset + length]
        assert isinstance(self.path, RemotePath)
        return self.path.store.read_range(self.path, offset, length)

    def _parse(self, raw: bytes) -> None:
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self._corrupt(f"has a header that is not JSON ({str(exc)[:80]})")
        if not isinstance(header, dict):
            self._corrupt("has a header that is not a JSON object")
        metadata = header.pop("__metadata__", None) or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            self._corrupt("has __metadata__ that is not an object of strings")
        self.metadata = dict(metadata)
        spans: list[tuple[int, int, str]] = []
        for name, info in header.items():
            entry, begin, end = self._entry(name, info)
            spans.append((begin, end, name))
            self.entries[name] = entry
            self._spans[name] = (begin, end)
        position = 0
        for begin, end, name in sorted(spans):
            if begin != position:
                where = "overlaps the tensor before it" if begin < position else "leaves a gap"
                self._corrupt(f"has tensor {name!r} at data bytes {begin}..{end}, which {where}")
            position = end
        if position != self.data_size:
            self._corrupt(
                f"has tensors covering {position} data bytes, but {self.data_size} follow the "
                "header (truncated or padded)"
            )
        order = {name: rank for rank, (_, _, name) in enumerate(sorted(spans))}
        self.entries = dict(sorted(self.entries.items(), key=lambda kv: order[kv[0]]))

    def _entry(self, name: str, info: Any) -> tuple[Entry, int, int]:
        from ckptbridge.format._dtypes import itemsize

        if not isinstance(info, dict):
            self._corrupt(f"describes tensor {name!r} with {type(info).__name__}, not an object")
        code, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if code not in DTYPES:
            self._corrupt(f"gives tensor {name!r} the unknown dtype {str(code)[:20]!r}")
        if not isinstance(shape, list) or not all(_natural(d) for d in shape):
            self._corrupt(f"gives tensor {name!r} the shape {str(shape)[:40]}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_natural(o) for o in offsets)
        ):
            self._corrupt(f"gives tensor {name!r} the data_offsets {str(offsets)[:40]}")
        dtype = DTYPES[code]
        begin, end = offsets
        need = math.prod(shape) * itemsize(dtype)
        if end - begin != need:
            self._corrupt(
                f"gives tensor {name!r} ({code} {tuple(shape)}, {need} bytes) the data bytes "
                f"{begin}..{end}"
            )
        if end > self.data_size:
            self._corrupt(
                f"places tensor {name!r} at data bytes {begin}..{end}, past the end of the "
                f"data ({self.data_size} bytes)"
            )
        return Entry(name, dtype, tuple(shape), need, False), begin, end

    def span(self, key: str) -> tuple[int, int]:
        """The file byte range (start, end) of ``key``'s data."""
        begin, end = self._spans[key]
        return self.data_start + begin, self.data_start + end

    def read(self, key: str) -> np.ndarray[Any, Any]:
        """Return tensor ``key``: a read-only view of the mapped file (a copy for remote files)."""
        import numpy as np

        from ckptbridge.format._dtypes import numpy_dtype

        entry = self.entries[key]
        start, end = self.span(key)
        dtype = numpy_dtype(entry.dtype)
        if self._map is not None:
            array = np.frombuffer(self._map, dtype=dtype, count=entry.size, offset=start)
        else:
            data = self._bytes(start, end - start)
            if len(data) != end - start:
                raise CorruptCheckpointError(
                    f"{self.path}: tensor {key!r} at bytes {start}..{end} is truncated "
                    f"({len(data)} bytes read). Copy the file again"
                )
            array = np.frombuffer(data, dtype=dtype, count=entry.size)
        if dtype == np.bool_ and array.size and array.view(np.uint8).max() > 1:
            raise CorruptCheckpointError(
                f"{self.path}: tensor {key!r} at bytes {start}..{end} holds bool bytes other "
                "than 0 and 1. The file is damaged; write it again"
            )
        return array.reshape(entry.shape)

    def close(self) -> None:
        """Drop this reader's map (arrays already returned keep the file mapped)."""
        self._map = None


def _natural(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
