"""Pairing of layer converters: encoder/decoder cells and attention blocks are never paired by the alphabet."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptbridge

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

pytestmark = pytest.mark.tf

v1 = tf.compat.v1
VOCAB, UNITS, STEPS, BATCH = 11, 4, 5, 2


@dataclass(frozen=True)
class Seq2Seq:
    """A TF1 embedding -> encoder LSTM -> decoder LSTM -> dense graph, saved, with its output."""

    prefix: str
    ids: np.ndarray
    outputs: np.ndarray


def _lstm(units: int) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*rnn_cell\.\w+` is deprecated", UserWarning)
        return v1.nn.rnn_cell.LSTMCell(units, forget_bias=0.7)


def _dense(h: Any, units: int) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`tf.layers.dense` is deprecated", UserWarning)
        return v1.layers.dense(h, units)


def _write_seq2seq(directory: Path, *, meta: bool) -> Seq2Seq:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, VOCAB, size=(BATCH, STEPS))
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.int32, [None, STEPS])
        h = tf.nn.embedding_lookup(v1.get_variable("embedding", [VOCAB, UNITS]), x)
        # Created encoder first, but "decoder" sorts before "encoder".
        for scope in ("encoder", "decoder"):
            with v1.variable_scope(scope):
                h, _ = v1.nn.dynamic_rnn(_lstm(UNITS), h, dtype=tf.float32)
        y = _dense(h, VOCAB)
        sess.run(v1.global_variables_initializer())
        for var in v1.global_variables():
            var.load(rng.normal(scale=0.5, size=var.shape.as_list()).astype(np.float32), sess)
        out = sess.run(y, {x: ids})
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"), write_meta_graph=meta)
    return Seq2Seq(prefix, ids, out)


def _seq2seq_model() -> Any:
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((STEPS,), dtype="int32"),
            layers.Embedding(VOCAB, UNITS, name="tokens"),
            layers.LSTM(UNITS, return_sequences=True, name="enc"),
            layers.LSTM(UNITS, return_sequences=True, name="dec"),
            layers.Dense(VOCAB, name="proj"),
        ]
    )


@pytest.fixture(scope="module")
def seq2seq(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Seq2Seq]:
    return {
        meta: _write_seq2seq(tmp_path_factory.mktemp(f"seq2seq_meta{meta}"), meta=meta)
        for meta in (True, False)
    }


def test_encoder_decoder_with_meta_restore_exactly(seq2seq: dict[bool, Seq2Seq]) -> None:
    ck = seq2seq[True]
    model = _seq2seq_model()
    ckptbridge.restore(model, ck.prefix, rules={"version": 1, "options": {"forget_bias": 0.7}})
    np.testing.assert_allclose(model(ck.ids).numpy(), ck.outputs, atol=1e-5)


def test_encoder_decoder_without_meta_are_not_paired_alphabetically(
    seq2seq: dict[bool, Seq2Seq],
) -> None:
    """Without a .meta the creation order is unknown; ``decoder`` sorts before ``encoder``, and
    two same-size cells were paired by that alphabetical order: encoder and decoder weights
    silently swapped. Same-shaped cells whose order is unknown must be reported, not guessed."""
    ck = seq2seq[False]
    model = _seq2seq_model()
    rules = {"version": 1, "options": {"forget_bias": 0.7}}
    with pytest.raises(ckptbridge.NotFoundError, match="equally well"):
        ckptbridge.restore(model, ck.prefix, rules=rules)


def test_attention_blocks_without_creation_order_are_not_paired_alphabetically() -> None:
    """The same pairing rule for attention blocks: ``decoder/...`` and ``encoder/...`` [H, H]
    blocks of a checkpoint without a .meta have no known order, so two Keras blocks of the same
    shape must stay unmatched (ambiguous), not get them in alphabetical order."""
    from ckptbridge.engine._spec import VarSpec
    from ckptbridge.engine.converters import propose

    parts = ("query", "key", "value")
    source = [
        VarSpec(f"{scope}/attention/{p}/{leaf}", shape)
        for scope in ("encoder", "decoder")
        for p in parts
        for leaf, shape in (("kernel", (8, 8)), ("bias", (8,)))
    ]
    target = [
        VarSpec(f"{scope}/{p}/{leaf}", shape, order=i)
        for i, (scope, p, (leaf, shape)) in enumerate(
            (scope, p, ls)
            for scope in ("enc_mha", "dec_mha")
            for p in parts
            for ls in (("kernel", (8, 2, 4)), ("bias", (2, 4)))
        )
    ]
    result = propose(source, target)
    assert result.matches == []
    assert {u.target for u in result.unmatched} == {t.name for t in target}


def test_numbered_layers_without_creation_order_still_pair_by_number() -> None:
    from ckptbridge.engine._spec import VarSpec
    from ckptbridge.engine.converters import propose

    source = [
        VarSpec(f"rnn/multi_rnn_cell/cell_{i}/lstm_cell/{leaf}", shape)
        for i in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9)
        for leaf, shape in (("kernel", (8, 16)), ("bias", (16,)))
    ]
    target = [
        VarSpec(f"lstm_{i}/lstm_cell/{leaf}", shape, order=3 * i + j)
        for i in range(11)
        for j, (leaf, shape) in enumerate(
            (("kernel", (4, 16)), ("recurrent_kernel", (4, 16)), ("bias", (16,)))
        )
    ]
    result = propose(source, target)
    assert result.unmatched == []
    pairs = {m.target: m.sources[0] for m in result.matches}
    assert pairs["lstm_10/lstm_cell/bias"] == "rnn/multi_rnn_cell/cell_10/lstm_cell/bias"
