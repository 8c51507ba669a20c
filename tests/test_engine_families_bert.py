"""Google's ALBERT and ELECTRA (and BERT) TF1 layouts into keras-hub backbones, without rules.

The TF1 side is written like google-research/albert and /electra ``modeling.py`` (the same
variable scopes, ``get_variable``, one-hot token types, sliced position table, LayerNorm epsilon
1e-12, -10000 added to padded keys), in tiny configurations, saved by a TF1 ``Saver`` with the
released checkpoints' extra heads and an ``AdamWeightDecayOptimizer`` slot beside them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import ckptbridge
from ckptbridge.engine.families import bert_family
from test_engine_converters_attention import tf1_attention, tf1_dense

v1 = tf.compat.v1
VOCAB, E, H, HEADS, LAYERS, INTER, MAX_POS = 50, 8, 16, 2, 2, 32, 12
B, T = 2, 7
TOKENS = np.array([[2, 17, 5, 33, 48, 9, 1], [2, 40, 11, 3, 0, 0, 0]], np.int32)
SEGMENTS = np.array([[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 0, 0, 0]], np.int32)
MASK = np.array([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]], np.int32)
ALBERT = "Google ALBERT (TF1 modeling.py)"
ELECTRA = "Google ELECTRA (TF1 modeling.py)"


@pytest.fixture(autouse=True)
def fresh_layer_names() -> Iterator[None]:
    """Leave Keras's name counters as they were found: later tests expect ``dense``, not ``dense_93``."""
    yield
    keras.backend.clear_session()


def layer_norm(x: Any, name: str) -> Any:
    """``contrib.layers.layer_norm(begin_norm_axis=-1, begin_params_axis=-1)`` (eps 1e-12)."""
    width = int(x.shape[-1])
    with v1.variable_scope(name):
        gamma = v1.get_variable(
            "gamma", [width], initializer=v1.random_normal_initializer(1.0, 0.2)
        )
        beta = v1.get_variable("beta", [width], initializer=v1.random_normal_initializer(0.0, 0.2))
    mean, variance = tf.nn.moments(x, [-1], keepdims=True)
    return tf.nn.batch_normalization(x, mean, variance, beta, gamma, variance_epsilon=1e-12)


