"""The V1 single-file format is read natively: every dtype TensorFlow's V1 Saver writes (including
those TensorFlow's own reader rejects), partitioned and sharded saves, the real corpus files, never
importing TensorFlow, and clean errors on damaged files."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import google_crc32c
import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.util import saved_tensor_slice_pb2

from ckptbridge import CkptBridgeError, CorruptCheckpointError
from ckptbridge.format import CheckpointKind, open_checkpoint
from ckptbridge.format._bundle_proto import encode_slice_key
from ckptbridge.format._proto import encode_varint
from ckptbridge.format._table import _block_entries, _BlockBuilder, _handle, build_table, mask_crc

v1 = tf.compat.v1

VALUES: dict[str, Any] = {
    "dense/kernel": np.arange(12, dtype=np.float32).reshape(4, 3) / 7,
    "dense/bias": np.array([0.5, -1.25, 3e38], np.float32),
    "stats/mean": np.array([[1e-300, -2.0], [np.pi, 1e300]], np.float64),
    "counts/int32": np.array([0, -1, 2**31 - 1, -(2**31), 300], np.int32),
    "counts/int64": np.array([[0, -1], [2**63 - 1, -(2**63)]], np.int64),
    "counts/step": np.int64(1234567),
    "counts/ids": np.arange(3000, dtype=np.int64) * 997 - 50000,
    "flags/mask": np.array([[True, False, True], [False, False, True]]),
    "half/w": np.array([1, -2.5, 65504, 6e-8, np.inf, -0.0], np.float16),
    "cplx/c64": np.array([[1 + 2j, -3.5j], [0, 1e30 - 1e-30j]], np.complex64),
    "cplx/c128": np.array([1 + 2j, -1e300j, 0], np.complex128),
    "text/vocab": np.array([b"alpha", b"", b"\xff\x00bytes"], dtype=object),
    "text/scalar": np.array(b"one", dtype=object),
    "ints/u8": np.array([0, 255, 7], np.uint8),
    "ints/i8": np.array([-128, 127, 0], np.int8),
    "ints/i16": np.array([-32768, 32767, 5], np.int16),
    "ints/u16": np.array([0, 65535, 300], np.uint16),
    "empty/rows": np.zeros((0, 3), np.float32),
    "empty/ids": np.zeros((0,), np.int64),
    "scalar/f": np.float32(-0.75),
}
PARTITIONED = {"part/emb": ((10, 4), 0, 3), "part/cols": ((3, 5), 1, 2)}  # shape, axis, shards
# TensorFlow's V1 reader: "Data type not supported" / "Sliced checkpoints are not supported".
TF_CANNOT_READ = {"half/w", "cplx/c64", "cplx/c128", "ints/u16", *PARTITIONED}


def _exact(value: Any) -> Any:
    array = np.asarray(value)
    if array.dtype.kind in "OS":  # strings: TensorFlow returns a scalar as plain bytes
        return array.shape, array.astype(object).tolist()
    return array.dtype, array.shape, array.tobytes()


def _variables(values: dict[str, Any]) -> dict[str, Any]:
    """``tf.Variable`` per name, each ``scope/leaf`` created inside its variable scope."""
    out = {}
    for scope in dict.fromkeys(name.split("/")[0] for name in values):
        with v1.variable_scope(scope):
            for name, value in values.items():
                if name.startswith(scope + "/"):
                    dtype = tf.as_dtype(np.asarray(value).dtype)
                    out[name] = v1.Variable(value, name=name.split("/")[1], dtype=dtype)
    return out


def _partitioned(name: str, shape: tuple[int, ...], axis: int, shards: int) -> Any:
    scope, leaf = name.split("/")
    with v1.variable_scope(scope):
        return v1.get_variable(
            leaf, shape, partitioner=v1.fixed_size_partitioner(shards, axis=axis)
        )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A V1 file written by ``Saver(write_version=V1)`` and the values its graph held."""
    path = tmp_path_factory.mktemp("v1") / "model.ckpt"
    with tf.Graph().as_default(), v1.Session() as sess:
        variables = _variables(VALUES)
        parts = {name: _partitioned(name, *spec) for name, spec in PARTITIONED.items()}
        sess.run(v1.global_variables_initializer())
        saver = v1.train.Saver(write_version=v1.train.SaverDef.V1)
        saver.save(sess, str(path), write_meta_graph=False, write_state=False)
        held = sess.run({**variables, **{k: p.as_tensor() for k, p in parts.items()}})
    return path, held


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small V1 file (a partitioned variable, strings, a scalar) for byte-level damage."""
    path = tmp_path_factory.mktemp("v1small") / "small.ckpt"
    with tf.Graph().as_default(), v1.Session() as sess:
        _variables({"s/step": np.int64(-3), "s/words": np.array([b"ab", b"c"], dtype=object)})
        _partitioned("p/w", (4, 2), 0, 2)
        sess.run(v1.global_variables_initializer())
        v1.train.Saver(write_version=v1.train.SaverDef.V1).save(
            sess, str(path), write_meta_graph=False, write_state=False
        )
    return path


@pytest.mark.tf
def test_every_dtype_reads_as_the_graph_held_it(saved: tuple[Path, dict[str, Any]]) -> None:
    path, held = saved
    with open_checkpoint(path) as ckpt:
        assert ckpt.kind is CheckpointKind.TF1_V1
        assert sorted(ckpt.entries) == sorted(held)
        for key, value in held.items():
            entry = ckpt.entries[key]
            expected = np.asarray(value)
            assert (entry.shape, entry.sliced) == (expected.shape, key in PARTITIONED), key
            got = ckpt.read(key)
            assert not got.flags.writeable
            assert _exact(got) == _exact(expected), key
        assert ckpt.entries["half/w"].dtype == "float16"
        assert ckpt.entries["text/vocab"].dtype == "string"
        assert ckpt.entries["part/emb"].nbytes == 160
        assert ckpt.raw_location("dense/kernel") is None


@pytest.mark.tf
def test_matches_tensorflows_reader_where_it_can_read(saved: tuple[Path, dict[str, Any]]) -> None:
    path, _ = saved
    reader = v1.train.NewCheckpointReader(str(path))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    with open_checkpoint(path) as ckpt:
        assert {
            k: (tuple(s), dtypes[k].name.replace("half", "float16")) for k, s in shapes.items()
        } == {k: (e.shape, e.dtype) for k, e in ckpt.entries.items()}
        for key in sorted(set(ckpt.entries) - TF_CANNOT_READ):
            assert _exact(ckpt.read(key)) == _exact(reader.get_tensor(key)), key


@pytest.mark.tf
def test_sharded_save_reads_across_its_files(tmp_path: Path) -> None:
    with tf.Graph().as_default():
        with tf.device("/cpu:0"):
            first = _partitioned("a/w", (6, 2), 0, 3)
        with tf.device("/cpu:1"):
            second = _variables({"b/w": np.arange(4, dtype=np.float64)})["b/w"]
        config = v1.ConfigProto(device_count={"CPU": 2})
        with v1.Session(config=config) as sess:
            sess.run(v1.global_variables_initializer())
            saver = v1.train.Saver(write_version=v1.train.SaverDef.V1, sharded=True)
            saver.save(sess, str(tmp_path / "model.ckpt"), write_meta_graph=False)
            held = sess.run({"a/w": first.as_tensor(), "b/w": second})
    shards = sorted(p.name for p in tmp_path.glob("model.ckpt-*"))
    assert shards == ["model.ckpt-00000-of-00002", "model.ckpt-00001-of-00002"]
    for shard in shards:
        with open_checkpoint(tmp_path / shard) as ckpt:
            assert {k: _exact(ckpt.read(k)) for k in ckpt.entries} == {
                k: _exact(v) for k, v in held.items()
            }
    (tmp_path / shards[1]).unlink()
    with pytest.raises(
        FileNotFoundError, match=r"^V1 checkpoint shard .*model\.ckpt-00001-of-00002 is missing"
    ):
        open_checkpoint(tmp_path / shards[0])


def _tensor_proto(**fields: Any) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(**fields)


def _write_v1(
    path: Path, tensors: list[tuple[str, list[int], int, list[list[tuple[int, int]]], Any]]
) -> Path:
    """A V1 file built with TensorFlow's own protos: (name, shape, DataType, slices, TensorProtos)."""
    meta = saved_tensor_slice_pb2.SavedTensorSlices()
    meta.meta.versions.producer = 1
    records = []
    for name, shape, dtype, slices, protos in tensors:
        entry = meta.meta.tensor.add(name=name, type=dtype)
        for dim in shape:
            entry.shape.dim.add(size=dim)
        for extents, proto in zip(slices, protos, strict=True):
            record = saved_tensor_slice_pb2.SavedTensorSlices()
            record.data.name = name
            for target in (entry.slice.add(), record.data.slice):
                for start, length in extents:
                    target.extent.add(start=start, length=length)
            record.data.data.CopyFrom(proto)
            key = encode_slice_key(name, [(s, n) for s, n in extents])
            records.append((key, record.SerializeToString()))
    path.write_bytes(build_table(sorted([(b"", meta.SerializeToString()), *records])))
    return path


