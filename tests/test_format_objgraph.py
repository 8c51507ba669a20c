"""The TF2 object graph: decoded from real TensorFlow checkpoints, encoded for writing."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ckptbridge.format import (
    OBJECT_GRAPH_KEY,
    BundleWriter,
    CheckpointKind,
    ObjectGraph,
    ObjNode,
    open_checkpoint,
    variable_key,
)
from ckptbridge.format._proto import encode_varint, field_bytes, field_varint

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


# -- the fast decoder equals the exact one ----------------------------------------------------------
def _varint(value: int, padding: int) -> bytes:
    """A varint, made ``padding`` bytes longer than needed (non-canonical, still valid)."""
    body = bytearray(encode_varint(value))
    if padding and len(body) + padding <= 10:
        body[-1] |= 0x80
        body += b"\x80" * (padding - 1) + b"\x00"
    return bytes(body)


_texts = st.one_of(
    st.sampled_from(["", "kernel", "VARIABLE_VALUE", "m", "0", "é/x"]),
    st.text(max_size=200),  # lengths of one and two bytes
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
)
_ids = st.one_of(st.integers(0, 5), st.integers(0, 1 << 33))  # ids outside the graph: an error
_unknown = st.one_of(  # fields TensorFlow's proto lacks, or known numbers in another wire type
    st.tuples(st.integers(1, 40), st.just(0), st.integers(0, (1 << 64) - 1)),
    st.tuples(
        st.integers(1, 40),
        st.just(2),
        st.one_of(  # bytes, or bytes that read as a node's own fields if misparsed
            st.binary(max_size=140),
            st.sampled_from([b"\n\x00", b"\n\x02\x08\x01", b"\x12\x02\x1a\x00*\x00"]),
            st.sampled_from([b"\n\x00", b"\n\x02\x08\x01", b"\x12\x02\x1a\x00*\x00"]),
        ),
    ),
    st.tuples(st.integers(1, 40), st.sampled_from([1, 5])),
    st.tuples(st.integers(1, 40), st.sampled_from([3, 4, 6, 7])),  # groups, invalid: errors
)


class _Noise:
    """What a drawn graph may hold beyond TensorFlow's layout (each example draws a mix)."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.padded, self.unknown, self.shuffled, self.damaged = (
            draw(st.booleans()) and draw(st.booleans()) for _ in range(4)
        )

    def pad(self) -> int:
        return self.draw(st.sampled_from([0, 0, 1, 3])) if self.padded else 0

    def field(self, number: int, value: int | str | bytes) -> bytes:
        if isinstance(value, int):
            return _varint(number << 3, self.pad()) + _varint(value, self.pad())
        data = value.encode() if isinstance(value, str) else value
        return _varint(number << 3 | 2, self.pad()) + _varint(len(data), self.pad()) + data

    def unknown_fields(self) -> list[bytes]:
        count = self.draw(st.sampled_from([0, 0, 1, 2])) if self.unknown else 0
        return [self.unknown_field() for _ in range(count)]

    def unknown_field(self) -> bytes:
        spec = self.draw(_unknown)
        number, wire = spec[0], spec[1]
        if wire in (0, 2):
            return self.field(number, spec[2])
        if wire in (1, 5):
            return encode_varint(number << 3 | wire) + b"\x01" * (8 if wire == 1 else 4)
        return encode_varint(number << 3 | wire)

    def order(self, parts: list[bytes]) -> bytes:
        return b"".join(self.draw(st.permutations(parts)) if self.shuffled else parts)

    def message(self, fields: list[tuple[int, st.SearchStrategy[int | str]]]) -> bytes:
        """A sub-message: each known field present or not (repeated when shuffled)."""
        parts = []
        for number, values in fields:
            counts = [1, 1, 1, 0, 2] if self.shuffled else [1, 1, 1, 0]
            for _ in range(self.draw(st.sampled_from(counts))):
                parts.append(self.field(number, self.draw(values)))
        return self.order(parts + self.unknown_fields())