def gelu_tanh(x: Any) -> Any:
    """ALBERT's (and BERT's) GELU: the tanh approximation."""
    return x * 0.5 * (1.0 + tf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


def gelu_erf(x: Any) -> Any:
    """ELECTRA's GELU: the exact one."""
    return x * 0.5 * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


def embeddings(tokens: Any, segments: Any) -> Any:
    """``embedding_lookup`` + ``embedding_postprocessor`` in the current scope: [B*T, E]."""
    init = v1.random_normal_initializer(stddev=0.5)
    word = v1.get_variable("word_embeddings", [VOCAB, E], initializer=init)
    out = tf.gather(word, tokens)
    types = v1.get_variable("token_type_embeddings", [2, E], initializer=init)
    out += tf.reshape(tf.matmul(tf.one_hot(tf.reshape(segments, [-1]), depth=2), types), [B, T, E])
    positions = v1.get_variable("position_embeddings", [MAX_POS, E], initializer=init)
    out += tf.slice(positions, [0, 0], [T, -1])[None]
    return tf.reshape(layer_norm(out, "LayerNorm"), [B * T, E])


def adam_slot(var_scope: str, shape: list[int]) -> None:
    with v1.variable_scope(var_scope):
        v1.get_variable("adam_m", shape, initializer=v1.zeros_initializer(), trainable=False)


def tf1_albert(tokens: Any, segments: Any, mask: Any) -> tuple[Any, Any]:
    """albert ``modeling.py``: factorised embeddings, one shared layer group, tanh pooler."""
    with v1.variable_scope("bert"):
        with v1.variable_scope("embeddings"):
            emb = embeddings(tokens, segments)
        with v1.variable_scope("encoder"):
            x = tf1_dense(emb, H, "embedding_hidden_mapping_in")
            with v1.variable_scope("transformer", reuse=v1.AUTO_REUSE):
                for layer in range(LAYERS):
                    with v1.variable_scope(f"group_{layer * 1 // LAYERS}/inner_group_0"):
                        with v1.variable_scope("attention_1"):
                            attended = tf1_attention(x, mask, B, T, HEADS)
                        attended = layer_norm(attended + x, "LayerNorm")
                        with v1.variable_scope("ffn_1/intermediate"):
                            inner = gelu_tanh(tf1_dense(attended, INTER, "dense"))
                            with v1.variable_scope("output"):
                                out = tf1_dense(inner, H, "dense")
                        x = layer_norm(out + attended, "LayerNorm_1")
        sequence = tf.reshape(x, [B, T, H])
        with v1.variable_scope("pooler"):
            pooled = tf.tanh(tf1_dense(sequence[:, 0], H, "dense"))
    with v1.variable_scope("cls/predictions"):  # the pre-training heads
        layer_norm(tf1_dense(sequence[:, 0], E, "transform/dense"), "transform/LayerNorm")
        v1.get_variable("output_bias", [VOCAB], initializer=v1.zeros_initializer())
    with v1.variable_scope("cls/seq_relationship"):
        v1.get_variable("output_weights", [2, H], initializer=v1.zeros_initializer())
        v1.get_variable("output_bias", [2], initializer=v1.zeros_initializer())
    v1.train.get_or_create_global_step()
    adam_slot("bert/pooler/dense/kernel", [H, H])
    return sequence, pooled


def tf1_electra(tokens: Any, segments: Any, mask: Any) -> tuple[Any, Any]:
    """electra ``modeling.py`` (scope ``electra``): embeddings projected E -> H, BERT layers with
    the exact GELU, no pooler (its pooled output is the first token); the generator and the
    discriminator head beside it."""
    with v1.variable_scope("electra/embeddings"):
        emb = embeddings(tokens, segments)
    with v1.variable_scope("electra"):
        x = tf1_dense(emb, H, "embeddings_project")
        for layer in range(LAYERS):
            with v1.variable_scope(f"encoder/layer_{layer}"):
                with v1.variable_scope("attention"):
                    attended = tf1_attention(x, mask, B, T, HEADS)
                    with v1.variable_scope("output"):
                        attended = layer_norm(attended + x, "LayerNorm")
                with v1.variable_scope("intermediate"):
                    inner = gelu_erf(tf1_dense(attended, INTER, "dense"))
                with v1.variable_scope("output"):
                    x = layer_norm(tf1_dense(inner, H, "dense") + attended, "LayerNorm")
    sequence = tf.reshape(x, [B, T, H])
    with v1.variable_scope("discriminator_predictions"):  # [H, H] like a pooler, but not one
        tf1_dense(gelu_erf(tf1_dense(x, H, "dense")), 1, "dense_1")
    with v1.variable_scope("generator"):  # a smaller generator sharing electra/embeddings
        g = tf1_dense(emb, H // 2, "embeddings_project")
        with v1.variable_scope("encoder/layer_0/attention"):
            tf1_attention(g, mask, B, T, HEADS)
    with v1.variable_scope("generator_predictions"):
        layer_norm(tf1_dense(g, E, "dense"), "LayerNorm")
        v1.get_variable("output_bias", [VOCAB], initializer=v1.zeros_initializer())
    v1.train.get_or_create_global_step()
    adam_slot("electra/encoder/layer_0/output/dense/kernel", [INTER, H])
    return sequence, sequence[:, 0]


def _write(directory: Path, build: Any) -> tuple[Path, np.ndarray, np.ndarray]:
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(7)
        tokens, segments, mask = (v1.placeholder(tf.int32, [B, T]) for _ in range(3))
        sequence, pooled = build(tokens, segments, mask)
        sess.run(v1.global_variables_initializer())
        feed = {tokens: TOKENS, segments: SEGMENTS, mask: MASK}
        seq_out, pooled_out = sess.run([sequence, pooled], feed)
        prefix = Path(v1.train.Saver().save(sess, str(directory / "model.ckpt")))
    return prefix, seq_out, pooled_out


@pytest.fixture(scope="module")
def albert_checkpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, np.ndarray, np.ndarray]:
    return _write(tmp_path_factory.mktemp("albert"), tf1_albert)


@pytest.fixture(scope="module")
def electra_checkpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, np.ndarray, np.ndarray]:
    return _write(tmp_path_factory.mktemp("electra"), tf1_electra)


def albert_backbone() -> Any:
    return keras_hub.models.AlbertBackbone(
        vocabulary_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, num_groups=1,
        num_inner_repetitions=1, embedding_dim=E, hidden_dim=H, intermediate_dim=INTER,
        max_sequence_length=MAX_POS,
    )  # fmt: skip


def electra_backbone() -> Any:
    return keras_hub.models.ElectraBackbone(
        vocab_size=VOCAB, num_layers=LAYERS, num_heads=HEADS, hidden_dim=H, embedding_dim=E,
        intermediate_dim=INTER, max_sequence_length=MAX_POS,
    )  # fmt: skip