def test_values_tensorflow_writes_in_other_fields(tmp_path: Path) -> None:
    """bfloat16 in half_val (TF 1.x wrote it so), uint32/uint64 fields, tensor_content."""
    bf16 = np.array([1.5, -2.0, 3.25], ml_dtypes.bfloat16)
    floats = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    path = _write_v1(
        tmp_path / "crafted.ckpt",
        [
            ("bf", [3], 14, [[(0, 3)]], [_tensor_proto(half_val=bf16.view(np.uint16).tolist())]),
            ("u32", [2], 22, [[(0, 2)]], [_tensor_proto(uint32_val=[0, 2**32 - 1])]),
            ("u64", [2], 23, [[(0, 2)]], [_tensor_proto(uint64_val=[7, 2**64 - 1])]),
            (
                "raw",
                [2, 2],
                1,
                [[(0, 2), (0, 2)]],
                [_tensor_proto(tensor_content=floats.tobytes())],
            ),
        ],
    )
    with open_checkpoint(path) as ckpt:
        assert {k: e.dtype for k, e in ckpt.entries.items()} == {
            "bf": "bfloat16", "raw": "float32", "u32": "uint32", "u64": "uint64"
        }  # fmt: skip
        assert _exact(ckpt.read("bf")) == _exact(bf16)
        assert ckpt.read("u32").tolist() == [0, 2**32 - 1]
        assert ckpt.read("u64").tolist() == [7, 2**64 - 1]
        assert _exact(ckpt.read("raw")) == _exact(floats)


