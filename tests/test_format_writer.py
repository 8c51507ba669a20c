"""BundleWriter output is read identically by TensorFlow; files appear atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import google_crc32c
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptbridge import ConversionError, CorruptCheckpointError
from ckptbridge.format import BundleWriter, open_checkpoint
from test_format_bundle import same, tensors

pytestmark = pytest.mark.tf


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(tensors(), min_size=1, max_size=5), shard_bytes=st.sampled_from([None, 1, 64])
)
def test_tensorflow_reads_what_bundlewriter_writes(
    tmp_path_factory: pytest.TempPathFactory, values: list[Any], shard_bytes: int | None
) -> None:
    prefix = tmp_path_factory.mktemp("writer") / "out.ckpt"
    with BundleWriter(prefix, max_shard_bytes=shard_bytes) as writer:
        for i, value in enumerate(values):
            writer.add(f"v{i}", value)
    reader = tf.train.load_checkpoint(str(prefix))
    assert sorted(reader.get_variable_to_shape_map()) == [f"v{i}" for i in range(len(values))]
    for i, value in enumerate(values):
        assert same(value, reader.get_tensor(f"v{i}"))
    with open_checkpoint(prefix) as ckpt:
        for i, value in enumerate(values):
            assert same(ckpt.read(f"v{i}"), value)


def test_slices_and_shards_are_read_by_tensorflow(tmp_path: Path) -> None:
    full = np.arange(40, dtype=np.float32).reshape(10, 4)
    with BundleWriter(tmp_path / "m", max_shard_bytes=64) as writer:
        writer.add_slice("emb", (10, 4), (0, 0), full[:4])
        writer.add_slice("emb", (10, 4), (4, 0), full[4:7])
        writer.add_slice("emb", (10, 4), (7, 0), full[7:])
        writer.add_slice("whole", (2,), (0,), np.ones(2, np.int32))  # a full slice is a plain entry
        writer.add_slice("tall", (300, 2), (0, 0), np.zeros((100, 2)))
        writer.add_slice("tall", (300, 2), (100, 0), np.ones((200, 2)))
    assert len(list(tmp_path.glob("m.data-*"))) == 5  # 64-byte limit; a tensor is never split
    reader = tf.train.load_checkpoint(str(tmp_path / "m"))
    np.testing.assert_array_equal(reader.get_tensor("emb"), full)
    assert reader.get_tensor("tall").sum() == 400
    with open_checkpoint(tmp_path / "m") as ckpt:
        assert ckpt.entries["emb"].sliced and not ckpt.entries["whole"].sliced
        np.testing.assert_array_equal(ckpt.read("emb"), full)


def test_add_raw_copies_bytes_and_checks_crc(tmp_path: Path) -> None:
    value = np.random.default_rng(1).standard_normal((300, 7)).astype(np.float32)
    with BundleWriter(tmp_path / "src") as writer:
        writer.add("old/name", value)
    with open_checkpoint(tmp_path / "src") as src, BundleWriter(tmp_path / "dst") as writer:
        location = src.raw_location("old/name")
        assert location is not None
        writer.add_raw("new/name", location)
    np.testing.assert_array_equal(
        tf.train.load_checkpoint(str(tmp_path / "dst")).get_tensor("new/name"), value
    )

    data = tmp_path / "src.data-00000-of-00001"
    damaged = bytearray(data.read_bytes())
    damaged[100] ^= 0xFF
    data.write_bytes(bytes(damaged))
    with (
        BundleWriter(tmp_path / "bad") as writer,
        pytest.raises(CorruptCheckpointError, match=r"CRC32C mismatch"),
    ):
        writer.add_raw("x", location)


def test_exception_inside_context_leaves_no_files(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), BundleWriter(tmp_path / "m") as writer:
        writer.add("a", np.zeros(3))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_index_is_written_last_with_temporary_names(tmp_path: Path) -> None:
    writer = BundleWriter(tmp_path / "m")
    writer.add("a", np.zeros(3))
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 1 and ".tempstate" in names[0]
    assert writer.finish() == tmp_path / "m"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.data-00000-of-00001", "m.index"]


def test_empty_bundle_is_valid(tmp_path: Path) -> None:
    BundleWriter(tmp_path / "empty").finish()
    assert tf.train.list_variables(str(tmp_path / "empty")) == []


def test_duplicate_and_bad_keys_are_rejected(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "m") as writer:
        writer.add("a", np.zeros(1))
        with pytest.raises(ConversionError, match=r"^duplicate entry 'a' for .*m$"):
            writer.add("a", np.zeros(1))
        with pytest.raises(ConversionError, match=r"must not be empty"):
            writer.add("", np.zeros(1))
        with pytest.raises(ConversionError, match=r"does not fit"):
            writer.add_slice("s", (4,), (3,), np.zeros(2))


def test_add_shard_adopts_a_source_shard_and_add_chunks_streams(tmp_path: Path) -> None:
    kernel = np.arange(12, dtype=np.float32).reshape(3, 4)
    with BundleWriter(tmp_path / "src") as writer:
        writer.add("w", kernel)
        writer.add("b", np.ones(4, np.float32))
    with open_checkpoint(tmp_path / "src") as ckpt:
        loc_w, loc_b = ckpt.raw_location("w"), ckpt.raw_location("b")
    assert loc_w is not None and loc_b is not None
    out = tmp_path / "out"
    out.mkdir()
    reused = out / "m.reused"
    reused.hardlink_to(loc_w.path)
    halves = (kernel[:1].astype(np.float16).view(np.uint8), kernel[1:].astype(np.float16))
    with BundleWriter(out / "m") as writer:
        assert writer.add_shard(reused, [("dense/kernel", loc_w), ("dense/bias", loc_b)]) == 0
        assert writer.add_chunks("half", "float16", (3, 4), halves) == 24
        writer.add("step", np.int64(7))
    reader = tf.train.load_checkpoint(str(out / "m"))
    np.testing.assert_array_equal(reader.get_tensor("dense/kernel"), kernel)
    np.testing.assert_array_equal(reader.get_tensor("dense/bias"), np.ones(4, np.float32))
    np.testing.assert_array_equal(reader.get_tensor("half"), kernel.astype(np.float16))
    assert sorted(p.name for p in out.iterdir()) == [
        "m.data-00000-of-00002", "m.data-00001-of-00002", "m.index",
    ]  # fmt: skip


def test_add_chunks_of_the_wrong_size_and_adopted_shards_on_abort(tmp_path: Path) -> None:
    with BundleWriter(tmp_path / "src") as writer:
        writer.add("w", np.zeros(4, np.float32))
    with open_checkpoint(tmp_path / "src") as ckpt:
        loc = ckpt.raw_location("w")
    assert loc is not None
    out = tmp_path / "out"
    out.mkdir()
    (out / "m.reused").hardlink_to(loc.path)
    with pytest.raises(RuntimeError), BundleWriter(out / "m") as writer:
        writer.add_shard(out / "m.reused", [("w", loc)])
        with pytest.raises(
            ConversionError, match=r"^entry 'x': 8 bytes streamed, float32 \(4,\) needs 16$"
        ):
            writer.add_chunks("x", "float32", (4,), [b"\0" * 8])
        raise RuntimeError("boom")
    assert list(out.iterdir()) == []
    assert loc.path.exists()


def test_outputs_are_atomic_not_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The durability policy (module docstring of format/_writer.py): renamed into place, never
    fsynced, as TensorFlow's saver; fsync is made to fail to show that nothing calls it."""
    from ckptbridge.format import _writer

    def no_fsync(fd: int) -> None:
        raise AssertionError("fsync called")

    monkeypatch.setattr(os, "fsync", no_fsync)
    monkeypatch.setattr(os, "fdatasync", no_fsync)
    with BundleWriter(tmp_path / "m") as writer:
        writer.add("a", np.arange(3, dtype=np.float32))
    assert _writer.DURABILITY == "atomic"
    np.testing.assert_array_equal(tf.train.load_checkpoint(str(tmp_path / "m")).get_tensor("a"),
                                  np.arange(3, dtype=np.float32))  # fmt: skip