@st.composite
def _graph(draw: st.DrawFn) -> bytes:
    noise = _Noise(draw)
    nodes = []
    for _ in range(draw(st.integers(0, 6))):
        parts: list[bytes] = []
        for _ in range(draw(st.integers(0, 3))):
            parts.append(field_bytes(1, noise.message([(1, _ids), (2, _texts)])))
        for _ in range(draw(st.integers(0, 2))):
            parts.append(field_bytes(2, noise.message([(1, _texts), (2, _texts), (3, _texts)])))
        for _ in range(draw(st.integers(0, 2))):
            parts.append(field_bytes(3, noise.message([(1, _ids), (2, _texts), (3, _ids)])))
        if draw(st.booleans()):
            parts.append(field_bytes(5, field_varint(1, 1)))  # has_checkpoint_values, as TF does
        nodes.append(noise.order(parts + noise.unknown_fields()))
    data = b"".join(noise.field(1, node) for node in nodes)
    if noise.unknown and draw(st.booleans()):
        data += noise.unknown_field()
    if noise.damaged:
        for position, mask in draw(
            st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)), max_size=2)
        ):
            if position < len(data):
                data = data[:position] + bytes([data[position] ^ mask]) + data[position + 1 :]
        data = data[: draw(st.integers(0, len(data)))]
    return data


def _var_node(fields: bytes, after: bytes = b"") -> bytes:
    """A node with one attribute named VARIABLE_VALUE (then ``fields``), then ``after``."""
    return field_bytes(1, field_bytes(2, b"\n\x0eVARIABLE_VALUE" + fields) + after)


def _outcome(decode: object, data: bytes) -> object:
    try:
        return decode(data).nodes  # type: ignore[operator]
    except ValueError as exc:
        return type(exc), str(exc)


@settings(max_examples=400, deadline=None)
@given(_graph())
@example(field_bytes(1, field_bytes(17, b"\n\x00")))  # a two-byte tag is not a one-byte one
@example(field_bytes(1, field_bytes(2, b"\n\x0eVARIABLE_VALUE")[:-1]))  # the name overruns
@example(field_bytes(1, field_bytes(1, b"\x08\xff\xff\xff\xff\x0f")))  # node id -1
@example(_var_node(b"\x12\x01f\x1a\x01k") + _var_node(b"\x12\x01f\x1a\x01k", b"*\x02\x08\x01"))
@example(_var_node(b"\x12\x01f\x1a\x01k", b"*\x02\x08\x00"))  # has_checkpoint_values false
@example(_var_node(b"\x12\x01f\x1a\x01k", b"*\x02\x08\x01*\x02\x08\x01"))  # twice
@example(_var_node(b"\x12\x01f\x1a\x01k", b"\x08\x01"))  # a number after the attribute
@example(_var_node(b"\x1a\x01k\x12\x01f") + _var_node(b"\x1a\x01k"))  # key first; no full name
@example(_var_node(b"\x12\x01f\x1a\x01k\x12\x01g"))  # the full name twice: the last wins
@example(_var_node(b"\x12\x01f\x1a\x05k"))  # the key overruns its attribute
@example(_var_node(b"\x12\x01f\x12\x01g") + _var_node(b"\x12\x01f\x22\x01k"))  # no key
@example(_var_node(b"\x22\x01f\x1a\x01k"))  # an unknown field where the full name goes
@example(_var_node(b"\x12\x01\xff\x1a\x02k\xc3"))  # not UTF-8: replaced as the exact path does
def test_fast_decoder_equals_the_exact_decoder(data: bytes) -> None:
    """Any bytes: the same nodes, or the same error, through the fast path and the exact path."""
    assert _outcome(ObjectGraph.decode, data) == _outcome(ObjectGraph.decode_exact, data)


def test_fast_decoder_equals_the_exact_decoder_on_the_corpora(corpus: Path, corpus2: Path) -> None:
    graphs = 0
    for index in sorted([*corpus.rglob("*.index"), *corpus2.rglob("*.index")]):
        with open_checkpoint(str(index)[: -len(".index")]) as ckpt:
            if ckpt.kind is not CheckpointKind.TF2:
                continue
            data = bytes(ckpt.read(OBJECT_GRAPH_KEY).reshape(-1)[0])
        assert ObjectGraph.decode(data).nodes == ObjectGraph.decode_exact(data).nodes, index
        graphs += 1
    assert graphs >= 26