def run_backbone(model: Any) -> tuple[np.ndarray, np.ndarray]:
    out = model({"token_ids": TOKENS, "segment_ids": SEGMENTS, "padding_mask": MASK})
    return np.asarray(out["sequence_output"]), np.asarray(out["pooled_output"])


def test_families_are_recognised_only_with_a_keras_hub_target() -> None:
    albert = ["bert/encoder/transformer/group_0/inner_group_0/attention_1/self/query/kernel"]
    group = ["group_0_inner_layer_0/self_attention_layer/query/kernel"]
    family = bert_family(albert, group)
    assert family is not None and (family.name, family.preset) == (ALBERT, "albert")
    electra = bert_family(["electra/encoder/layer_3/attention/self/query/kernel"],
                          ["transformer_layer_3/self_attention_layer/query/kernel"])  # fmt: skip
    assert electra is not None and electra.name == ELECTRA
    assert bert_family(albert, ["dense/kernel"]) is None
    assert bert_family(["encoder/layer_0/query/kernel"], group) is None


@pytest.mark.tf
def test_albert_into_keras_hub_without_rules(
    albert_checkpoint: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    prefix, seq_expected, pooled_expected = albert_checkpoint
    model = albert_backbone()
    report = ckptbridge.restore(model, prefix)
    assert report.complete
    assert report.plan is not None and report.plan.family == ALBERT
    assert sorted(report.unused) == [
        "bert/pooler/dense/kernel/adam_m",
        "cls/predictions/output_bias",
        "cls/predictions/transform/LayerNorm/beta",
        "cls/predictions/transform/LayerNorm/gamma",
        "cls/predictions/transform/dense/bias",
        "cls/predictions/transform/dense/kernel",
        "cls/seq_relationship/output_bias",
        "cls/seq_relationship/output_weights",
    ]
    ln = report.plan.match_for("group_0_inner_layer_0/feedforward_layer_norm/beta")
    assert ln is not None
    assert ln.source == "bert/encoder/transformer/group_0/inner_group_0/LayerNorm_1/beta"
    assert ln.reason == f"{ALBERT}: preset:albert rename[10]"
    seq_got, pooled_got = run_backbone(model)
    np.testing.assert_allclose(seq_got, seq_expected, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(pooled_got, pooled_expected, rtol=1e-5, atol=2e-5)


@pytest.mark.tf
def test_albert_preset_by_name_gives_the_same_plan(
    albert_checkpoint: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    prefix, _, _ = albert_checkpoint
    plan = ckptbridge.plan(prefix, albert_backbone(), rules="preset:albert")
    auto = ckptbridge.plan(prefix, albert_backbone())
    assert plan.complete and plan.family == ALBERT
    assert {m.target: m.sources for m in plan.matches} == {
        m.target: m.sources for m in auto.matches
    }
    assert len(plan.ignored) == 8 and plan.unused == []


@pytest.mark.tf
def test_electra_into_keras_hub_without_rules(
    electra_checkpoint: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    """The discriminator's encoder restores; ElectraBackbone's pooled_dense has no source (ELECTRA
    has no pooler) and is reported missing with why, never fed from the [H, H]
    discriminator_predictions/dense."""
    prefix, seq_expected, first_token = electra_checkpoint
    model = electra_backbone()
    with pytest.raises(ckptbridge.NotFoundError, match=r"pooled_dense/kernel"):
        ckptbridge.restore(model, prefix)
    report = ckptbridge.restore(model, prefix, strict=False)
    assert report.plan is not None and report.plan.family == ELECTRA
    assert [u.target for u in report.missing] == ["pooled_dense/kernel", "pooled_dense/bias"]
    assert report.missing[0].why.startswith("Google ELECTRA has no pooler: ")
    assert {u.split("/")[0] for u in report.unused} == {
        "discriminator_predictions", "generator", "generator_predictions", "electra"
    }  # fmt: skip
    assert [u for u in report.unused if u.startswith("electra/")] == [
        "electra/encoder/layer_0/output/dense/kernel/adam_m"
    ]
    seq_got, _ = run_backbone(model)
    # modeling.py's GELU is the exact (erf) one, keras-hub's ElectraBackbone the tanh approximation
    # (|difference| < 2e-4 per activation): the outputs agree to ~1e-3, not to float32 rounding.
    np.testing.assert_allclose(seq_got, seq_expected, rtol=0, atol=5e-3)
    np.testing.assert_allclose(seq_got[:, 0], first_token, rtol=0, atol=5e-3)