def test_large_tensors_are_preallocated_and_a_failed_one_leaves_no_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckptbridge.format import _writer

    monkeypatch.setattr(_writer, "PREALLOCATE_MIN", 1024)
    big = np.arange(4096, dtype=np.float32)

    def failing() -> Any:
        yield big[:1000].view(np.uint8)
        raise RuntimeError("disk full")

    with BundleWriter(tmp_path / "m") as writer:
        writer.add("small", np.int64(3))
        with pytest.raises(RuntimeError, match=r"^disk full$"):
            writer.add_chunks("w", "float32", big.shape, failing())
        shard = next(tmp_path.glob("m.data-tmp*"))
        assert shard.stat().st_size == 8  # the preallocated range went with the failed tensor
        writer.add("w", big)  # preallocated, then written in one piece
        got = writer.add_chunks(
            "half", "float32", (2048,), [big[:2048].view(np.uint8)],
            crc32c=lambda: google_crc32c.value(big[:2048].tobytes()),
        )  # fmt: skip
        assert got == 8192
    assert (tmp_path / "m.data-00000-of-00001").stat().st_size == 8 + 16384 + 8192
    reader = tf.train.load_checkpoint(str(tmp_path / "m"))  # TensorFlow checks every CRC32C
    np.testing.assert_array_equal(reader.get_tensor("w"), big)
    np.testing.assert_array_equal(reader.get_tensor("half"), big[:2048])
    assert reader.get_tensor("small") == 3


def test_add_string_writes_what_add_writes(tmp_path: Path) -> None:
    value = b"\x0a\x05graph\x00"
    with BundleWriter(tmp_path / "a") as w:
        w.add("s", np.array(value, dtype=object))
    with BundleWriter(tmp_path / "b") as w:
        w.add_string("s", value)
    for suffix in (".index", ".data-00000-of-00001"):
        assert (tmp_path / f"a{suffix}").read_bytes() == (tmp_path / f"b{suffix}").read_bytes()
    with open_checkpoint(tmp_path / "b") as ckpt:
        assert ckpt.entries["s"].shape == () and ckpt.read_strings("s") == [value]
