"""Damaged, truncated, crafted and missing files give clean ckptbridge errors, never a crash."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ckptbridge import CheckpointNotFoundError, CkptBridgeError, CorruptCheckpointError
from ckptbridge.format import OBJECT_GRAPH_KEY, BundleWriter, open_checkpoint
from ckptbridge.format._bundle_proto import (
    EntryProto,
    encode_entry,
    encode_header,
    encode_slice_key,
)
from ckptbridge.format._proto import encode_varint, field_fixed32, field_varint
from ckptbridge.format._table import build_table, read_table

VALUES = {
    "dense/kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
    "dense/bias": np.ones(4, np.float64),
    "names": np.array([b"alpha", b"beta"], dtype=object),
    "step": np.int64(7),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    with BundleWriter(folder / "m.ckpt") as writer:
        for key, value in VALUES.items():
            writer.add(key, value)
    return folder


@pytest.fixture
def copy(good: Path, tmp_path: Path) -> Path:
    for path in good.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def read_all(prefix: Path) -> dict[str, bytes]:
    with open_checkpoint(prefix) as ckpt:
        return {
            k: ckpt.read(k).tobytes()
            if ckpt.read(k).dtype != object
            else repr(ckpt.read(k).tolist()).encode()
            for k in ckpt.entries
        }


def expected() -> dict[str, bytes]:
    return {
        k: np.asarray(v).tobytes() if np.asarray(v).dtype != object else repr(v.tolist()).encode()
        for k, v in VALUES.items()
    }


@pytest.mark.parametrize("content", [b"", b"garbage" * 3, b"\x00" * 4096])
def test_empty_and_garbage_index(copy: Path, content: bytes) -> None:
    (copy / "m.ckpt.index").write_bytes(content)
    with pytest.raises(
        CorruptCheckpointError, match=r"m\.ckpt\.index is not a readable checkpoint index"
    ):
        open_checkpoint(copy / "m.ckpt")


def test_every_single_byte_flip_in_the_index_is_caught_or_harmless(copy: Path) -> None:
    index = copy / "m.ckpt.index"
    original = index.read_bytes()
    caught = 0
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= 0x41
        index.write_bytes(bytes(damaged))
        try:
            result = read_all(copy / "m.ckpt")
        except CkptBridgeError:
            caught += 1
            continue
        assert result == expected(), f"flip at byte {position} gave different values silently"
    assert caught > len(original) // 2  # the rest: footer padding and the unused meta-index block


@pytest.mark.parametrize("keep", [0, 10, 47, 100, -1])
def test_truncated_index(copy: Path, keep: int) -> None:
    index = copy / "m.ckpt.index"
    index.write_bytes(index.read_bytes()[:keep])
    with pytest.raises(CorruptCheckpointError):
        open_checkpoint(copy / "m.ckpt")


def test_zeroed_data_block_of_index(copy: Path) -> None:
    index = copy / "m.ckpt.index"
    data = bytearray(index.read_bytes())
    data[0:40] = bytes(40)
    index.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=r"checksum mismatch"):
        open_checkpoint(copy / "m.ckpt")


def test_bit_flip_in_data_fails_crc(copy: Path) -> None:
    shard = copy / "m.ckpt.data-00000-of-00001"
    data = bytearray(shard.read_bytes())
    data[50] ^= 0x01  # inside dense/bias (float64, stored second, after the 48-byte kernel)
    shard.write_bytes(bytes(data))
    with open_checkpoint(copy / "m.ckpt") as ckpt:
        np.testing.assert_array_equal(ckpt.read("dense/kernel"), VALUES["dense/kernel"])
        with pytest.raises(
            CorruptCheckpointError,
            match=r"entry 'dense/bias' \(bytes 48\.\.80\) fails its CRC32C check",
        ):
            ckpt.read("dense/bias")


def test_bit_flip_in_string_data(copy: Path) -> None:
    shard = copy / "m.ckpt.data-00000-of-00001"
    data = bytearray(shard.read_bytes())
    with open_checkpoint(copy / "m.ckpt") as ckpt:
        location_offset = 48 + 32  # after dense/kernel and dense/bias
        assert ckpt.entries["names"].nbytes == 2 + 4 + 9
    data[location_offset + 7] ^= 0x20
    shard.write_bytes(bytes(data))
    with (
        open_checkpoint(copy / "m.ckpt") as ckpt,
        pytest.raises(CorruptCheckpointError, match=r"'names'"),
    ):
        ckpt.read("names")


def test_truncated_data_shard(copy: Path) -> None:
    shard = copy / "m.ckpt.data-00000-of-00001"
    shard.write_bytes(shard.read_bytes()[:50])
    with pytest.raises(
        CorruptCheckpointError, match=r"is 50 bytes but the index places data up to byte \d+"
    ):
        open_checkpoint(copy / "m.ckpt")


def test_missing_shard(copy: Path) -> None:
    (copy / "m.ckpt.data-00000-of-00001").unlink()
    with pytest.raises(
        CheckpointNotFoundError, match=r"data shard .*m\.ckpt\.data-00000-of-00001 is missing"
    ):
        open_checkpoint(copy / "m.ckpt")


def crafted(
    folder: Path, header: bytes, entries: dict[bytes, EntryProto], data: bytes = b"\x00" * 8
) -> Path:
    items = [(b"", header)] + [(k, encode_entry(v)) for k, v in sorted(entries.items())]
    (folder / "x.index").write_bytes(build_table(items))
    (folder / "x.data-00000-of-00001").write_bytes(data)
    return folder / "x"


def test_crafted_huge_shape_does_not_allocate(tmp_path: Path) -> None:
    prefix = crafted(
        tmp_path, encode_header(1), {b"w": EntryProto(dtype=1, shape=(1 << 40, 1 << 20), size=8)}
    )
    with pytest.raises(
        CorruptCheckpointError,
        match=r"entry 'w': shape \[1099511627776, 1048576\] of float32 needs",
    ):
        open_checkpoint(prefix)


def test_crafted_offset_outside_file(tmp_path: Path) -> None:
    prefix = crafted(
        tmp_path, encode_header(1), {b"w": EntryProto(dtype=1, shape=(2,), offset=1 << 50, size=8)}
    )
    with pytest.raises(CorruptCheckpointError, match=r"the shard is truncated"):
        open_checkpoint(prefix)


@pytest.mark.parametrize("shards", [0, 1 << 31, -1])
def test_crafted_shard_count(tmp_path: Path, shards: int) -> None:
    prefix = crafted(tmp_path, encode_header(shards), {})
    with pytest.raises(
        CorruptCheckpointError, match=r"header declares -?\d+ data shards, expected 1 to 99999"
    ):
        open_checkpoint(prefix)


def test_crafted_shard_id_out_of_range(tmp_path: Path) -> None:
    prefix = crafted(
        tmp_path, encode_header(1), {b"w": EntryProto(dtype=1, shape=(2,), shard_id=5, size=8)}
    )
    with pytest.raises(CorruptCheckpointError, match=r"points to shard 5"):
        open_checkpoint(prefix)


def test_crafted_slices_that_do_not_cover_the_tensor(tmp_path: Path) -> None:
    entry = EntryProto(dtype=1, shape=(1 << 30, 1 << 30), slices=[])
    entry.slices.append([(0, 1), (0, None)])
    prefix = crafted(tmp_path, encode_header(1), {b"big": entry})
    with pytest.raises(CorruptCheckpointError, match=r"partitioned entry 'big'"):
        open_checkpoint(prefix)


def test_state_file_pointing_nowhere(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/elsewhere/model.ckpt-9"\n')
    with pytest.raises(
        CheckpointNotFoundError, match=r"names '/elsewhere/model\.ckpt-9', which does not exist"
    ):
        open_checkpoint(tmp_path)


def test_garbage_file_is_not_a_v1_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "model.ckpt").write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(
        CorruptCheckpointError,
        match=r"model\.ckpt is not a checkpoint: there is no model\.ckpt\.index",
    ):
        open_checkpoint(tmp_path / "model.ckpt")


def _rewrite_index(prefix: Path, edit: Callable[[list[tuple[bytes, bytes]]], None]) -> None:
    """Apply ``edit`` to the decoded table items and rebuild the index (CRCs recomputed)."""
    index = prefix.with_name(prefix.name + ".index")
    items = read_table(index.read_bytes(), "x")
    edit(items)
    index.write_bytes(build_table(sorted(items)))


@pytest.mark.tf
def test_header_field_with_a_foreign_wire_type_is_skipped_as_protobuf_does(copy: Path) -> None:
    """An ``endianness`` sent as fixed32 is an unknown field, not "big endian": values stay right."""

    def edit(items: list[tuple[bytes, bytes]]) -> None:
        items[0] = (b"", items[0][1] + field_fixed32(2, 1))

    _rewrite_index(copy / "m.ckpt", edit)
    assert read_all(copy / "m.ckpt") == expected()
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(copy / "m.ckpt"))
    np.testing.assert_array_equal(reader.get_tensor("dense/kernel"), VALUES["dense/kernel"])


def test_entry_field_with_a_foreign_wire_type_is_skipped(copy: Path) -> None:
    def edit(items: list[tuple[bytes, bytes]]) -> None:
        for i, (key, value) in enumerate(items):
            if key == b"dense/bias":  # a fixed64 "dtype" and a varint "crc32c": both unknown
                items[i] = (key, value + field_fixed64(1, 3) + field_varint(6, 5))

    _rewrite_index(copy / "m.ckpt", edit)
    assert read_all(copy / "m.ckpt") == expected()


def field_fixed64(number: int, value: int) -> bytes:
    return encode_varint(number << 3 | 1) + value.to_bytes(8, "little")


@pytest.mark.tf
def test_key_starting_with_nul_is_an_entry_unless_a_partitioned_entry_names_it(
    tmp_path: Path,
) -> None:
    with BundleWriter(tmp_path / "m") as writer:
        writer.add("\x00odd", np.arange(3, dtype=np.int32))
        writer.add_slice("part", (4,), (0,), np.zeros(2, np.float32))
        writer.add_slice("part", (4,), (2,), np.ones(2, np.float32))
    import tensorflow as tf

    listed = dict(tf.train.list_variables(str(tmp_path / "m")))
    with open_checkpoint(tmp_path / "m") as ckpt:
        assert {k: list(e.shape) for k, e in ckpt.entries.items()} == listed
        assert listed == {"\x00odd": [3], "part": [4]}
        np.testing.assert_array_equal(ckpt.read("\x00odd"), [0, 1, 2])
        np.testing.assert_array_equal(ckpt.read("part"), [0, 0, 1, 1])


@pytest.mark.parametrize("value", [np.int64(1 << 40), np.uint64(1 << 63)], ids=["int64", "uint64"])
def test_object_graph_stored_as_a_number_is_refused_without_allocating(
    tmp_path: Path, value: Any
) -> None:
    with BundleWriter(tmp_path / "m") as writer:
        writer.add(OBJECT_GRAPH_KEY, value)
    with (
        open_checkpoint(tmp_path / "m") as ckpt,
        pytest.raises(
            CorruptCheckpointError,
            match=rf"^.*m: the {OBJECT_GRAPH_KEY} entry holds u?int64 \[\], expected a string scalar",
        ),
    ):
        _ = ckpt.object_graph


def test_repeated_slice_extents_are_refused_before_the_tensor_is_allocated(tmp_path: Path) -> None:
    """Two references to one 2 GiB slice "cover" a 4 GiB tensor: found before np.empty(4 GiB)."""
    half = [(0, 1 << 14), (0, None)]
    entry = EntryProto(dtype=1, shape=(1 << 15, 1 << 15), slices=[half, list(half)])
    stored = EntryProto(dtype=1, shape=(1 << 14, 1 << 15), size=1 << 31)
    prefix = crafted(
        tmp_path, encode_header(1), {b"big": entry, encode_slice_key("big", half): stored}
    )
    os.truncate(tmp_path / "x.data-00000-of-00001", 1 << 31)  # sparse: no disk used
    with (
        open_checkpoint(prefix) as ckpt,
        pytest.raises(
            CorruptCheckpointError,
            match=r"^.*x\.index: partitioned entry 'big': slice at \[0, 0\] overlaps the slice at "
            r"\[0, 0\], so part of the tensor is never stored\.",
        ),
    ):
        assert ckpt.entries["big"].shape == (1 << 15, 1 << 15)
        ckpt.read("big")


def test_index_larger_than_any_index_is_refused_before_reading(copy: Path) -> None:
    os.truncate(copy / "m.ckpt.index", 3 << 30)  # sparse 3 GiB
    with pytest.raises(
        CorruptCheckpointError,
        match=r"^checkpoint index .*m\.ckpt\.index is 3221225472 bytes, more than the 1073741824",
    ):
        open_checkpoint(copy / "m.ckpt")


def test_shard_truncated_after_opening_is_a_clean_error(copy: Path) -> None:
    with open_checkpoint(copy / "m.ckpt") as ckpt:
        np.testing.assert_array_equal(ckpt.read("dense/kernel"), VALUES["dense/kernel"])
        os.truncate(copy / "m.ckpt.data-00000-of-00001", 10)
        for copy_mode in (False, True):
            with pytest.raises(
                CorruptCheckpointError,
                match=r"^.*m\.ckpt\.data-00000-of-00001 is 10 bytes but entry 'dense/bias' ends at "
                r"byte 80: the shard was truncated or replaced after it was opened\.",
            ):
                ckpt.read("dense/bias", copy=copy_mode)
