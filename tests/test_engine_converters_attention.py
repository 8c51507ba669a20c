"""Attention converter: TF1 [H, H] dense kernels <-> Keras MultiHeadAttention, both directions.

Pure tests on literal specs first (which projection is which, reasons, ambiguity), then the
numeric proof: a real TF1 multi-head self-attention graph (the arithmetic of BERT's
``attention_layer``) against ``keras.layers.MultiHeadAttention`` (Keras 3 and tf-keras: the same
variable layout), restored with ``ckptbridge.restore`` and converted back through ``ckptbridge.plan``.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import ckptbridge
from ckptbridge.engine import derive
from ckptbridge.engine._plan import Match
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.converters import propose
from ckptbridge.engine.converters._attention import detect_attention, propose_attention
from ckptbridge.rules import Reshape
from ckptbridge.transforms import apply_steps

v1 = tf.compat.v1
FLAVOURS: dict[str, ModuleType] = {"keras3": keras, "tf_keras": tf_keras}
PROJ = ("query", "key", "value")
B, T, H, HEADS = 2, 5, 16, 2
MASK = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], np.int32)


# ---------------------------------------------------------------------------------------------
# Literal specs
# ---------------------------------------------------------------------------------------------


def tf1_block(
    scope: str, h: int = H, *, bert: bool = True, order: int | None = None
) -> list[VarSpec]:
    """A TF1 block: BERT scopes (``scope/self/query``, ``scope/output/dense``) or plain ones."""
    inner, out = (f"{scope}/self", f"{scope}/output/dense") if bert else (scope, f"{scope}/output")
    specs: list[VarSpec] = []
    for i, p in enumerate(PROJ):
        o = None if order is None else order + 2 * i
        specs += [VarSpec(f"{inner}/{p}/kernel", (h, h), order=o),
                  VarSpec(f"{inner}/{p}/bias", (h,), order=None if o is None else o + 1)]  # fmt: skip
    o = None if order is None else order + 6
    specs += [VarSpec(f"{out}/kernel", (h, h), order=o),
              VarSpec(f"{out}/bias", (h,), order=None if o is None else o + 1)]  # fmt: skip
    return specs


def keras_block(scope: str, d: int = H, heads: int = HEADS, *, order: int = 0) -> list[VarSpec]:
    """Keras MultiHeadAttention(num_heads=heads, key_dim=d // heads) variables, in creation order."""
    hd = d // heads
    specs: list[VarSpec] = []
    for p in PROJ:
        specs += [VarSpec(f"{scope}/{p}/kernel", (d, heads, hd), order=order + len(specs)),
                  VarSpec(f"{scope}/{p}/bias", (heads, hd), order=order + len(specs) + 1)]  # fmt: skip
    specs += [VarSpec(f"{scope}/attention_output/kernel", (heads, hd, d), order=order + 6),
              VarSpec(f"{scope}/attention_output/bias", (d,), order=order + 7)]  # fmt: skip
    return specs


def by_target(matches: list[Match]) -> dict[str, Match]:
    return {m.target: m for m in matches}


def test_detects_both_layouts() -> None:
    blocks = detect_attention(tf1_block("bert/encoder/layer_0/attention") + keras_block("mha"))
    got = sorted((b.layout, b.scope, b.heads, b.head_dim, len(b.roles)) for b in blocks)
    assert got == [
        ("keras", "mha", 2, 8, 8),
        ("tf1", "bert/encoder/layer_0/attention/self", None, None, 8),
    ]


def test_tf1_to_keras_is_pure_reshapes_with_heads_in_the_reason() -> None:
    matches, refused = propose_attention(tf1_block("layer_0/attention"), keras_block("mha"))
    assert refused == []
    m = by_target(matches)
    assert len(m) == 8
    q = m["mha/query/kernel"]
    assert q.sources == ("layer_0/attention/self/query/kernel",)
    assert q.steps == (Reshape(shape=(16, 2, 8)),)
    assert q.reason == (
        "converter attention: query kernel (16, 16) -> (16, 2, 8) splits 16 columns into 2 heads x 8; "
        "layer_0/attention/self -> mha, by order (block 1 of 1)"
    )
    assert m["mha/value/bias"].steps == (Reshape(shape=(2, 8)),)
    assert "splits 16 units into 2 heads x 8" in m["mha/value/bias"].reason
    out = m["mha/attention_output/kernel"]
    assert out.sources == ("layer_0/attention/output/dense/kernel",)
    assert out.steps == (Reshape(shape=(2, 8, 16)),)
    assert "splits 16 rows into 2 heads x 8" in out.reason
    assert m["mha/attention_output/bias"].steps == ()


def test_keras_to_tf1_joins_the_heads() -> None:
    matches, refused = propose_attention(keras_block("mha"), tf1_block("mha", bert=False))
    assert refused == []
    m = by_target(matches)
    assert m["mha/key/kernel"].sources == ("mha/key/kernel",)
    assert m["mha/key/kernel"].steps == (Reshape(shape=(16, 16)),)
    assert "joins 2 heads x 8 into 16 columns" in m["mha/key/kernel"].reason
    assert m["mha/output/kernel"].sources == ("mha/attention_output/kernel",)
    assert m["mha/output/kernel"].steps == (Reshape(shape=(16, 16)),)


def test_query_key_value_are_decided_by_name_not_order() -> None:
    # The TF1 graph created value, key, query in that order; the Keras layer query, key, value.
    source = tf1_block("att", order=0)
    rank = {"value": 0, "key": 10, "query": 20}
    source = [VarSpec(s.name, s.shape, order=rank.get(s.name.split("/")[2], 30) + i)
              for i, s in enumerate(source)]  # fmt: skip
    matches, _ = propose_attention(source, keras_block("mha"))
    for p in PROJ:
        assert by_target(matches)[f"mha/{p}/kernel"].sources == (f"att/self/{p}/kernel",)
    # and through the engine, whose structural pass alone would pair by creation order
    plan = derive(source, keras_block("mha"))
    assert plan.complete
    for p in PROJ:
        match = plan.match_for(f"mha/{p}/bias")
        assert match is not None and match.sources == (f"att/self/{p}/bias",)
        assert match.reason.startswith("converter attention:")


def test_tf2_checkpoint_keys_are_recognised() -> None:
    # tf.train.Checkpoint of a Keras 3 MultiHeadAttention: _query_dense/_kernel, _output_dense...
    attr = "/.ATTRIBUTES/VARIABLE_VALUE"
    source: list[VarSpec] = []
    for p in (*PROJ, "output"):
        kernel = (2, 8, 16) if p == "output" else (16, 2, 8)
        source += [VarSpec(f"model/_operations/1/_{p}_dense/_kernel{attr}", kernel),
                   VarSpec(f"model/_operations/1/_{p}_dense/bias{attr}",
                           (16,) if p == "output" else (2, 8))]  # fmt: skip
    matches, refused = propose_attention(source, tf1_block("layer_0/attention"))
    assert refused == []
    m = by_target(matches)
    assert m["layer_0/attention/output/dense/kernel"].sources == (
        f"model/_operations/1/_output_dense/_kernel{attr}",
    )
    assert m["layer_0/attention/self/value/bias"].steps == (Reshape(shape=(16,)),)


def test_blocks_pair_by_order_when_every_pair_fits() -> None:
    source = tf1_block("enc/layer_1/attention") + tf1_block("enc/layer_0/attention")
    target = keras_block("transformer_layer_0/mha") + keras_block(
        "transformer_layer_1/mha", order=8
    )
    m = by_target(propose_attention(source, target)[0])
    assert m["transformer_layer_1/mha/query/kernel"].sources == (
        "enc/layer_1/attention/self/query/kernel",
    )
    assert m["transformer_layer_1/mha/query/kernel"].reason.endswith("by order (block 2 of 2)")


def test_blocks_pair_by_unique_shape_when_counts_differ() -> None:
    source = tf1_block("a", 16) + tf1_block("b", 12)
    target = keras_block("mha", 12)
    m = by_target(propose_attention(source, target)[0])
    assert m["mha/query/kernel"].sources == ("b/self/query/kernel",)
    assert m["mha/query/kernel"].reason.endswith("by shape (the only block with these shapes)")


def test_ambiguous_blocks_are_refused_not_guessed() -> None:
    source = tf1_block("a") + tf1_block("b")
    target = keras_block("mha")
    matches, refused = propose_attention(source, target)
    assert matches == []
    assert sorted(u.target for u in refused) == sorted(s.name for s in target)
    why = refused[0].why
    assert why.startswith("2 source attention blocks fit Keras attention block 'mha' (2 heads x 8) "
                          "equally well: 'a/self', 'b/self'; their creation order does not settle it.")  # fmt: skip
    assert [c.name for c in refused[0].candidates] == ["a/self/query/kernel", "b/self/query/kernel"]
    # the engine reports them missing with that reason instead of pairing by order
    plan = derive(source, target)
    assert not plan.complete and {u.why for u in plan.missing} == {why}


def test_same_layout_on_both_sides_is_left_to_name_matching() -> None:
    assert propose_attention(keras_block("a"), keras_block("b")) == ([], [])
    assert propose_attention(tf1_block("a"), tf1_block("b")) == ([], [])


def test_mismatched_sizes_and_incomplete_blocks_are_left_alone() -> None:
    assert propose_attention(tf1_block("a", 12), keras_block("mha", 16)) == ([], [])
    no_key = [s for s in tf1_block("a") if "/key/" not in s.name]
    assert detect_attention(no_key) == []
    inconsistent = [VarSpec("m/query/kernel", (16, 2, 8)), VarSpec("m/key/kernel", (16, 4, 4)),
                    VarSpec("m/value/kernel", (16, 2, 8))]  # fmt: skip
    assert detect_attention(inconsistent) == []


def test_block_without_output_or_biases() -> None:
    source = [VarSpec(f"enc/{p}/kernel", (16, 16)) for p in PROJ]
    target = [VarSpec(f"mha/{p}/kernel", (16, 2, 8)) for p in PROJ]
    matches, _ = propose_attention(source, target)
    assert sorted(m.target for m in matches) == [
        f"mha/{p}/kernel" for p in ("key", "query", "value")
    ]
    # with biases on one side only the blocks do not fit each other: nothing is proposed
    assert propose_attention(tf1_block("enc", bert=False), target) == ([], [])


def test_rnn_and_attention_together_through_propose() -> None:
    lstm_tf1 = [VarSpec("rnn/lstm_cell/kernel", (12, 16)), VarSpec("rnn/lstm_cell/bias", (16,))]
    lstm_keras = [
        VarSpec("lstm/lstm_cell/kernel", (8, 16)),
        VarSpec("lstm/lstm_cell/recurrent_kernel", (4, 16)),
        VarSpec("lstm/lstm_cell/bias", (16,)),
    ]
    source, target = [*tf1_block("att"), *lstm_tf1], [*keras_block("mha"), *lstm_keras]
    result = propose(source, target)
    assert result.unmatched == []
    assert sorted(m.target for m in result.matches) == sorted(s.name for s in target)


# ---------------------------------------------------------------------------------------------
# Numeric proof with real TF1 graphs and real Keras layers
# ---------------------------------------------------------------------------------------------


def tf1_dense(x: Any, units: int, name: str, stddev: float = 0.3) -> Any:
    """``tf.layers.dense`` without activation, spelled with ``get_variable`` (kernel, bias)."""
    init = v1.random_normal_initializer(stddev=stddev)
    with v1.variable_scope(name):
        kernel = v1.get_variable("kernel", [int(x.shape[-1]), units], initializer=init)
        bias = v1.get_variable("bias", [units], initializer=init)
    return tf.matmul(x, kernel) + bias


def tf1_attention(
    x2d: Any, mask: Any, batch: int, seq: int, heads: int, *, bert: bool = True
) -> Any:
    """BERT ``attention_layer`` + output projection on [batch*seq, H] inputs; [batch*seq, H] out.

    Scopes: BERT's ``self/{query,key,value}`` + ``output/dense``, or plain ``{query,...}`` +
    ``output``. Padded keys get -10000 added to their scores, as in ``modeling.py``.
    """
    width = int(x2d.shape[-1])
    d = width // heads

    def split(y: Any) -> Any:
        return tf.transpose(tf.reshape(y, [batch, seq, heads, d]), [0, 2, 1, 3])

    with v1.variable_scope("self") if bert else contextlib.nullcontext():
        q, k, v = (tf1_dense(x2d, width, p) for p in PROJ)
    scores = tf.matmul(split(q), split(k), transpose_b=True) * (1.0 / math.sqrt(d))
    scores += (1.0 - tf.cast(mask[:, None, None, :], tf.float32)) * -10000.0
    context = tf.matmul(tf.nn.softmax(scores), split(v))
    context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch * seq, width])
    if bert:
        with v1.variable_scope("output"):
            return tf1_dense(context, width, "dense")
    return tf1_dense(context, width, "output")


