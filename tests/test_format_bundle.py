"""The native bundle reader reads what TensorFlow writes: every dtype and shape, shards, slices."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ckptbridge import CkptBridgeError
from ckptbridge.format import CheckpointKind, open_checkpoint
from ckptbridge.format._bundle import BundleReader, data_path
from ckptbridge.format._bundle_proto import EntryProto, encode_entry, encode_header
from ckptbridge.format._table import build_table

pytestmark = pytest.mark.tf

NUMERIC = [
    "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool", "complex64", "complex128",
]  # fmt: skip
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def tensors(draw: st.DrawFn) -> np.ndarray[Any, Any]:
    """A random tensor of any checkpoint dtype (numeric, bfloat16 or string)."""
    kind = draw(st.sampled_from([*NUMERIC, "bfloat16", "string"]))
    shape = draw(SHAPES)
    if kind == "string":
        flat = draw(
            st.lists(
                # TensorFlow's get_tensor returns a string scalar as numpy bytes, which drop
                # trailing NULs: keep those out so that the comparison with TensorFlow holds.
                st.binary(max_size=20).map(lambda b: b.rstrip(b"\0") if not shape else b),
                min_size=int(np.prod(shape)),
                max_size=int(np.prod(shape)),
            )
        )
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        return out.reshape(shape)
    if kind == "bfloat16":
        base = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e3, 1e3, width=32)))
        return base.astype(ml_dtypes.bfloat16)
    return draw(hnp.arrays(np.dtype(kind), shape))


def same(ours: np.ndarray[Any, Any], theirs: Any) -> bool:
    theirs = np.asarray(theirs)
    if ours.dtype == object:
        return bool(ours.shape == theirs.shape and ours.tolist() == theirs.tolist())
    return bool(
        ours.dtype == theirs.dtype
        and ours.shape == theirs.shape
        and ours.tobytes() == theirs.tobytes()
    )


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(tensors(), min_size=1, max_size=4))
def test_reads_what_savev2_writes(
    tmp_path_factory: pytest.TempPathFactory, values: list[Any]
) -> None:
    prefix = str(tmp_path_factory.mktemp("savev2") / "m.ckpt")
    names = [f"t{i}/value" for i in range(len(values))]
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(values),
        tensors=[tf.constant(v) if v.dtype != object else tf.constant(v.tolist() if v.ndim else v.item(), tf.string, shape=v.shape) for v in values],
    )  # fmt: skip
    with open_checkpoint(prefix) as ckpt:
        assert ckpt.kind is CheckpointKind.TF1
        assert list(ckpt.entries) == sorted(names)
        for name, value in zip(names, values, strict=True):
            entry = ckpt.entries[name]
            assert entry.shape == value.shape
            assert entry.dtype == ("string" if value.dtype == object else value.dtype.name)
            assert same(ckpt.read(name), value)


def test_large_tensor_is_a_zero_copy_view(tmp_path: Path) -> None:
    value = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)
    prefix = str(tmp_path / "big")
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=["w"], shape_and_slices=[""], tensors=[tf.constant(value)]
    )
    with open_checkpoint(prefix) as ckpt:
        read = ckpt.read("w")
        assert ckpt.entries["w"].nbytes == value.nbytes
        np.testing.assert_array_equal(read, value)
        assert not read.flags.owndata and not read.flags.writeable
        location = ckpt.raw_location("w")
        assert location is not None and location.size == value.nbytes and location.offset == 0
    np.testing.assert_array_equal(read, value)  # still valid after close


@pytest.fixture(scope="module")
def sharded_and_sliced(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """A TF1 Saver(sharded=True) checkpoint on two CPU devices with a 3-way partitioned variable."""
    prefix = str(tmp_path_factory.mktemp("sharded") / "model.ckpt")
    config = tf.compat.v1.ConfigProto(device_count={"CPU": 2})
    with tf.Graph().as_default(), tf.compat.v1.Session(config=config) as sess:
        with tf.device("/cpu:0"):
            emb = tf.compat.v1.get_variable(
                "emb", shape=(10, 4), partitioner=tf.compat.v1.fixed_size_partitioner(3),
                initializer=tf.compat.v1.random_normal_initializer(seed=1),
            )  # fmt: skip
            big = tf.compat.v1.get_variable(  # slice offsets 67 and 134 need 2-byte key numbers
                "big", shape=(200, 2), partitioner=tf.compat.v1.fixed_size_partitioner(3)
            )
            step = tf.compat.v1.train.get_or_create_global_step()
        with tf.device("/cpu:1"):
            dense = tf.compat.v1.get_variable("dense/kernel", shape=(3, 2), dtype=tf.float64)
        sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver(sharded=True).save(sess, prefix)
        values = {
            "emb": sess.run(tf.concat(list(emb), 0)),
            "big": sess.run(tf.concat(list(big), 0)),
            "global_step": sess.run(step),
            "dense/kernel": sess.run(dense),
        }
    return prefix, values


def test_reads_sharded_and_sliced_saver_output(
    sharded_and_sliced: tuple[str, dict[str, Any]],
) -> None:
    prefix, values = sharded_and_sliced
    shards = sorted(p.name for p in Path(prefix).parent.glob("model.ckpt.data-*"))
    assert shards == ["model.ckpt.data-00000-of-00002", "model.ckpt.data-00001-of-00002"]
    with open_checkpoint(prefix) as ckpt:
        assert sorted(ckpt.entries) == ["big", "dense/kernel", "emb", "global_step"]
        assert ckpt.entries["emb"].sliced and ckpt.entries["emb"].shape == (10, 4)
        assert ckpt.raw_location("emb") is None
        for key, value in values.items():
            np.testing.assert_array_equal(ckpt.read(key), value)
        reader = tf.train.load_checkpoint(prefix)
        assert same(ckpt.read("emb"), reader.get_tensor("emb"))


def test_unknown_key_suggests_close_names(sharded_and_sliced: tuple[str, dict[str, Any]]) -> None:
    prefix, _ = sharded_and_sliced
    with (
        open_checkpoint(prefix) as ckpt,
        pytest.raises(KeyError, match=r"Did you mean 'dense/kernel'\?"),
    ):
        ckpt.read("dense/kernal")


# -- opening in one pass equals decoding and checking every record ---------------------------------
class _General(BundleReader):
    """The reader with its one-pass loader turned off: every record decoded, then checked."""

    def _load_stored(self, data: bytes) -> bool:
        return False


def _opened(reader: type[BundleReader], prefix: Path) -> object:
    try:
        got = reader(prefix)
    except CkptBridgeError as exc:
        return type(exc), str(exc)
    protos = {key: got._proto(key) for key in got.entries}
    ends = got._shard_ends()
    locations = {key: got.raw_location(key) for key in got.entries}
    return got.entries, protos, got._slices, got._broken, ends, locations, got.num_shards


_KEYS = st.one_of(
    st.sampled_from([b"w", b"dense/kernel", b"\x00w", b"w\xff", b"w\xfe", b"caf\xc3\xa9", b"_"]),
    st.binary(min_size=1, max_size=6),
    st.binary(min_size=1, max_size=4).map(lambda k: k * 50),  # lengths of two-byte varints
)


@st.composite
def _record(draw: st.DrawFn) -> bytes:
    dtype = draw(st.sampled_from([1, 1, 3, 7, 14, 21, 200]))  # float, int32, string, bf16, ...
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    itemsize = {1: 4, 3: 4, 14: 2}.get(dtype, 1)
    needed = int(np.prod(shape)) * itemsize
    size = draw(
        st.sampled_from([needed] * 12 + [needed + 1, needed + 5, 0, 1 << 15, 1 << 22, 1 << 40])
    )
    entry = EntryProto(
        dtype,
        shape,
        draw(st.sampled_from([0] * 12 + [1, 2, 7, -1])),
        draw(st.sampled_from([0] * 6 + [4, 200, 1 << 15, 1 << 22, 1 << 30, 1 << 40])),
        size,
        draw(st.integers(0, (1 << 32) - 1)),
    )
    if draw(st.integers(0, 9)) == 0:
        entry.slices = [[(0, None)] * len(shape)]
    data = bytearray(encode_entry(entry))
    if draw(st.integers(0, 7)) == 0:  # a damaged record
        position, mask = draw(st.integers(0, len(data) - 1)), draw(st.integers(1, 255))
        data[position] ^= mask
    return bytes(data)


@settings(max_examples=150, deadline=None)
@given(
    shards=st.integers(1, 3),
    records=st.dictionaries(_KEYS, _record(), max_size=6),
    sizes=st.lists(st.sampled_from([1 << 23, 1 << 23, 1 << 23, 0, 64]), min_size=3, max_size=3),
)
def test_one_pass_open_equals_the_general_open(
    shards: int, records: dict[bytes, bytes], sizes: list[int]
) -> None:
    """Any index: the same entries, records, shard extents and errors either way."""
    with tempfile.TemporaryDirectory() as folder:
        prefix = Path(folder) / "m"
        items = [(b"", encode_header(shards)), *sorted(records.items())]
        prefix.with_name("m.index").write_bytes(build_table(items))
        for shard in range(shards):
            with open(data_path(prefix, shard, shards), "wb") as out:
                out.truncate(sizes[shard])  # sparse
        assert _opened(BundleReader, prefix) == _opened(_General, prefix)


@pytest.mark.parametrize("base", [0, 100, 20000, 3 << 20, 1 << 29, 1 << 36])
def test_one_pass_open_reads_many_blocks_as_the_general_open(tmp_path: Path, base: int) -> None:
    """Several data blocks, long keys (two-byte lengths), offsets and sizes of every varint
    length the one pass reads itself (and longer, read through STORED_TAIL), two shards; the
    offsets of each case grow from ``base``, so the shard ends depend on how they were read."""
    prefix = tmp_path / "m"
    records = {}
    for i in range(3000):
        key = f"layer_{i:05d}/" + "x" * (i % 300)
        shape, shard = ((i % 5, 3), i % 2) if i % 7 else ((i * 7,), 0)
        size = int(np.prod(shape)) * 4
        records[key.encode()] = encode_entry(EntryProto(1, shape, shard, base + i, size, i))
    items = [(b"", encode_header(2)), *sorted(records.items())]
    prefix.with_name("m.index").write_bytes(build_table(items))
    for shard in range(2):
        with open(data_path(prefix, shard, 2), "wb") as out:
            out.truncate(base + (1 << 20))  # sparse
    assert _opened(BundleReader, prefix) == _opened(_General, prefix)
    reader = BundleReader(prefix)
    assert reader._ends is not None and len(reader.entries) == 3000  # one pass
    assert reader._ends[0] == max(base + i + i * 28 for i in range(0, 3000, 7))


def test_one_pass_open_takes_what_tensorflow_writes(
    sharded_and_sliced: tuple[str, dict[str, Any]], corpus: Path
) -> None:
    prefixes = [Path(sharded_and_sliced[0])]
    prefixes += [Path(str(i)[: -len(".index")]) for i in sorted(corpus.rglob("*.index"))]
    for prefix in prefixes:
        assert _opened(BundleReader, prefix) == _opened(_General, prefix)
    assert BundleReader(prefixes[-1])._ends is not None  # a TF1 checkpoint: one pass
