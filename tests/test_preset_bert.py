"""The ``bert`` preset: Google's original TF1 BERT checkpoint -> keras-hub ``BertBackbone``.

The TF1 side is a small BERT written like google-research/bert ``modeling.py`` (same variable
scopes, ``get_variable``, token-type one-hot matmul, sliced position table, ``contrib``'s layer norm
with epsilon 1e-12, GELU's tanh approximation, -10000 added to padded keys, tanh pooler on the
first token), saved by a TF1 ``Saver`` with the ``cls/`` pre-training heads, ``global_step`` and
an ``AdamWeightDecayOptimizer`` slot beside it. keras-hub's BertBackbone uses
``gelu(approximate=True)``, LayerNormalization(epsilon=1e-12) and masks padded keys with -1e9,
so the outputs agree to float32 rounding.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import ckptbridge
from ckptbridge.rules import Reshape, load_rules
from test_engine_converters_attention import tf1_attention, tf1_dense

v1 = tf.compat.v1
VOCAB, H, HEADS, LAYERS, INTER, MAX_POS = 50, 16, 2, 2, 32, 12
B, T = 2, 7
TOKENS = np.array([[2, 17, 5, 33, 48, 9, 1], [2, 40, 11, 3, 0, 0, 0]], np.int32)
SEGMENTS = np.array([[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0, 0]], np.int32)
MASK = np.array([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]], np.int32)


def layer_norm(x: Any, name: str) -> Any:
    """``tf.contrib.layers.layer_norm(begin_norm_axis=-1, begin_params_axis=-1)`` (eps 1e-12)."""
    with v1.variable_scope(name):
        gamma = v1.get_variable("gamma", [H], initializer=v1.random_normal_initializer(1.0, 0.2))
        beta = v1.get_variable("beta", [H], initializer=v1.random_normal_initializer(0.0, 0.2))
    mean, variance = tf.nn.moments(x, [-1], keepdims=True)
    return tf.nn.batch_normalization(x, mean, variance, beta, gamma, variance_epsilon=1e-12)


def gelu(x: Any) -> Any:
    """modeling.py's GELU: the tanh approximation."""
    return x * 0.5 * (1.0 + tf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


def embeddings(tokens: Any, segments: Any) -> Any:
    init = v1.random_normal_initializer(stddev=0.5)
    with v1.variable_scope("embeddings"):
        word = v1.get_variable("word_embeddings", [VOCAB, H], initializer=init)
        out = tf.gather(word, tokens)
        types = v1.get_variable("token_type_embeddings", [2, H], initializer=init)
        one_hot = tf.one_hot(tf.reshape(segments, [-1]), depth=2)
        out += tf.reshape(tf.matmul(one_hot, types), [B, T, H])
        positions = v1.get_variable("position_embeddings", [MAX_POS, H], initializer=init)
        out += tf.slice(positions, [0, 0], [T, -1])[None]
        return layer_norm(out, "LayerNorm")


def encoder_layer(x: Any, mask: Any) -> Any:
    with v1.variable_scope("attention"):
        attended = tf1_attention(x, mask, B, T, HEADS)
        with v1.variable_scope("output"):
            attended = layer_norm(attended + x, "LayerNorm")
    with v1.variable_scope("intermediate"):
        inner = gelu(tf1_dense(attended, INTER, "dense"))
    with v1.variable_scope("output"):
        return layer_norm(tf1_dense(inner, H, "dense") + attended, "LayerNorm")


def tf1_bert(tokens: Any, segments: Any, mask: Any) -> tuple[Any, Any]:
    """Sequence output [B, T, H] and pooled output [B, H], under modeling.py's scopes."""
    with v1.variable_scope("bert"):
        x = tf.reshape(embeddings(tokens, segments), [B * T, H])
        with v1.variable_scope("encoder"):
            for i in range(LAYERS):
                with v1.variable_scope(f"layer_{i}"):
                    x = encoder_layer(x, mask)
        sequence = tf.reshape(x, [B, T, H])
        with v1.variable_scope("pooler"):
            pooled = tf.tanh(tf1_dense(sequence[:, 0], H, "dense"))
    with v1.variable_scope("cls/predictions"):  # pre-training heads: ignored by the preset
        v1.get_variable("output_bias", [VOCAB], initializer=v1.zeros_initializer())
    with v1.variable_scope("cls/seq_relationship"):
        v1.get_variable("output_weights", [2, H], initializer=v1.zeros_initializer())
    v1.train.get_or_create_global_step()
    with v1.variable_scope("bert/pooler/dense/kernel"):  # an AdamWeightDecayOptimizer slot
        v1.get_variable("adam_m", [H, H], initializer=v1.zeros_initializer(), trainable=False)
    return sequence, pooled


@pytest.fixture(scope="module")
def bert_checkpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, np.ndarray, np.ndarray]:
    """A Google-BERT-shaped TF1 checkpoint and its sequence and pooled outputs."""
    directory = tmp_path_factory.mktemp("bert")
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(4)
        tokens = v1.placeholder(tf.int32, [B, T])
        segments = v1.placeholder(tf.int32, [B, T])
        mask = v1.placeholder(tf.int32, [B, T])
        sequence, pooled = tf1_bert(tokens, segments, mask)
        sess.run(v1.global_variables_initializer())
        feed = {tokens: TOKENS, segments: SEGMENTS, mask: MASK}
        seq_out, pooled_out = sess.run([sequence, pooled], feed)
        prefix = Path(v1.train.Saver().save(sess, str(directory / "bert_model.ckpt")))
    return prefix, seq_out, pooled_out


