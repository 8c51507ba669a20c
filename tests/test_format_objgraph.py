"""The TF2 object graph: decoded from real TensorFlow checkpoints, encoded for writing."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ckptbridge.format import (
    OBJECT_GRAPH_KEY,
    BundleWriter,
    CheckpointKind,
    ObjectGraph,
    ObjNode,
    open_checkpoint,
    variable_key,
)

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras3_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    prefix = tmp_path_factory.mktemp("k3") / "ckpt"
    return str(tf.train.Checkpoint(model=model, optimizer=optimizer).write(str(prefix)))


@pytest.fixture(scope="module")
def slot_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    layer = tf.Module()
    layer.kernel = tf.Variable(np.ones((2, 3), np.float32))
    optimizer = tf.keras.optimizers.legacy.Adam()
    optimizer.apply_gradients([(tf.ones((2, 3)), layer.kernel)])
    prefix = tmp_path_factory.mktemp("slots") / "ckpt"
    return str(tf.train.Checkpoint(net=layer, opt=optimizer).write(str(prefix)))


def test_keras3_variables_have_every_path(keras3_checkpoint: str) -> None:
    with open_checkpoint(keras3_checkpoint) as ckpt:
        assert ckpt.kind is CheckpointKind.TF2
        graph = ckpt.object_graph
        assert graph is not None
        variables = graph.variables()
        assert {v.key for v in variables} == set(ckpt.entries) - {OBJECT_GRAPH_KEY}
        kernel = next(v for v in variables if "model/_functional/_operations/1/_kernel" in v.paths)
        assert ckpt.read(kernel.key).shape == (3, 4)
        assert all(
            len(a.split("/")) <= len(b.split("/"))
            for v in variables
            for a, b in itertools.pairwise(v.paths)
        )


def test_encode_is_the_inverse_of_decode(keras3_checkpoint: str) -> None:
    with open_checkpoint(keras3_checkpoint) as ckpt:
        stored = ckpt.read(OBJECT_GRAPH_KEY).item()
        assert ckpt.object_graph is not None
        assert ckpt.object_graph.encode() == stored
        assert ObjectGraph.decode(stored).encode() == stored


def test_slot_variables_are_linked_to_variable_and_optimizer(slot_checkpoint: str) -> None:
    with open_checkpoint(slot_checkpoint) as ckpt:
        assert ckpt.object_graph is not None
        by_key = {v.key: v for v in ckpt.object_graph.variables()}
    kernel_key = "net/kernel/.ATTRIBUTES/VARIABLE_VALUE"
    assert by_key[kernel_key].paths == ("net/kernel",) and by_key[kernel_key].slot_of is None
    slots = {v.slot_name: v for v in by_key.values() if v.slot_of == kernel_key}
    assert sorted(slots) == ["m", "v"]
    assert slots["m"].optimizer_path == "opt"
    assert slots["m"].key == "net/kernel/.OPTIMIZER_SLOT/opt/m/.ATTRIBUTES/VARIABLE_VALUE"


def test_from_variables_is_restorable_by_tensorflow(tmp_path: Path) -> None:
    graph = ObjectGraph.from_variables({"dense/kernel": "dense/kernel", "dense/bias": "dense/bias"})
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    with BundleWriter(tmp_path / "ckpt") as writer:
        writer.add(variable_key("dense/kernel"), kernel)
        writer.add(variable_key("dense/bias"), np.ones(3, np.float32))
        writer.add(OBJECT_GRAPH_KEY, np.array(graph.encode(), dtype=object))
    root = tf.train.Checkpoint()
    root.dense = tf.Module()
    root.dense.kernel = tf.Variable(np.zeros((2, 3), np.float32))
    root.dense.bias = tf.Variable(np.zeros(3, np.float32))
    root.read(str(tmp_path / "ckpt")).assert_consumed()
    np.testing.assert_array_equal(root.dense.kernel.numpy(), kernel)


def test_renamed_changes_only_listed_keys() -> None:
    graph = ObjectGraph.from_variables(["a/w", "b/w"])
    renamed = graph.renamed({variable_key("a/w"): "x/.ATTRIBUTES/VARIABLE_VALUE"})
    assert [v.key for v in renamed.variables()] == [
        "x/.ATTRIBUTES/VARIABLE_VALUE",
        variable_key("b/w"),
    ]
    assert [v.key for v in graph.variables()] == [variable_key("a/w"), variable_key("b/w")]


def test_cycles_and_aliases_are_bounded() -> None:
    nodes = [
        ObjNode(children=[(1, "a"), (2, "b")]),
        ObjNode(children=[(2, "c"), (0, "root")]),
        ObjNode(children=[(1, "up")]),
    ]
    nodes[2].attributes.append(("VARIABLE_VALUE", "v", "b/.ATTRIBUTES/VARIABLE_VALUE"))
    graph = ObjectGraph.decode(ObjectGraph(nodes).encode())
    (var,) = graph.variables()
    assert var.paths[:3] == ("b", "a/c", "b/up/c")
    assert len(var.paths) == 32


def test_escaping_of_local_names() -> None:
    assert variable_key("model/layer.1/w") == "model/layer..1/w/.ATTRIBUTES/VARIABLE_VALUE"


def test_malformed_graph_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"refers to a node outside"):
        ObjectGraph.decode(
            ObjectGraph([ObjNode()]).encode() + b"\x0a\x02\x0a\x00" + b"\x0a\x04\x0a\x02\x08\x09"
        )
