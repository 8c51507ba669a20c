"""Stream element-wise transforms (``cast``, ``add`` over the whole tensor) chunk by chunk.

A tensor whose steps act on each element alone (plus reshapes, which change no bytes) never needs
to be whole in memory: its source bytes are read in chunks, checked against the source CRC32C,
transformed and handed to ``BundleWriter.add_chunks``. Peak memory is a few
chunks whatever the tensor's size, and the work stays in the CPU caches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import google_crc32c
import numpy as np

from ckptbridge._errors import ConversionError
from ckptbridge.conversion._actions import Action
from ckptbridge.format._storage import iter_range
from ckptbridge.rules._model import Add, Cast, Reshape, Step

if TYPE_CHECKING:
    from ckptbridge.format import Checkpoint, RawLocation

CHUNK = 1 << 18  # source bytes per step: small enough to stay in the CPU caches


def _elementwise(steps: tuple[Step, ...]) -> bool:
    return bool(steps) and all(
        isinstance(s, (Reshape, Cast)) or (isinstance(s, Add) and s.start is None and s.stop is None)
        for s in steps
    ) and not all(isinstance(s, Reshape) for s in steps)  # fmt: skip


def streamable(src: Checkpoint, action: Action) -> RawLocation | None:
    """The source RawLocation when ``action`` can be streamed chunk by chunk, else None."""
    m = action.match
    if m is None or len(m.sources) != 1 or not _elementwise(m.steps):
        return None
    loc = src.raw_location(m.sources[0])
    if loc is None or loc.dtype == "string" or math.prod(loc.shape) != math.prod(action.shape):
        return None
    return loc


def transformed_chunks(action: Action, loc: RawLocation) -> Iterator[np.ndarray]:
    """The output bytes of ``action`` (uint8 arrays), chunk by chunk from its source ``loc``;
    the source CRC32C is checked once the last chunk has been read (before it is yielded)."""
    from ckptbridge.format._dtypes import numpy_dtype
    from ckptbridge.transforms import apply_steps

    assert action.match is not None
    steps = [s for s in action.match.steps if not isinstance(s, Reshape)]
    src_dtype, want = numpy_dtype(loc.dtype), numpy_dtype(action.dtype)
    step_bytes = max(src_dtype.itemsize, CHUNK - CHUNK % src_dtype.itemsize)
    crc = got = 0
    for piece in iter_range(loc.path, loc.offset, loc.size, step_bytes):  # local or by range
        crc = google_crc32c.extend(crc, piece)
        for begin in range(0, len(piece), step_bytes):  # remote parts are larger: cut them
            raw = piece[begin : begin + step_bytes]
            got += len(raw)
            out = np.asarray(apply_steps([np.frombuffer(raw, dtype=src_dtype)], steps))
            if out.dtype != want:
                raise ConversionError(
                    f"{action.key!r}: the steps give {out.dtype} but the target expects "
                    f"{action.dtype}. Fix: add a cast step ({{op: cast, dtype: {action.dtype}}})"
                )
            if got == loc.size:
                loc.check_read(crc, got, action.match.sources[0])
            yield np.ascontiguousarray(out).reshape(-1).view(np.uint8)
    if got < loc.size:
        loc.check_read(crc, got, action.match.sources[0])
