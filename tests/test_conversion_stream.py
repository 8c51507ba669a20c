"""conversion._stream: element-wise transforms streamed chunk by chunk."""

from __future__ import annotations

import threading
from pathlib import Path

import google_crc32c
import numpy as np
import pytest

from ckptbridge import ConversionError, CorruptCheckpointError
from ckptbridge.conversion import _stream
from ckptbridge.conversion._actions import Action
from ckptbridge.engine import Match
from ckptbridge.format import BundleWriter, Checkpoint, RawLocation, open_checkpoint
from ckptbridge.rules import Add, Cast, Reshape
from ckptbridge.transforms import apply_steps

STEPS = [
    (Add(value=1.5),),
    (Add(value=1.5), Cast(dtype="float16")),
    (Cast(dtype="float64"), Add(value=-2.0), Reshape(shape=(333 * 77,)), Cast(dtype="int32")),
    (Cast(dtype="bfloat16"), Add(value=0.25)),
]


def _source(tmp_path: Path, value: np.ndarray) -> Path:
    """A one-entry checkpoint; a few leading entries put the tensor at an unaligned offset."""
    with BundleWriter(tmp_path / "m.ckpt") as w:
        w.add("a_pad", np.arange(3, dtype=np.int8))
        w.add("w", value)
    return tmp_path / "m.ckpt"


def _stream_all(prefix: Path, steps: tuple, out_dtype: str, cut: int = 0) -> bytes:  # type: ignore[type-arg]
    with open_checkpoint(prefix) as ckpt:
        loc = ckpt.raw_location("w")
        assert loc is not None and loc.offset % 4096 != 0
        if cut:  # the shard shrinks after the index was read
            shard = prefix.with_name(prefix.name + ".data-00000-of-00001")
            shard.write_bytes(shard.read_bytes()[:-cut])
        match = Match(target="t", sources=("w",), steps=steps)
        action = Action("t", "match", out_dtype, tuple(loc.shape), match)
        return b"".join(bytes(c) for c in _stream.transformed_chunks(action, loc))


