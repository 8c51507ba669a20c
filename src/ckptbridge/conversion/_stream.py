"""Stream element-wise transforms (``cast``, ``add`` over the whole tensor) chunk by chunk.

A tensor whose steps act on each element alone (plus reshapes, which change no bytes) never needs
to be whole in memory: its source bytes are read in chunks, checked against the source CRC32C,
transformed, checksummed and appended to one data shard of the output. Peak memory is a few
chunks whatever the tensor's size, and the work stays in the CPU caches.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import google_crc32c
import numpy as np

from ckptbridge._errors import ConversionError, CorruptCheckpointError
from ckptbridge.conversion._actions import Action
from ckptbridge.rules._model import Add, Cast, Reshape, Step

CHUNK = 1 << 18  # source bytes per step: small enough to stay in the CPU caches


def _elementwise(steps: tuple[Step, ...]) -> bool:
    return bool(steps) and all(
        isinstance(s, (Reshape, Cast)) or (isinstance(s, Add) and s.start is None and s.stop is None)
        for s in steps
    ) and not all(isinstance(s, Reshape) for s in steps)  # fmt: skip


def streamable(src: Any, action: Action) -> Any:
    """The source RawLocation when ``action`` can be streamed chunk by chunk, else None."""
    m = action.match
    if m is None or len(m.sources) != 1 or not _elementwise(m.steps):
        return None
    loc = src.raw_location(m.sources[0])
    if loc is None or loc.dtype == "string" or math.prod(loc.shape) != math.prod(action.shape):
        return None
    return loc


class StreamShard:
    """One output data shard that streamed tensors are appended to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: BinaryIO = path.open("wb")
        self.size = 0

    def add(self, action: Action, loc: Any) -> tuple[int, int, int]:
        """Append the transformed tensor; return (offset, size, masked crc32c)."""
        from ckptbridge.format._dtypes import numpy_dtype
        from ckptbridge.format._table import mask_crc, unmask_crc
        from ckptbridge.transforms import apply_steps

        assert action.match is not None
        steps = [s for s in action.match.steps if not isinstance(s, Reshape)]
        src_dtype, want = numpy_dtype(loc.dtype), numpy_dtype(action.dtype)
        step_bytes = max(src_dtype.itemsize, CHUNK - CHUNK % src_dtype.itemsize)
        start, src_crc, out_crc = self.size, 0, 0
        with Path(loc.path).open("rb") as fin:
            fin.seek(loc.offset)
            remaining = loc.size
            while remaining:
                raw = fin.read(min(step_bytes, remaining))
                if not raw:
                    break
                remaining -= len(raw)
                src_crc = google_crc32c.extend(src_crc, raw)
                out = np.asarray(apply_steps([np.frombuffer(raw, dtype=src_dtype)], steps))
                if out.dtype != want:
                    raise ConversionError(
                        f"{action.key!r}: the steps give {out.dtype} but the target expects "
                        f"{action.dtype}. Fix: add a cast step ({{op: cast, dtype: {action.dtype}}})"
                    )
                data = np.ascontiguousarray(out).view(np.uint8)
                out_crc = google_crc32c.extend(out_crc, data)
                self.file.write(data.data)
                self.size += data.size
        if remaining or src_crc != unmask_crc(loc.crc32c):
            raise CorruptCheckpointError(
                f"{loc.path}: bytes {loc.offset}..{loc.offset + loc.size} for "
                f"{action.match.sources[0]!r} are {'truncated' if remaining else 'damaged (CRC32C mismatch)'}"
            )
        return start, self.size - start, mask_crc(out_crc)

    def close(self) -> None:
        self.file.close()