def _snappy_literal(data: bytes, declared: int | None = None) -> bytes:
    """Raw snappy: the length header, then ``data`` as one literal element (4-byte length)."""
    return encode_varint(len(data) if declared is None else declared) + (
        b"\xfc" + struct.pack("<I", len(data) - 1) + data
    )


def _with_snappy_data_blocks(table: bytes, declared: int | None = None) -> bytes:
    """Re-emit a one-data-block table (``build_table``) with its data block snappy-compressed,
    as TensorFlow 1.x builds with snappy wrote compressible blocks."""
    footer = table[-48:]
    _, _, pos = _handle(footer, 0)
    offset, size, _ = _handle(footer, pos)
    ((last, handle),) = _block_entries(table[offset : offset + size], "index")
    start, length, _ = _handle(handle, 0)
    compressed = _snappy_literal(table[start : start + length], declared)
    crc = google_crc32c.extend(google_crc32c.value(compressed), b"\x01")
    out = bytearray(compressed + b"\x01" + struct.pack("<I", mask_crc(crc)))
    index = _BlockBuilder(1)
    index.add(last, encode_varint(0) + encode_varint(len(compressed)))
    metaindex, index_block = _BlockBuilder(16).finish(), index.finish()
    handles = b""
    for block in (metaindex, index_block):
        handles += encode_varint(len(out)) + encode_varint(len(block))
        crc = google_crc32c.extend(google_crc32c.value(block), b"\x00")
        out += block + b"\x00" + struct.pack("<I", mask_crc(crc))
    return bytes(out) + handles.ljust(40, b"\x00") + footer[40:]