def build_tf1(bert: bool, seed: int) -> tuple[Any, Any, Any]:
    """In the current graph: x, mask placeholders and the block's output under scope ``attention``."""
    v1.set_random_seed(seed)
    x = v1.placeholder(tf.float32, [B, T, H])
    mask = v1.placeholder(tf.int32, [B, T])
    with v1.variable_scope("attention"):
        y = tf1_attention(tf.reshape(x, [B * T, H]), mask, B, T, HEADS, bert=bert)
    return x, mask, tf.reshape(y, [B, T, H])


def inputs() -> np.ndarray:
    return np.random.default_rng(3).normal(size=(B, T, H)).astype(np.float32)


@pytest.fixture(scope="module", params=[True, False], ids=["bert_scopes", "plain_scopes"])
def tf1_checkpoint(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, np.ndarray, bool]:
    """A TF1 attention checkpoint and the graph's output on ``inputs()`` with ``MASK``."""
    bert = bool(request.param)
    directory = tmp_path_factory.mktemp("tf1_attention")
    with tf.Graph().as_default(), v1.Session() as sess:
        x, mask, y = build_tf1(bert, seed=1)
        sess.run(v1.global_variables_initializer())
        out = sess.run(y, {x: inputs(), mask: MASK})
        prefix = Path(v1.train.Saver().save(sess, str(directory / "model.ckpt")))
    return prefix, out, bert