def backbone() -> Any:
    return keras_hub.models.BertBackbone(
        vocabulary_size=VOCAB,
        num_layers=LAYERS,
        num_heads=HEADS,
        hidden_dim=H,
        intermediate_dim=INTER,
        max_sequence_length=MAX_POS,
    )


def run_backbone(model: Any) -> tuple[np.ndarray, np.ndarray]:
    out = model({"token_ids": TOKENS, "segment_ids": SEGMENTS, "padding_mask": MASK})
    return np.asarray(out["sequence_output"]), np.asarray(out["pooled_output"])


def test_preset_loads_by_name() -> None:
    rules = load_rules("preset:bert")
    assert rules.ignore == ("cls/.*", ".*/adam_[mv]")
    assert len(rules.rename) == 11


@pytest.mark.tf
def test_restored_backbone_equals_the_tf1_graph(
    bert_checkpoint: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    prefix, seq_expected, pooled_expected = bert_checkpoint
    model = backbone()
    report = ckptbridge.restore(model, prefix, rules="preset:bert")
    assert report.complete
    assert report.unused == []
    assert sorted(report.ignored) == ["bert/pooler/dense/kernel/adam_m", "cls/predictions/output_bias",
                                      "cls/seq_relationship/output_weights"]  # fmt: skip
    assert [a.name for a in report.auxiliary] == ["global_step"]
    seq_got, pooled_got = run_backbone(model)
    # float32 with H=16: what differs is summation order, where the 1/sqrt(head_dim) scaling is
    # applied (Keras scales the query, modeling.py the scores) and the padding adder (-10000 in
    # modeling.py, -1e9 in Keras; exp() of either underflows to 0). Measured max |diff| ~1e-6.
    np.testing.assert_allclose(seq_got, seq_expected, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(pooled_got, pooled_expected, rtol=1e-5, atol=2e-5)


@pytest.mark.tf
def test_plan_decides_every_projection_by_name(
    bert_checkpoint: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    prefix, _, _ = bert_checkpoint
    plan = ckptbridge.plan(prefix, backbone(), rules="preset:bert")
    assert plan.complete
    by_target = {m.target: m for m in plan.matches}
    assert len(by_target) == 5 + 16 * LAYERS + 2
    for i in range(LAYERS):
        for p in ("query", "key", "value"):
            m = by_target[f"transformer_layer_{i}/self_attention_layer/{p}/kernel"]
            assert m.sources == (f"bert/encoder/layer_{i}/attention/self/{p}/kernel",)
            assert m.steps == (Reshape(shape=(H, HEADS, H // HEADS)),)
            assert m.reason == "rule rename[4]"
        out = by_target[f"transformer_layer_{i}/self_attention_layer/attention_output/kernel"]
        assert out.sources == (f"bert/encoder/layer_{i}/attention/output/dense/kernel",)
        assert out.steps == (Reshape(shape=(HEADS, H // HEADS, H)),)
        ffn = by_target[f"transformer_layer_{i}/feedforward_output_dense/kernel"]
        assert ffn.sources == (f"bert/encoder/layer_{i}/output/dense/kernel",)


@pytest.mark.tf
def test_without_the_preset_the_family_is_recognised(
    bert_checkpoint: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    """No rules: the layout is recognised as Google's BERT and preset:bert's renames decide every
    pair; the pre-training heads and the optimizer slot are left unused, never candidates."""
    prefix, seq_expected, pooled_expected = bert_checkpoint
    model = backbone()
    report = ckptbridge.restore(model, prefix)
    assert report.complete
    assert report.plan is not None and report.plan.family == "Google BERT (TF1 modeling.py)"
    assert sorted(report.unused) == ["bert/pooler/dense/kernel/adam_m", "cls/predictions/output_bias",
                                     "cls/seq_relationship/output_weights"]  # fmt: skip
    assert {m.reason.rsplit(" rename[", 1)[0] for m in report.matched} == {
        "Google BERT (TF1 modeling.py): preset:bert"
    }
    seq_got, pooled_got = run_backbone(model)
    np.testing.assert_allclose(seq_got, seq_expected, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(pooled_got, pooled_expected, rtol=1e-5, atol=2e-5)


def test_position_table_size_mismatch_is_explained(
    bert_checkpoint: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    prefix, _, _ = bert_checkpoint
    model = keras_hub.models.BertBackbone(vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS,
                                          hidden_dim=H, intermediate_dim=INTER, max_sequence_length=20)  # fmt: skip
    with pytest.raises(
        ckptbridge.NotFoundError,
        match=r"variable 'position_embedding/embeddings' \(20, 16\) has no match in .*"
        r"Closest: 'bert/embeddings/position_embeddings' \(12, 16\)",
    ):
        ckptbridge.restore(model, prefix, rules="preset:bert")