def test_snappy_compressed_data_blocks(tmp_path: Path) -> None:
    zeros = np.zeros((64, 32), np.float32)
    spec = [("adam/m", [64, 32], 1, [[(0, 64), (0, 32)]], [_tensor_proto(float_val=zeros.ravel())])]
    plain = _write_v1(tmp_path / "plain.ckpt", spec).read_bytes()
    (tmp_path / "snappy.ckpt").write_bytes(_with_snappy_data_blocks(plain))
    with open_checkpoint(tmp_path / "snappy.ckpt") as ckpt:
        assert _exact(ckpt.read("adam/m")) == _exact(zeros)
    (tmp_path / "bomb.ckpt").write_bytes(_with_snappy_data_blocks(plain, declared=10**9))
    with pytest.raises(
        CorruptCheckpointError,
        match=r"^.*bomb\.ckpt: the tensor list \(the record under the empty key\) does not decode "
        r"\(data block at byte 0: bad snappy data \(declares 1000000000 bytes, more than the "
        r"\d+ allowed\)\)\. The file is damaged or incomplete; copy it again from its source\.$",
    ):
        open_checkpoint(tmp_path / "bomb.ckpt")


def _v1_corpus_files(corpus: Path) -> list[Path]:
    corpus2 = corpus.parent / "corpus2"
    return [
        corpus / "255BITS__vocal-autoencoder/model.ckpt",
        corpus / "Gknoblau__nxt-tensorflow/initial_commit_38b9f86/model.ckpt",
        corpus / "Gknoblau__nxt-tensorflow/past_attempts/safe_model.ckpt",
        corpus / "Gknoblau__nxt-tensorflow/video_weights.ckpt",
        corpus / "tensorflow__serving/tensorflow_serving/servables/tensorflow/testdata/"
        "bad_half_plus_two/00000123/export",
        corpus / "tensorflow__serving/tensorflow_serving/session_bundle/testdata/half_plus_two/"
        "00000123/export-00000-of-00001",
        corpus2 / "AloshkaD__traffic-signs/model.ckpt",
    ]


def _listing(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """The VARIABLES.txt listing of one corpus checkpoint."""
    root = next(p for p in path.parents if (p / "VARIABLES.txt").is_file())
    relative = str(path.relative_to(root.parent))
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    current = False
    for line in (root / "VARIABLES.txt").read_text().splitlines():
        if line.startswith("== "):
            current = line[3:].split("  ")[0] == relative
        elif current and (row := re.match(r"^\s+(\S+) \[([0-9, ]*)\] (\w+)$", line)):
            shape = tuple(int(d) for d in row.group(2).split(",") if d.strip())
            out[row.group(1)] = (shape, row.group(3))
    return out


@pytest.mark.tf
def test_corpus_v1_files_match_tensorflow_and_their_listing(corpus: Path) -> None:
    for path in _v1_corpus_files(corpus):
        assert not path.with_name(path.name + ".index").exists(), path
        reader = v1.train.NewCheckpointReader(str(path))
        with open_checkpoint(path) as ckpt:
            assert ckpt.kind is CheckpointKind.TF1_V1
            listed = {k: (e.shape, e.dtype) for k, e in ckpt.entries.items()}
            assert listed == _listing(path), path
            assert {k: tuple(s) for k, s in reader.get_variable_to_shape_map().items()} == {
                k: e.shape for k, e in ckpt.entries.items()
            }
            for key in ckpt.entries:
                assert _exact(ckpt.read(key)) == _exact(reader.get_tensor(key)), (path, key)


def test_opening_and_reading_never_imports_tensorflow(corpus: Path) -> None:
    files = [str(p) for p in _v1_corpus_files(corpus)]
    code = (
        "import sys\n"
        "from ckptbridge.format import open_checkpoint\n"
        f"for path in {files!r}:\n"
        "    with open_checkpoint(path) as ckpt:\n"
        "        total = sum(ckpt.read(key).size for key in ckpt.entries)\n"
        "print(ckpt.kind.value, total > 0, sorted(m for m in sys.modules if 'tensorflow' in m))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tf1-v1", "True", "[]"]


# -- damage --------------------------------------------------------------------------------------


@pytest.fixture
def damaged(small: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(small, tmp_path / small.name))


def _read_all(path: Path) -> dict[str, Any]:
    with open_checkpoint(path) as ckpt:
        return {key: _exact(ckpt.read(key)) for key in ckpt.entries}


@pytest.mark.parametrize("keep", [0, 20, 48, 100, -9, -1])
def test_truncated_file(damaged: Path, keep: int) -> None:
    damaged.write_bytes(damaged.read_bytes()[:keep])
    with pytest.raises(
        CorruptCheckpointError,
        match=r"^.*small\.ckpt is not a checkpoint: there is no small\.ckpt\.index beside it and "
        r"the file does not end with the table magic number\. A checkpoint path is a prefix .*$",
    ):
        open_checkpoint(damaged)


def test_every_single_byte_flip_is_caught_or_harmless(small: Path, damaged: Path) -> None:
    original = small.read_bytes()
    expected = _read_all(small)
    caught = 0
    for position in range(len(original)):
        flipped = bytearray(original)
        flipped[position] ^= 0x41
        damaged.write_bytes(bytes(flipped))
        try:
            result = _read_all(damaged)
        except CkptBridgeError as exc:
            assert str(damaged) in str(exc)
            caught += 1
            continue
        assert result == expected, f"flip at byte {position} gave different values silently"
    assert caught > len(original) * 3 // 4  # the rest: footer padding, the meta-index block


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"garbage" * 20, r"is not a checkpoint: there is no"),
        (b"\x07" * 60 + struct.pack("<Q", 0xDB4775248B80FB57), r"is not a readable V1 checkpoint"),
        (build_table([(b"a", b"b")]), r"is a table without a V1 tensor list"),
        (build_table([(b"", b"\xff\xff")]), r"the tensor list .* does not decode"),
    ],
)
def test_garbage(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "model.ckpt").write_bytes(content)
    with pytest.raises(
        CorruptCheckpointError, match=rf"^{re.escape(str(tmp_path))}/model\.ckpt.*{reason}"
    ):
        open_checkpoint(tmp_path / "model.ckpt")


