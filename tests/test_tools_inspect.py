"""`ckptbridge.inspect` and `ckptbridge.load_variables` on real checkpoints, without TensorFlow."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ckptbridge
from ckptbridge._text import fmt_shape, human_bytes, render_table
from ckptbridge.format import (
    OBJECT_GRAPH_KEY,
    BundleWriter,
    CheckpointKind,
    ObjectGraph,
    variable_key,
)


def test_inspect_tf1_directory(corpus: Path) -> None:
    info = ckptbridge.inspect(corpus / "Hishmad__basic-machine-learning" / "iris_model")
    assert info.kind.value == "tf1"
    assert info.prefix.endswith("model.ckpt-8000")
    assert len(info.entries) == 18 and info.entries[0].key == "dnn/hiddenlayer_0/biases"
    assert info.meta is not None and info.meta["tf_version"] == "1.0.0"
    assert info.warnings and "beside the state file" in info.warnings[0]
    text = str(info)
    assert "kind        tf1" in text and "dnn/logits/weights" in text and "(10, 3)" in text
    document = json.loads(info.to_json())
    assert document["entries"][0] == {
        "key": "dnn/hiddenlayer_0/biases",
        "dtype": "float32",
        "shape": [10],
        "nbytes": 40,
        "sliced": False,
    }
    assert document["total_bytes"] == info.total_bytes


def test_inspect_tf2_lists_object_paths(tmp_path: Path) -> None:
    graph = ObjectGraph.from_variables(["model/dense/kernel"])
    with BundleWriter(tmp_path / "ckpt") as writer:
        writer.add(variable_key("model/dense/kernel"), np.ones((2, 2), np.float32))
        writer.add(OBJECT_GRAPH_KEY, np.array(graph.encode(), dtype=object))
    info = ckptbridge.inspect(tmp_path / "ckpt")
    assert info.kind.value == "tf2"
    assert info.objects == [
        {"key": "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE", "full_name": "model/dense/kernel",
         "path": "model/dense/kernel", "paths": ["model/dense/kernel"], "slot_of": None,
         "slot_name": None, "optimizer_path": None}
    ]  # fmt: skip
    assert "model/dense/kernel" in str(info)
    variables = ckptbridge.load_variables(tmp_path / "ckpt")
    assert list(variables) == [variable_key("model/dense/kernel")]


def test_load_variables_returns_writable_copies(corpus: Path) -> None:
    variables = ckptbridge.load_variables(corpus / "CR-Ko__BNN" / "model-basic")
    assert sorted(variables) == ["v1", "v2"]
    variables["v1"] += 1
    np.testing.assert_allclose(variables["v1"], [1.1, 1.1], rtol=1e-6)


def test_inspect_does_not_import_tensorflow(corpus: Path) -> None:
    code = (
        "import sys, ckptbridge\n"
        f"info = ckptbridge.inspect({str(corpus / 'fv0008__char-rnn-writer')!r})\n"
        "ckptbridge.load_variables(info.prefix)\n"
        "print(len(info.entries), 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["17", "False"]


@pytest.mark.tf
def test_variant_entries_are_listed_but_not_loaded(tmp_path: Path) -> None:
    import tensorflow as tf

    iterator = iter(tf.data.Dataset.range(10))
    next(iterator)
    prefix = tf.train.Checkpoint(it=iterator, v=tf.Variable(2.0)).write(str(tmp_path / "ck"))
    info = ckptbridge.inspect(prefix)
    assert [(e.key, e.dtype) for e in info.entries][1:] == [
        ("it/.ATTRIBUTES/ITERATOR_STATE", "variant"),
        ("v/.ATTRIBUTES/VARIABLE_VALUE", "float32"),
    ]
    assert ckptbridge.load_variables(prefix) == {"v/.ATTRIBUTES/VARIABLE_VALUE": np.float32(2.0)}


@pytest.mark.tf
def test_inspect_shows_each_tf2_variables_saved_name(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc")], name="net")
    prefix = tf.train.Checkpoint(model=model).write(str(tmp_path / "ck"))
    info = ckptbridge.inspect(prefix)
    assert [(o["key"], o["full_name"]) for o in info.objects] == [
        ("model/_functional/_operations/1/_kernel/.ATTRIBUTES/VARIABLE_VALUE", "net/fc/kernel"),
        ("model/_functional/_operations/1/bias/.ATTRIBUTES/VARIABLE_VALUE", "net/fc/bias"),
    ] or sorted(o["full_name"] for o in info.objects) == ["net/fc/bias", "net/fc/kernel"]
    text = str(info)
    assert "saved name" in text
    assert any("net/fc/kernel" in line and "_kernel" in line for line in text.splitlines())


def _table_as_render_table_draws_it(info: ckptbridge.CheckpointInfo) -> str:
    """The entries table through the one generic renderer, for comparison."""
    rows = [
        (e.key, e.dtype, fmt_shape(e.shape), human_bytes(e.nbytes) + (" sliced" if e.sliced else ""))
        for e in info.entries
    ]  # fmt: skip
    return "\n".join(render_table(("key", "dtype", "shape", "bytes"), rows, rule=True))


def test_table_and_json_are_what_the_generic_renderers_give(tmp_path: Path) -> None:
    graph = ObjectGraph.from_variables(["model/dense/kernel"])
    with BundleWriter(tmp_path / "ckpt") as writer:
        writer.add(variable_key("model/dense/kernel"), np.ones((2, 2), np.float32))
        writer.add("a_scalar", np.float64(1.5))
        writer.add("empty", np.zeros((0, 3), np.int8))
        writer.add("names", np.array([b"x", b"yz"], dtype=object))
        writer.add('w\u00e9ight "q"\\', np.ones(3, np.float16))
        writer.add_slice("emb", (4, 2), (0, 0), np.ones((2, 2), np.float32))
        writer.add_slice("emb", (4, 2), (2, 0), np.ones((2, 2), np.float32))
        writer.add(OBJECT_GRAPH_KEY, np.array(graph.encode(), dtype=object))
    info = ckptbridge.inspect(tmp_path / "ckpt")
    assert any(e.sliced for e in info.entries) and any(e.shape == () for e in info.entries)
    text = str(info)
    assert _table_as_render_table_draws_it(info) in text
    assert text.endswith("\n\n" + "\n".join(render_table(
        ("object-graph variable", "saved name", "shortest path", "slot of"),
        [(str(o["key"]), str(o.get("full_name") or "-"), str(o["path"] or "-"),
          str(o["slot_of"] or "")) for o in info.objects],
        rule=True,
    )))  # fmt: skip
    for indent in (None, 0, 2, 4):
        assert info.to_json(indent) == json.dumps(info.to_dict(), indent=indent)
    out = io.StringIO()
    info.write_text(out)
    info.write_json(out)
    assert out.getvalue() == text + "\n" + info.to_json() + "\n"


def test_table_of_no_entries_is_the_header(tmp_path: Path) -> None:
    info = ckptbridge.CheckpointInfo(path="p", prefix="p", kind=CheckpointKind.TF1, entries=[])
    assert str(info).splitlines()[-2:] == ["key  dtype  shape  bytes", "---  -----  -----  -----"]
    assert info.to_json() == json.dumps(info.to_dict(), indent=2)
