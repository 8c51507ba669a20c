"""The format layer under hostile input: regressions for damaged real checkpoints, plus a bounded fuzz.

Checkpoints are written by real TensorFlow code (a TF1 ``Saver`` with a partitioned variable, a
Keras 3 model saved by ``tf.train.Checkpoint``) or copied from the corpus into ``tmp_path``; damage is
applied to the copies. Every outcome must be correct data or a ``CkptBridgeError``.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptbridge import CheckpointNotFoundError, CkptBridgeError, CorruptCheckpointError, inspect
from ckptbridge.format import OBJECT_GRAPH_KEY, ObjectGraph, ObjNode, open_checkpoint
from ckptbridge.format._bundle_proto import EntryProto, decode_entry, encode_entry, encode_header
from ckptbridge.format._table import MAGIC, _BlockBuilder, _emit, build_table, read_table


@pytest.fixture(scope="module")
def tf1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("tf1")
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        tf.compat.v1.get_variable("dense/kernel", [3, 4])
        tf.compat.v1.get_variable(
            "part", [6, 2], partitioner=tf.compat.v1.fixed_size_partitioner(3)
        )
        tf.compat.v1.Variable([b"ab", b"c"], name="strs")
        tf.compat.v1.train.get_or_create_global_step()
        sess.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver().save(sess, str(folder / "model.ckpt"), global_step=7)
    return folder


@pytest.fixture(scope="module")
def keras3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras
    import tensorflow as tf

    folder = tmp_path_factory.mktemp("k3")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    tf.train.Checkpoint(model=model).save(str(folder / "ckpt"))
    return folder


def _copy(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        shutil.copy(path, dest / path.name)
    return dest


def _read_all(prefix: Path) -> dict[str, Any]:
    with open_checkpoint(prefix) as ckpt:
        values = {key: np.array(ckpt.read(key)) for key in ckpt.entries}
        graph = ckpt.object_graph
        if graph is not None:
            graph.variables()
        _ = ckpt.meta
    inspect(prefix)
    return values


# -- partitioned entries ---------------------------------------------------------------------------
def test_overlapping_slices_are_rejected_not_returned_as_garbage(
    tf1_dir: Path, tmp_path: Path
) -> None:
    folder = _copy(tf1_dir, tmp_path / "c")
    index = folder / "model.ckpt-7.index"
    items = read_table(index.read_bytes(), "x")
    for i, (key, value) in enumerate(items):
        if key == b"part":  # slices rows 0-2, 2-4, 4-6: list the first twice, drop the second
            entry = decode_entry(value)
            entry.slices = [entry.slices[0], entry.slices[0], entry.slices[2]]
            items[i] = (key, encode_entry(entry))
    index.write_bytes(build_table(items))
    with open_checkpoint(folder / "model.ckpt-7") as ckpt:
        assert ckpt.read("dense/kernel").shape == (3, 4)
        with pytest.raises(CorruptCheckpointError, match=r"'part'.* overlap"):
            ckpt.read("part")


def _crafted(folder: Path, entries: dict[bytes, EntryProto]) -> Path:
    items = [(b"", encode_header(1))] + [(k, encode_entry(v)) for k, v in sorted(entries.items())]
    (folder / "x.index").write_bytes(build_table(items))
    (folder / "x.data-00000-of-00001").write_bytes(b"")
    return folder / "x"


@pytest.mark.parametrize(
    "shape", [(0, 1 << 62), (1 << 40, 1 << 40, 0), (0,) * 65], ids=["huge", "product", "rank"]
)
def test_empty_tensor_with_an_unrepresentable_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    prefix = _crafted(tmp_path, {b"w": EntryProto(dtype=1, shape=shape, size=0)})
    with pytest.raises(CorruptCheckpointError, match=r"entry 'w': shape .* cannot be represented"):
        open_checkpoint(prefix)


def test_index_keys_that_decode_to_the_same_name(tmp_path: Path) -> None:
    entries = {k: EntryProto(dtype=1, shape=(0,)) for k in (b"w\xfe", b"w\xff")}
    with pytest.raises(CorruptCheckpointError, match=r"keys .* are not UTF-8"):
        open_checkpoint(_crafted(tmp_path, entries))


# -- the state file --------------------------------------------------------------------------------
def test_state_file_with_a_bad_escape(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model\\x"\n')
    with pytest.raises(CorruptCheckpointError, match=r"checkpoint:1: .*escape"):
        open_checkpoint(tmp_path)


def test_state_file_that_is_a_symlink_loop(tf1_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tf1_dir, tmp_path / "c")
    (folder / "checkpoint").unlink()
    os.symlink("checkpoint", folder / "checkpoint")
    with pytest.raises(CorruptCheckpointError, match=r"cannot be read"):
        open_checkpoint(folder)


def test_state_file_naming_an_absent_step_lists_each_place_once(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "m-99"\n')
    expected = f"looked for {tmp_path / 'm-99'}), and no other checkpoint is present"
    with pytest.raises(CheckpointNotFoundError) as info:
        open_checkpoint(tmp_path)
    assert expected in str(info.value)


# -- resolution of suffixed paths ------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".data-00000-of-00001", ".meta"])
def test_suffixed_file_without_its_index_names_the_missing_index(
    tf1_dir: Path, tmp_path: Path, suffix: str
) -> None:
    folder = _copy(tf1_dir, tmp_path / "c")
    (folder / "model.ckpt-7.index").unlink()
    with pytest.raises(CheckpointNotFoundError, match=r"model\.ckpt-7\.index.* is missing"):
        open_checkpoint(folder / f"model.ckpt-7{suffix}")


# -- crafted structures that used to exhaust memory or time ----------------------------------------
def test_deep_object_graph_is_refused_quickly(tmp_path: Path) -> None:
    depth = 20000  # 340 kB of proto; its paths alone were 1.7 GB of strings
    nodes = [ObjNode(children=[(i + 1, "abcdefgh")]) for i in range(depth)]
    nodes.append(ObjNode(attributes=[("VARIABLE_VALUE", "x", "k")]))
    graph = ObjectGraph.decode(ObjectGraph(nodes).encode())
    with pytest.raises(CorruptCheckpointError, match=r"object graph is too deep"):
        graph.variables()


def test_index_that_repeats_one_data_block_is_refused_at_once() -> None:
    out = bytearray()
    block = _BlockBuilder(16)
    for i in range(1000):
        block.add(b"key%06d" % i, b"v" * 40)
    handle = _emit(out, block.finish())
    index = _BlockBuilder(1)
    for i in range(200):  # 200 x 1000 entries, each handle the same block
        index.add(b"k%08d" % i, handle)
    meta = _emit(out, _BlockBuilder(16).finish())
    index_handle = _emit(out, index.finish())
    data = bytes(out) + (meta + index_handle).ljust(40, b"\x00") + struct.pack("<Q", MAGIC)
    with pytest.raises(ValueError, match=r"^x: data block at byte 0 overlaps"):
        read_table(data, "x")


# -- bounded fuzz over real checkpoints ------------------------------------------------------------
def _mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    if not buf:
        return b"\x00"
    op = rng.randrange(5)
    i = rng.randrange(len(buf))
    if op == 0:
        buf[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        del buf[i:]
    elif op == 2:
        buf[i : i + 32] = bytes(len(buf[i : i + 32]))
    elif op == 3:
        buf[i:i] = rng.choice([b"\xff" * 10 + b"\x01", b"\x80\x80\x80\x80\x10", b"\x00"])
    else:
        buf[i] = rng.choice([0, 0xFF, 0x7F, 0x80])
    return bytes(buf)


def _outcome(prefix: Path, reference: dict[str, Any]) -> None:
    try:
        values = _read_all(prefix)
    except CkptBridgeError:
        return
    for key, value in values.items():
        if key in reference and value.dtype != object and value.shape == reference[key].shape:
            np.testing.assert_array_equal(value, reference[key])  # CRC must catch data damage


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1), which=st.sampled_from(["tf1", "k3", "corpus"]))
def test_fuzz_mutated_real_checkpoints(
    tf1_dir: Path,
    keras3_dir: Path,
    corpus: Path,
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    which: str,
) -> None:
    rng = random.Random(seed)
    sources = {
        "tf1": (tf1_dir, "model.ckpt-7"),
        "k3": (keras3_dir, "ckpt-1"),
        "corpus": (corpus / "CR-Ko__BNN" / "model-basic", "model.ckpt"),
    }
    src, name = sources[which]
    reference = _read_all(src / name)
    folder = _copy(src, tmp_path_factory.mktemp("fuzz"))
    target = rng.choice(sorted(p for p in folder.iterdir() if p.name.startswith(name)))
    if target.name.endswith(".index") and rng.random() < 0.5:  # damage records, keep valid CRCs
        items = read_table(target.read_bytes(), str(target))
        j = rng.randrange(len(items))
        items[j] = (items[j][0], _mutate(items[j][1], rng))
        target.write_bytes(build_table(items))
    else:
        target.write_bytes(_mutate(target.read_bytes(), rng))
    assert OBJECT_GRAPH_KEY not in reference or which == "k3"
    _outcome(folder / name, reference)