def keras_mha(k: ModuleType) -> Any:
    layer = k.layers.MultiHeadAttention(num_heads=HEADS, key_dim=H // HEADS)
    x = inputs()
    layer(x, x, attention_mask=MASK[:, None, :].astype(bool))  # builds the variables
    return layer


def run_keras(layer: Any) -> np.ndarray:
    x = inputs()
    return np.asarray(layer(x, x, attention_mask=MASK[:, None, :].astype(bool)))


@pytest.mark.tf
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_tf1_checkpoint_restores_into_multi_head_attention(
    flavour: str, tf1_checkpoint: tuple[Path, np.ndarray, bool]
) -> None:
    prefix, expected, _ = tf1_checkpoint
    layer = keras_mha(FLAVOURS[flavour])
    report = ckptbridge.restore(layer, prefix)
    assert report.complete
    assert {m.reason.split(":")[0] for m in report.matched} == {"converter attention"}
    report.assert_consumed()
    # float32, H=16: the only differences are summation order and BERT's -10000 mask adder
    # versus Keras's -1e9 (exp of either underflows to 0), so 1e-5 holds.
    np.testing.assert_allclose(run_keras(layer), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.tf
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_keras_weights_convert_to_a_tf1_template(
    flavour: str, tf1_checkpoint: tuple[Path, np.ndarray, bool], tmp_path: Path
) -> None:
    template, _, bert = tf1_checkpoint
    layer = keras_mha(FLAVOURS[flavour])
    rng = np.random.default_rng(7)
    for w in layer.weights:
        w.assign(rng.normal(scale=0.3, size=tuple(w.shape)).astype(np.float32))
    expected = run_keras(layer)
    tf2_prefix = tf.train.Checkpoint(layer=layer).save(str(tmp_path / "tf2" / "ckpt"))
    plan = ckptbridge.plan(tf2_prefix, template)
    assert plan.complete and plan.unused == []
    assert all(m.reason.startswith("converter attention:") for m in plan.matches)
    values = ckptbridge.load_variables(tf2_prefix)
    converted = {
        m.target: apply_steps([values[s] for s in m.sources], m.steps) for m in plan.matches
    }
    converted_prefix = str(tmp_path / "tf1" / "model.ckpt")
    with tf.Graph().as_default(), v1.Session() as sess:  # write the converted TF1 checkpoint
        build_tf1(bert, seed=99)
        for var in v1.global_variables():
            var.load(converted[var.op.name], sess)
        v1.train.Saver().save(sess, converted_prefix)
    with tf.Graph().as_default(), v1.Session() as sess:  # a fresh TF1 graph restores it
        x, mask, y = build_tf1(bert, seed=5)
        v1.train.Saver().restore(sess, converted_prefix)
        got = sess.run(y, {x: inputs(), mask: MASK})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
