"""GraphDef ops decoded without TensorFlow match what TensorFlow wrote (top level and functions)."""

from __future__ import annotations

import pytest
import tensorflow as tf

from ckptbridge.format import GraphNode, decode_graph

pytestmark = pytest.mark.tf
v1 = tf.compat.v1


def test_nodes_inputs_constants_attributes_and_while_bodies() -> None:
    with tf.Graph().as_default() as graph:
        x = v1.placeholder(tf.float32, (2, 8), name="x")
        parts = tf.split(x, 4, axis=1, name="split")
        tf.add(parts[2], 0.8, name="add")
        tf.constant(2.5, tf.float64, name="c64")
        tf.constant(3, tf.int32, name="c32")
        tf.constant(1.5, tf.float16, name="c16")
        tf.constant([1.0, 2.0], name="pair")
        tf.while_loop(lambda i: i < 3, lambda i: i + tf.constant(7, name="step"), [0], name="loop")
    data = graph.as_graph_def().SerializeToString()
    decoded = decode_graph(data)
    nodes = {(n.function, n.name): n for n in decoded.nodes}
    assert nodes[("", "add")].inputs == ("split:2", "add/y")
    assert nodes[("", "add/y")].value == 0.8  # the float32 as written, not 0.800000011920929
    assert nodes[("", "split")].number("num_split") == 4
    assert [nodes[("", n)].value for n in ("c64", "c32", "c16", "pair")] == [2.5, 3.0, 1.5, None]
    [loop] = [n for n in decoded.nodes if n.op in ("While", "StatelessWhile")]
    body = dict(loop.calls)["body"]
    assert body in decoded.functions
    assert any(n.function == body and n.value == 7 for n in decoded.nodes)
    assert isinstance(loop, GraphNode) and loop.function == ""


def test_empty_and_malformed() -> None:
    assert decode_graph(b"").nodes == []
    with pytest.raises(ValueError, match=r"^varint runs past the end of the buffer at byte 1$"):
        decode_graph(b"\x0a\x80")