@pytest.mark.parametrize("steps", STEPS)
def test_chunks_equal_apply_steps_in_chunks_of_any_size(
    tmp_path: Path,
    steps: tuple,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    value = np.random.default_rng(3).normal(size=(333, 77)).astype(np.float32) * 100
    prefix = _source(tmp_path, value)
    monkeypatch.setattr(_stream, "CHUNK", 4100)  # chunks that are not a page multiple
    want = apply_steps([value], [s for s in steps if not isinstance(s, Reshape)])
    assert _stream_all(prefix, steps, want.dtype.name) == want.tobytes()


def _add_one(ckpt: Checkpoint) -> tuple[RawLocation, Action]:
    """Entry ``w`` of a ``_source`` checkpoint and the action that adds 1.0 to it."""
    loc = ckpt.raw_location("w")
    assert loc is not None
    match = Match("t", ("w",), steps=(Add(value=1.0),))
    return loc, Action("t", "match", "float32", loc.shape, match)


def _pipelined(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every tensor through the producer thread, in small chunks over a ring of two buffers."""
    monkeypatch.setattr(_stream, "PIPELINE_MIN", 0)
    monkeypatch.setattr(_stream, "RING", 2)
    monkeypatch.setattr(_stream, "CHUNK", 4100)


def _small_chunks(monkeypatch: pytest.MonkeyPatch, pipelined: bool) -> None:
    """Chunks of a page (inline), or every tensor through the producer thread (pipelined)."""
    if pipelined:
        _pipelined(monkeypatch)
    else:
        monkeypatch.setattr(_stream, "CHUNK", 4096)


@pytest.mark.parametrize("pipelined", [False, True], ids=["inline", "pipelined"])
def test_damaged_source_fails_before_its_last_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipelined: bool
) -> None:
    prefix = _source(tmp_path, np.ones((100, 100), np.float32))
    shard = tmp_path / "m.ckpt.data-00000-of-00001"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    _small_chunks(monkeypatch, pipelined)
    with pytest.raises(CorruptCheckpointError, match=r"^.*m\.ckpt\.data-00000-of-00001: bytes "
                       r"3\.\.40003 for 'w' are damaged \(CRC32C mismatch\)\. .*$"):  # fmt: skip
        _stream_all(prefix, (Add(value=1.0),), "float32")


@pytest.mark.parametrize("pipelined", [False, True], ids=["inline", "pipelined"])
def test_truncated_source_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipelined: bool
) -> None:
    prefix = _source(tmp_path, np.ones((100, 100), np.float32))
    _small_chunks(monkeypatch, pipelined)
    with pytest.raises(CorruptCheckpointError, match=r"^.*m\.ckpt\.data-00000-of-00001: bytes "
                       r"3\.\.40003 for 'w' are truncated\. .*$"):  # fmt: skip
        _stream_all(prefix, (Add(value=1.0),), "float32", cut=1000)


@pytest.mark.parametrize("steps", STEPS[:2])
def test_pipelined_chunks_equal_apply_steps_and_carry_their_crc(
    tmp_path: Path,
    steps: tuple,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[type-arg]
) -> None:
    value = np.random.default_rng(4).normal(size=(333, 77)).astype(np.float32) * 100
    prefix = _source(tmp_path, value)
    _pipelined(monkeypatch)
    want = apply_steps([value], list(steps))
    with open_checkpoint(prefix) as ckpt:
        loc = ckpt.raw_location("w")
        assert loc is not None
        action = Action("t", "match", want.dtype.name, want.shape, Match("t", ("w",), steps=steps))
        chunks = _stream.transformed_chunks(action, loc)
        with pytest.raises(ConversionError, match=r"^internal: the CRC32C of a stream was asked "):
            chunks.crc32c()
        got = [bytes(c) for c in chunks]  # each chunk read before the next is asked for
    assert len(got) > 10 and b"".join(got) == want.tobytes()
    assert chunks.crc32c() == google_crc32c.value(want.tobytes())
    assert not [t for t in threading.enumerate() if t.name == "ckptbridge-transform"]


def test_a_pipelined_stream_closed_early_stops_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = _source(tmp_path, np.ones((300, 300), np.float32))
    _pipelined(monkeypatch)
    with open_checkpoint(prefix) as ckpt:
        loc, action = _add_one(ckpt)
        chunks = _stream.transformed_chunks(action, loc)
        first = next(iter(chunks))
        assert np.all(first.view(np.float32) == 2.0)
        chunks.close()  # what conversion._link does when the write fails mid-tensor (disk full)
        chunks.close()
    assert not [t for t in threading.enumerate() if t.name == "ckptbridge-transform"]


def test_a_closed_streams_buffers_serve_the_next_one_and_no_two_open_streams_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = np.random.default_rng(5).normal(size=(300, 300)).astype(np.float32)
    prefix = _source(tmp_path, value)
    _pipelined(monkeypatch)
    monkeypatch.setattr(_stream, "_SPARE", [])
    want = (value + np.float32(1.0)).tobytes()
    with open_checkpoint(prefix) as ckpt:
        loc, action = _add_one(ckpt)
        first = _stream.transformed_chunks(action, loc)
        kept = []  # references to the first stream's chunks: their memory is the buffers
        data = b""
        for chunk in first:
            kept.append(chunk)
            data += bytes(chunk)
        assert data == want and not _stream._SPARE
        first.close()
        first.close()  # idempotent: the buffers are handed on once
        assert len(_stream._SPARE) == 1
        second, third = (_stream.transformed_chunks(action, loc) for _ in range(2))
        got: dict[int, bytes] = {2: b"", 3: b""}
        for b, c in zip(second, third, strict=True):  # both open at once, interleaved
            assert any(np.shares_memory(b, k) for k in kept)  # the first stream's buffers
            assert not any(np.shares_memory(c, k) for k in kept)  # new ones
            assert not np.shares_memory(b, c)
            got[2] += bytes(b)
            got[3] += bytes(c)
        second.close()
        third.close()
    assert got[2] == got[3] == want
    assert len(_stream._SPARE) == _stream.SPARE_MAX


def _crc_library_shipped() -> bool:
    libs = Path(google_crc32c.__file__).resolve().parent.parent / "google_crc32c.libs"
    return any(libs.glob("libcrc32c*.so*"))


@pytest.mark.skipif(not _crc_library_shipped(), reason="google_crc32c without its C library file")
def test_the_stream_crc_runs_outside_the_gil_where_the_wheel_ships_its_library() -> None:
    # Not a timing: the GIL-free path is the one taken (else the writer thread waits on the CRC).
    assert _stream.crc32c_extender() is not google_crc32c.extend


@pytest.mark.parametrize("found", [True, False], ids=["ctypes", "fallback"])
def test_stream_crc_equals_google_crc32c_at_any_size_offset_and_start(
    monkeypatch: pytest.MonkeyPatch, found: bool
) -> None:
    if not found:
        monkeypatch.setattr(_stream, "_crc_nogil", [])
        monkeypatch.setattr(_stream, "_crc_looked", True)
        assert _stream.crc32c_extender() is google_crc32c.extend
    extend = _stream.crc32c_extender()
    data = np.random.default_rng(6).integers(0, 256, size=70_001, dtype=np.uint8)
    for start, size in [(0, 0), (0, 1), (3, 7), (1, 4096), (5, 65_537), (0, 70_001)]:
        piece = data[start : start + size]
        for crc in (0, 0xE3069283):
            assert extend(crc, piece) == google_crc32c.extend(crc, piece.tobytes())
    floats = data[1 : 1 + 4 * 1000].view(np.float32)  # unaligned, as a source view can be
    assert extend(0, floats) == google_crc32c.value(floats.tobytes())


def test_stream_crc_refuses_a_non_contiguous_array() -> None:
    extend = _stream.crc32c_extender()
    if extend is google_crc32c.extend:
        pytest.skip("google_crc32c refuses it itself")
    with pytest.raises(ValueError, match="non-contiguous"):
        extend(0, np.arange(10, dtype=np.uint8)[::2])


@pytest.mark.parametrize("pipelined", [False, True], ids=["inline", "pipelined"])
@pytest.mark.parametrize(("dtype", "count"), [("float32", 7), ("int8", 13), ("float64", 1)])
def test_a_tensor_smaller_than_one_chunk_of_an_odd_size_streams_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipelined: bool, dtype: str, count: int
) -> None:
    value = np.arange(count, dtype=dtype)
    prefix = _source(tmp_path, value)
    if pipelined:
        _pipelined(monkeypatch)
    with open_checkpoint(prefix) as ckpt:
        loc = ckpt.raw_location("w")
        assert loc is not None
        match = Match("t", ("w",), steps=(Add(value=1.0),))
        action = Action("t", "match", dtype, loc.shape, match)
        chunks = _stream.transformed_chunks(action, loc)
        got = [bytes(c) for c in chunks]
        chunks.close()
    want = apply_steps([value], [Add(value=1.0)]).tobytes()
    assert got == [want]
    assert chunks.crc32c() == google_crc32c.value(want)
