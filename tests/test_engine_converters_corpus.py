"""propose() over the real RNN checkpoints of ../shared/corpus, against the Keras model each
folder's SOURCE.txt describes: the right cells pair, nothing else is touched, and where the cell
alone can be run (Aplain, Enny1991) the converted Keras layers compute what the TF1 cells compute.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tf_keras

from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.converters import ConverterResult, propose
from ckptbridge.rules import Options
from rnn_builders import RNNSpec, apply_match, keras_specs, reader_specs, run_tf1

pytestmark = pytest.mark.tf


@pytest.fixture(autouse=True)
def fresh_layer_names() -> None:
    # Keras numbers auto-named layers per session (lstm, lstm_1, ...); start each test at zero.
    keras.backend.clear_session()
    tf_keras.backend.clear_session()


def _propose(
    corpus: Path, prefix: str, model: Any, options: Options
) -> tuple[ConverterResult, Any]:
    source, reader = reader_specs(corpus / prefix)
    return propose(source, keras_specs(model), options), reader


def _sources(result: ConverterResult) -> dict[str, tuple[str, ...]]:
    return {m.target: m.sources for m in result.matches}


def test_aplain_basic_lstm_pre_1_2_forget_bias_08(corpus: Path) -> None:
    model = keras.Sequential(
        [keras.Input((10, 1)), keras.layers.Dense(80), keras.layers.LSTM(80), keras.layers.Dense(1)]
    )
    result, reader = _propose(corpus, "Aplain__rnnRepo/model.ckpt", model, Options(forget_bias=0.8))
    assert result.unmatched == []
    assert _sources(result) == {
        "sequential/lstm/lstm_cell/kernel": ("rnn/basic_lstm_cell/weights",),
        "sequential/lstm/lstm_cell/recurrent_kernel": ("rnn/basic_lstm_cell/weights",),
        "sequential/lstm/lstm_cell/bias": ("rnn/basic_lstm_cell/biases",),
    }
    assert "forget_bias 0.8 folded into bias" in result.matches[2].reason
    # The converted LSTM computes what TF1's BasicLSTMCell(80, forget_bias=0.8) computes.
    spec = RNNSpec(kind="basic_lstm", units=80, n_in=80, steps=10, forget_bias=0.8, runner="static")
    tf1_weights = {
        "rnn/basic_lstm_cell/kernel": reader.get_tensor("rnn/basic_lstm_cell/weights"),
        "rnn/basic_lstm_cell/bias": reader.get_tensor("rnn/basic_lstm_cell/biases"),
    }
    lstm = keras.Sequential([keras.Input((10, 80)), keras.layers.LSTM(80, return_sequences=True)])
    for var in lstm.weights:
        leaf = var.path.rsplit("/", 1)[1]
        match = next(m for m in result.matches if m.target.endswith(f"/lstm_cell/{leaf}"))
        var.assign(apply_match(match, [reader.get_tensor(s) for s in match.sources]))
    x = np.random.default_rng(0).normal(size=(2, 10, 80)).astype(np.float32)
    expected = run_tf1(spec, tf1_weights, x)
    np.testing.assert_allclose(np.asarray(lstm(x)), expected, rtol=1e-5, atol=1e-5)


def test_enny1991_three_stacked_gru_cells(corpus: Path) -> None:
    layers = tf_keras.layers
    model = tf_keras.Sequential(
        [tf_keras.Input((None, 39))]
        + [layers.GRU(120, reset_after=False, return_sequences=True) for _ in range(3)]
        + [layers.Dense(11)]
    )
    result, reader = _propose(corpus, "Enny1991__TIDIGITS_task/model/model.ckpt", model, Options())
    assert result.unmatched == []
    sources = _sources(result)
    assert len(sources) == 9
    for i, layer in enumerate(("gru", "gru_1", "gru_2")):
        cell = f"rnn/multi_rnn_cell/cell_{i}/gru_cell"
        assert sources[f"{layer}/gru_cell/kernel:0"] == (
            f"{cell}/gates/weights",
            f"{cell}/candidate/weights",
        )
        assert sources[f"{layer}/gru_cell/bias:0"] == (
            f"{cell}/gates/biases",
            f"{cell}/candidate/biases",
        )
    # numerically: the Keras stack == the TF1 MultiRNNCell of 3 GRUCells with these weights
    spec = RNNSpec(kind="gru", units=120, n_in=39, layers=3, steps=4)
    tf1_weights = {
        re.sub(r"/weights$", "/kernel", re.sub(r"/biases$", "/bias", k)): reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if "gru_cell" in k and not k.endswith(("Adam", "Adam_1"))
    }
    stack = tf_keras.Sequential([tf_keras.Input((4, 39)), *model.layers[:3]])
    for var in stack.weights:
        match = next(m for m in result.matches if m.target == var.name)
        var.assign(apply_match(match, [reader.get_tensor(s) for s in match.sources]))
    x = np.random.default_rng(1).normal(size=(2, 4, 39)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(stack(x)), run_tf1(spec, tf1_weights, x), rtol=1e-5, atol=1e-5
    )


def test_fracogno_bidirectional_three_layer_lstm(corpus: Path) -> None:
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            layers.Embedding(2808, 50),
            layers.Bidirectional(layers.RNN([layers.LSTMCell(64) for _ in range(3)])),
            layers.Dense(2),
        ]
    )
    prefix = "fracogno__Bidirectional_LSTM_Sentiment_Analysis/checkpoints/model.ckpt"
    result, _ = _propose(corpus, prefix, model, Options())
    assert result.unmatched == []
    sources = _sources(result)
    assert len(sources) == 18
    for tf1_dir, keras_dir in (("fw", "forward_rnn"), ("bw", "backward_rnn")):
        for i, cell in enumerate(("lstm_cell", "lstm_cell_1", "lstm_cell_2")):
            target = (
                f"sequential/bidirectional/{keras_dir}/stacked_rnn_cells/{cell}/recurrent_kernel"
            )
            assert sources[target] == (
                f"bidirectional_rnn/{tf1_dir}/multi_rnn_cell/cell_{i}/lstm_cell/kernel",
            )


def test_fv0008_one_cell_shared_by_two_layers(corpus: Path) -> None:
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            layers.Embedding(797, 128),
            layers.LSTM(128, return_sequences=True),
            layers.LSTM(128, return_sequences=True),
            layers.Dense(797),
        ]
    )
    result, _ = _propose(corpus, "fv0008__char-rnn-writer/model.ckpt", model, Options())
    assert result.unmatched == []
    cell = "rnn/multi_rnn_cell/cell_0/basic_lstm_cell"
    assert _sources(result) == {
        f"sequential/{layer}/lstm_cell/{var}": (f"{cell}/{'bias' if var == 'bias' else 'kernel'}",)
        for layer in ("lstm", "lstm_1")
        for var in ("kernel", "recurrent_kernel", "bias")
    }
    assert "one TF1 cell reused by all 2 layers" in result.matches[0].reason


def test_azizimj_simple_rnn_cell_is_left_to_the_engine(corpus: Path) -> None:
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            layers.Embedding(4363, 40),
            layers.SimpleRNN(15, return_sequences=True),
            layers.Dense(35),
        ]
    )
    result, _ = _propose(corpus, "Azizimj__POS-RNN/model.ckpt", model, Options())
    assert result == ConverterResult()


@pytest.mark.parametrize(
    "prefix",
    [
        "Aplain__rnnRepo/model.ckpt",
        "Enny1991__TIDIGITS_task/model/model.ckpt",
        "fracogno__Bidirectional_LSTM_Sentiment_Analysis/checkpoints/model.ckpt",
        "fv0008__char-rnn-writer/model.ckpt",
        "Azizimj__POS-RNN/model.ckpt",
    ],
)
def test_checkpoint_against_itself_proposes_nothing(corpus: Path, prefix: str) -> None:
    # Same layout on both sides: names decide, the converters stay out of the way.
    source, _ = reader_specs(corpus / prefix)
    assert propose(source, source, Options()) == ConverterResult()
    renamed = [VarSpec("copy/" + s.name, s.shape, s.dtype) for s in source]
    assert propose(source, renamed, Options()) == ConverterResult()
