"""Stream element-wise transforms (``cast``, ``add`` over the whole tensor) chunk by chunk.

A tensor whose steps act on each element alone (plus reshapes, which change no bytes) never needs
to be whole in memory: its source bytes are read in chunks, checked against the source CRC32C,
transformed, checksummed (the output CRC32C, while the chunk is in the cache) and handed to
``BundleWriter.add_chunks``. Peak memory is a few chunks whatever the tensor's size, and the work
stays in the CPU caches. A tensor of ``PIPELINE_MIN`` bytes or more is read and transformed in a
second thread while the writer writes the chunks before (numpy, ``read`` and the writer's
``write`` run outside the GIL). Both CRCs are taken on the producer's side, through
:func:`crc32c_extender`: ``google_crc32c.extend`` holds the GIL for anything but ``bytes``, which
kept the writer thread waiting for it while the producer checksummed the source.

Each chunk is read (one ``read``) into a small buffer of its ring slot and added to in place: on
the 2 GB benchmark shard (``add 0.0``, in process, alternated in one run) 0.78 s median and 1.26 s
of CPU against 1.33 s and 1.91 s reading through memory maps into separate output buffers (their
page faults also slowed the writer). The buffers of a finished stream are kept for the next one
(``_SPARE``): a new process otherwise faults in fresh pages for every tensor's buffers (glibc maps
and unmaps blocks this big).
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google_crc32c

from ckptbridge._errors import ConversionError
from ckptbridge.conversion._actions import Action
from ckptbridge.format._storage import iter_range
from ckptbridge.rules._steps import Add, Cast, Reshape, Step

if TYPE_CHECKING:
    import numpy as np

    from ckptbridge.format import Checkpoint, RawLocation

CHUNK = 1 << 20  # source bytes per step: the chunk and its output stay in the CPU's caches
PIPELINE_MIN = 4 << 20  # tensors this big are read and transformed in a second thread
RING = 4  # output buffers of a pipelined tensor: the producer runs up to RING - 1 chunks ahead


CRC_CHECK = b"123456789"  # the standard check input: its CRC32C is 0xE3069283
_crc_nogil: list[Callable[[int, np.ndarray], int]] = []  # found on first use (one or none)
_crc_looked = False


def crc32c_extender() -> Callable[[int, np.ndarray], int]:
    """``extend(crc, array)``: the CRC32C of a C-contiguous array's bytes continued from ``crc``,
    computed without the GIL when it can be (else ``google_crc32c.extend``, which holds it).

    ``google_crc32c``'s extension releases the GIL only for ``bytes``; its wheel ships the C library
    it wraps (``google_crc32c.libs/libcrc32c-*.so`` on Linux), whose ``crc32c_extend`` called through
    ``ctypes`` (which releases the GIL during a foreign call) gives the same CRC. The library is used
    only when found and when it gives the check value, with both implementations agreeing.
    """
    global _crc_looked
    if not _crc_looked:
        _crc_looked = True
        found = _load_crc_nogil()
        if found is not None:
            _crc_nogil.append(found)
    return _crc_nogil[0] if _crc_nogil else google_crc32c.extend


def _load_crc_nogil() -> Callable[[int, np.ndarray], int] | None:
    import ctypes

    package = Path(google_crc32c.__file__).resolve().parent
    shipped = [  # where auditwheel (Linux) and delocate (macOS) put it
        *sorted((package.parent / "google_crc32c.libs").glob("libcrc32c*.so*")),
        *sorted((package / ".dylibs").glob("libcrc32c*.dylib")),
    ]
    for candidate in shipped:
        try:
            fn = ctypes.CDLL(str(candidate)).crc32c_extend
        except (OSError, AttributeError):
            continue
        fn.restype = ctypes.c_uint32
        fn.argtypes = (ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)
        if not (
            fn(0, CRC_CHECK, len(CRC_CHECK)) == google_crc32c.extend(0, CRC_CHECK) == 0xE3069283
        ):
            continue

        def extend(crc: int, array: np.ndarray, fn: Any = fn) -> int:
            if not array.flags.c_contiguous:  # the bytes from its address on would be others
                raise ValueError("crc32c of a non-contiguous array")
            return int(fn(crc, array.__array_interface__["data"][0], array.nbytes))

        return extend
    return None


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


class Chunks:
    """The output bytes of one tensor (uint8 arrays, each valid until the next is requested), and
    their CRC32C once all have been taken: pass ``chunks.crc32c`` to ``BundleWriter.add_chunks``.

    Example: ``writer.add_chunks(key, dtype, shape, chunks, crc32c=chunks.crc32c)``.
    """

    def __init__(
        self,
        make: Callable[[Chunks], Iterator[np.ndarray]],
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.crc = 0  # the running CRC32C of the bytes produced so far
        self.finished = False
        self._iter = make(self)
        self._on_close = on_close

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._iter

    def close(self) -> None:
        """Stop producing (a producer thread ends, the source map closes); idempotent. The chunks
        handed out are invalid from then on (their buffers serve the next stream)."""
        close = getattr(self._iter, "close", None)
        if close is not None:
            close()
        if self._on_close is not None:
            self._on_close()

    def crc32c(self) -> int:
        """The CRC32C (unmasked) of every byte produced; only once they all have been."""
        if not self.finished:
            raise ConversionError("internal: the CRC32C of a stream was asked before its end")
        return self.crc


def transformed_chunks(action: Action, loc: RawLocation) -> Chunks:
    """The output bytes of ``action`` chunk by chunk from its source ``loc`` (see :class:`Chunks`);
    the source CRC32C is checked once the last chunk has been read (before it is yielded).

    A local source is read chunk by chunk into reused buffers, adds change them in place and casts
    write into reused buffers per dtype (``np.add(..., out=)``, ``np.copyto``): the same ufuncs and
    casts as :func:`ckptbridge.transforms.apply_steps`, with no allocation per chunk.
    A tensor of ``PIPELINE_MIN`` bytes or more is produced by a second thread, ``RING`` chunks
    ahead at most.
    """
    from ckptbridge.format._dtypes import numpy_dtype

    assert action.match is not None
    steps = [s for s in action.match.steps if not isinstance(s, Reshape)]
    src_dtype, want = numpy_dtype(loc.dtype), numpy_dtype(action.dtype)
    kernel = _Kernel.build(steps, src_dtype)
    if kernel is None or not isinstance(loc.path, Path):
        return Chunks(lambda out: _generic_chunks(action, loc, steps, out))
    if loc.size and kernel.out_dtype != want:
        raise _dtype_error(action, kernel.out_dtype)
    step_bytes = max(src_dtype.itemsize, CHUNK - CHUNK % src_dtype.itemsize)
    name = action.match.sources[0]
    path = loc.path

    def produce(out: Chunks, ring: int, wait: Callable[[], None]) -> Iterator[np.ndarray]:
        import numpy as np

        extend = crc32c_extender()
        crc = got = n = 0
        with path.open("rb", buffering=0) as fin:
            available = max(0, min(loc.size, os.fstat(fin.fileno()).st_size - loc.offset))
            available -= available % src_dtype.itemsize
            fin.seek(loc.offset)
            while got < available:
                wait()  # the buffers of chunk n - ring are free again
                raw = kernel.source_buffer(n % ring, step_bytes)[: min(step_bytes, available - got)]
                if fin.readinto(raw.data) != raw.size:  # one read() into the buffer
                    break  # the file shrank meanwhile: the check below says so
                got += raw.size
                crc = extend(crc, raw)
                result = kernel(raw.view(src_dtype), n % ring).view(np.uint8)
                out.crc = extend(out.crc, result)
                if got == loc.size:
                    loc.check_read(crc, got, name)
                    out.finished = True
                yield result
                n += 1
        if got < loc.size:
            loc.check_read(crc, got, name)
        out.finished = True

    if loc.size < PIPELINE_MIN:
        return Chunks(lambda out: produce(out, 1, _no_wait), kernel.release)
    return Chunks(
        lambda out: _pipelined(lambda wait: produce(out, RING, wait), RING), kernel.release
    )


def _no_wait() -> None:
    pass


class _Stop(Exception):
    """The consumer of a pipelined stream has gone: the producer stops."""


def _pipelined(
    make: Callable[[Callable[[], None]], Iterator[np.ndarray]], ring: int
) -> Iterator[np.ndarray]:
    """Run the generator ``make(wait)`` in a second thread, yielding what it yields in order.
    ``wait`` (called before it writes into its next buffer, of ``ring`` used in turn) blocks until
    that buffer's earlier chunk has been released: a chunk is released when the next is
    requested, so each stays valid until then. An exception of the producer is raised here, in
    its place; closing this generator early stops the producer."""
    free = threading.Semaphore(ring)
    ready: queue.SimpleQueue[Any] = queue.SimpleQueue()
    stop = threading.Event()

    def wait() -> None:
        free.acquire()
        if stop.is_set():
            raise _Stop

    def run() -> None:
        try:
            for chunk in make(wait):
                ready.put(chunk)
        except _Stop:
            return
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(_Failed(exc))
            return
        ready.put(_DONE)

    worker = threading.Thread(target=run, name="ckptbridge-transform", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
            free.release()
    finally:
        stop.set()
        free.release()  # wakes a producer waiting for a buffer: it sees the stop
        worker.join()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


Buffers = dict[tuple[int, Any], "np.ndarray"]  # (ring slot, "source" or a numpy dtype)
_SPARE: list[Buffers] = []  # the buffers of closed streams, taken by the next ones
SPARE_MAX = 2  # buffer sets kept (a few MiB each): one per stream running at the same time


class _Kernel:
    """The element-wise steps of one tensor, run chunk by chunk into reused buffers: those of an
    earlier stream when one has been released (:meth:`release`), else new ones."""

    def __init__(self, ops: list[tuple[str, np.dtype[Any], Any]], out_dtype: np.dtype[Any]):
        self.ops = ops
        self.out_dtype = out_dtype
        self.buffers: Buffers | None = None

    def release(self) -> None:
        """Hand the buffers on to the next stream; only once no chunk of this one is used (the
        producer has stopped and the writer is done). Idempotent."""
        buffers, self.buffers = self.buffers, None
        if buffers is not None and len(_SPARE) < SPARE_MAX:
            _SPARE.append(buffers)

    @classmethod
    def build(cls, steps: Sequence[Step], src_dtype: np.dtype[Any]) -> _Kernel | None:
        """The kernel for ``steps`` (Add over everything, Cast), or None when a dtype on the way
        is not a fixed-size number (left to :func:`apply_steps`)."""
        import numpy as np

        from ckptbridge.transforms import resolve_dtype

        ops: list[tuple[str, np.dtype[Any], Any]] = []
        dtype = src_dtype
        for step in steps:
            if isinstance(step, Add):
                ops.append(("add", dtype, np.asarray(step.value, dtype=dtype)))
            elif isinstance(step, Cast):
                dtype = resolve_dtype(step.dtype)
                ops.append(("cast", dtype, None))
            else:
                return None
            if dtype.kind in "OSUV" or dtype.hasobject:
                return None
        if src_dtype.kind in "OSUV" or src_dtype.hasobject:
            return None
        return cls(ops, dtype)

    def __call__(self, x: np.ndarray, slot: int = 0) -> np.ndarray:
        """The steps applied to ``x`` (this slot's source buffer, which adds change in place), in
        the buffers of ``slot`` (valid until its next use)."""
        import numpy as np

        for op, dtype, value in self.ops:
            if op == "add":  # what apply_steps's ``out[...] += value`` computes, in place
                np.add(x, value, out=x)  # x: this slot's source buffer, or one of its casts
            else:  # what ``astype`` computes (unsafe casting), into this slot's dtype buffer
                dst = self._buffer(slot, dtype, x.size, dtype)
                np.copyto(dst, x, casting="unsafe")
                x = dst
        return x

    def source_buffer(self, slot: int, nbytes: int) -> np.ndarray:
        """The buffer the source bytes of ``slot`` are read into (uint8, ``nbytes`` at least)."""
        import numpy as np

        return self._buffer(slot, "source", nbytes, np.dtype(np.uint8))

    def _buffer(self, slot: int, kind: Any, n: int, dtype: np.dtype[Any]) -> np.ndarray:
        import numpy as np

        if self.buffers is None:
            try:
                self.buffers = _SPARE.pop()  # atomic: streams in other threads take their own
            except IndexError:
                self.buffers = {}
        buf = self.buffers.get((slot, kind))
        if buf is None or buf.size < n or buf.dtype != dtype:
            buf = self.buffers[slot, kind] = np.empty(n, dtype)
        return buf[:n]


def _dtype_error(action: Action, got: np.dtype[Any]) -> ConversionError:
    return ConversionError(
        f"{action.key!r}: the steps give {got} but the target expects "
        f"{action.dtype}. Fix: add a cast step ({{op: cast, dtype: {action.dtype}}})"
    )


def _generic_chunks(
    action: Action, loc: RawLocation, steps: Sequence[Step], out: Chunks
) -> Iterator[np.ndarray]:
    """Chunks through :func:`apply_steps` (remote sources, dtypes that are not plain numbers)."""
    import numpy as np

    from ckptbridge.format._dtypes import numpy_dtype
    from ckptbridge.transforms import apply_steps

    assert action.match is not None
    src_dtype, want = numpy_dtype(loc.dtype), numpy_dtype(action.dtype)
    step_bytes = max(src_dtype.itemsize, CHUNK - CHUNK % src_dtype.itemsize)
    crc = got = 0
    for piece in iter_range(loc.path, loc.offset, loc.size, step_bytes):  # local or by range
        crc = google_crc32c.extend(crc, piece)
        for begin in range(0, len(piece), step_bytes):  # remote parts are larger: cut them
            raw = piece[begin : begin + step_bytes]
            got += len(raw)
            result = np.asarray(apply_steps([np.frombuffer(raw, dtype=src_dtype)], steps))
            if result.dtype != want:
                raise _dtype_error(action, result.dtype)
            chunk = np.ascontiguousarray(result).reshape(-1).view(np.uint8)
            out.crc = google_crc32c.extend(out.crc, chunk)
            if got == loc.size:
                loc.check_read(crc, got, action.match.sources[0])
                out.finished = True
            yield chunk
    if got < loc.size:
        loc.check_read(crc, got, action.match.sources[0])
    out.finished = True