def test_huge_shape_with_little_data_does_not_allocate(tmp_path: Path) -> None:
    path = _write_v1(
        tmp_path / "huge.ckpt",
        [("w", [2**40, 2**10], 1, [[(0, 2**40), (0, 2**10)]], [_tensor_proto(float_val=[1.0])])],
    )
    with open_checkpoint(path) as ckpt:
        assert ckpt.entries["w"].shape == (2**40, 2**10)
        with pytest.raises(
            CorruptCheckpointError,
            match=r"^.*huge\.ckpt: tensor 'w' slice \[\(0, 1099511627776\), \(0, 1024\)\] does not "
            r"decode \(holds 4 value bytes, expected 1125899906842624 float32 values\)\. The file "
            r"is damaged or incomplete; copy it again from its source\.$",
        ):
            ckpt.read("w")


@pytest.mark.parametrize(
    ("slices", "message"),
    [
        ([[(0, 3)], [(2, 1)]], r"slices \[\(0, 3\)\] and \[\(2, 1\)\] overlap"),
        ([[(0, 2)], [(3, 1)]], r"its slices hold 3 elements, the full shape \[4\] needs 4"),
        ([[(0, 5)]], r"slice \[0, \+5\) lies outside a dimension of size 4"),
    ],
)
def test_slices_that_do_not_tile_the_tensor(
    tmp_path: Path, slices: list[list[tuple[int, int]]], message: str
) -> None:
    protos = [_tensor_proto(float_val=[0.0] * extents[0][1]) for extents in slices]
    path = _write_v1(tmp_path / "bad.ckpt", [("w", [4], 1, slices, protos)])
    with pytest.raises(CorruptCheckpointError, match=rf"^.*bad\.ckpt: tensor 'w': {message}"):
        open_checkpoint(path)


def test_slice_record_missing_or_short(tmp_path: Path) -> None:
    path = _write_v1(
        tmp_path / "short.ckpt", [("w", [3], 1, [[(0, 3)]], [_tensor_proto(float_val=[1.0, 2.0])])]
    )
    with (
        open_checkpoint(path) as ckpt,
        pytest.raises(
            CorruptCheckpointError, match=r"holds 8 value bytes, expected 3 float32 values"
        ),
    ):
        ckpt.read("w")
