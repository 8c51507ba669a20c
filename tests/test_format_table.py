"""LevelDB tables (.index): round trips, multiple blocks read by TensorFlow, bounded failures."""

from __future__ import annotations

import struct
from pathlib import Path

import google_crc32c
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptbridge.format import BundleWriter, open_checkpoint
from ckptbridge.format._snappy import SnappyError, decompress
from ckptbridge.format._table import (
    MAGIC,
    TableError,
    build_table,
    mask_crc,
    read_table,
    unmask_crc,
)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.binary(max_size=40), st.binary(max_size=300), max_size=60))
def test_round_trip(items: dict[bytes, bytes]) -> None:
    pairs = sorted(items.items())
    assert read_table(build_table(pairs), "t") == pairs


def test_mask_matches_leveldb() -> None:
    assert mask_crc(0) == 0xA282EAD8
    assert unmask_crc(mask_crc(0xDEADBEEF)) == 0xDEADBEEF


@pytest.mark.tf
def test_many_blocks_are_read_by_tensorflow(tmp_path: Path) -> None:
    import tensorflow as tf

    with BundleWriter(tmp_path / "many") as writer:
        for i in range(12000):
            writer.add(f"layer_{i:05d}/some/long/variable/name", np.float32(i))
    table = read_table((tmp_path / "many.index").read_bytes(), "many.index")
    assert len(table) == 12001
    listed = tf.train.list_variables(str(tmp_path / "many"))
    assert len(listed) == 12000 and listed[-1] == ("layer_11999/some/long/variable/name", [])
    with open_checkpoint(tmp_path / "many") as ckpt:
        assert ckpt.read("layer_06000/some/long/variable/name").item() == 6000.0


def _single_block_table(contents: bytes, kind: int) -> bytes:
    crc = google_crc32c.extend(google_crc32c.value(contents), bytes([kind]))
    block = contents + bytes([kind]) + struct.pack("<I", mask_crc(crc))
    empty = b"\x00\x00\x00\x00\x01\x00\x00\x00"  # no entries, one restart at 0
    meta_crc = google_crc32c.extend(google_crc32c.value(empty), b"\x00")
    meta = empty + b"\x00" + struct.pack("<I", mask_crc(meta_crc))
    index_entry = (
        b"\x00\x01" + bytes([2]) + b"k" + bytes([0, len(contents)])
    )  # key "k" -> handle(0, n)
    index_contents = index_entry + b"\x00\x00\x00\x00\x01\x00\x00\x00"
    index_crc = google_crc32c.extend(google_crc32c.value(index_contents), b"\x00")
    index = index_contents + b"\x00" + struct.pack("<I", mask_crc(index_crc))
    meta_at, index_at = len(block), len(block) + len(meta)
    handles = bytes([meta_at, len(empty), index_at, len(index_contents)])
    return block + meta + index + handles.ljust(40, b"\x00") + struct.pack("<Q", MAGIC)


def test_snappy_block_is_decompressed() -> None:
    raw = b"\x00\x01\x01k" + b"v" + b"\x00\x00\x00\x00\x01\x00\x00\x00"  # one entry k -> v
    compressed = bytes([len(raw), (len(raw) - 1) << 2]) + raw  # a single snappy literal
    assert read_table(_single_block_table(compressed, 1), "t") == [(b"k", b"v")]


def test_unknown_compression_is_rejected() -> None:
    with pytest.raises(TableError, match=r"uses compression type 7"):
        read_table(_single_block_table(b"\x00\x00\x00\x00\x01\x00\x00\x00", 7), "t")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x05", r"header mismatch; expected 5 decompressed bytes but got 0"),
        (b"\x04\x01\x05", r"offset 5"),
        (b"\xff\xff\xff\xff\x7f", r"^declares 34359738367 bytes, more than the 16777216 allowed"),
        (b"\x02\x0ca", r"literal read of length 4"),
        # a decompression bomb: 3 MB declaring 16 MiB would pass the ratio, not the block size
        (b"\x80\x80\x80\x20" + b"\xfe\xff\xff" * 10**6, r"^declares 67108864 bytes, more than"),
        (b"\x80\x80\x10" + b"\x00" * 97, r"^declares 262144 bytes, more than 100 compressed"),
    ],
)
def test_snappy_errors_are_bounded(data: bytes, message: str) -> None:
    with pytest.raises(SnappyError, match=message):
        decompress(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"x" * 47,
        b"\x00" * 40 + struct.pack("<Q", MAGIC),
        b"\xff" * 40 + struct.pack("<Q", MAGIC),
    ],
)
def test_malformed_tables_raise_table_error(data: bytes) -> None:
    with pytest.raises(TableError):
        read_table(data, "bad.index")
