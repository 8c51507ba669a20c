"""Restore TF1 checkpoints into Keras 3 models on the current Keras backend, with or without
TensorFlow (tox runs this file on JAX, NumPy, PyTorch and TensorFlow).

No TensorFlow writes anything here: the checkpoints are the real ones of ../shared/corpus and
bundles written by ckptbridge's own ``BundleWriter`` with known values, the way TF1 code names
them (``Variable``, ``Variable_1``, ... in creation order). Every expectation is computed with
NumPy from the checkpoint's own tensors: what the TF1 graph computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import ckptbridge
from ckptbridge.format import BundleWriter

AP = "Aplain__rnnRepo/model.ckpt"  # BasicLSTMCell(80, forget_bias=0.8), pre-1.2 names
ENNY = "Enny1991__TIDIGITS_task/model/model.ckpt"  # 3 stacked GRUCell(120), unnamed Dense
ALZI = "AlZi-88__IntroductionInTensorFlow/model.ckpt"  # unnamed Variable_N MLP
WINE = "jncharon__wine-classifier/model/model.ckpt-3374"  # canned DNNClassifier (Estimator)
TOL = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(autouse=True)
def fresh_layer_names() -> None:
    keras.backend.clear_session()


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


def _np(t: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(t))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# -- unnamed TF1 variables ------------------------------------------------------------------------


def test_unnamed_mlp_from_the_corpus_restores_exactly(corpus: Path) -> None:
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256), keras.layers.Dense(10)])
    report = ckptbridge.restore(model, corpus / ALZI)
    t = ckptbridge.load_variables(corpus / ALZI)
    assert report.complete
    first, second = model.layers
    for variable, key in ((first.kernel, "Variable"), (first.bias, "Variable_2"),
                          (second.kernel, "Variable_1"), (second.bias, "Variable_3")):  # fmt: skip
        np.testing.assert_array_equal(_np(variable), t[key])


def _residual_checkpoint(path: Path) -> dict[str, np.ndarray]:
    """What this TF1 code saves (unnamed variables, in creation order)::

    a = tf.Variable(...)      # Variable,   Variable_1: first dense of the block
    b = tf.Variable(...)      # Variable_2, Variable_3: second dense of the block
    s = tf.Variable(...)      # Variable_4, Variable_5: the shortcut projection
    out = tf.Variable(...)    # Variable_6, Variable_7: the head
    """
    rng = np.random.default_rng(7)
    shapes = [(4, 4), (4,), (4, 4), (4,), (4, 4), (4,), (4, 2), (2,)]
    names = ["Variable"] + [f"Variable_{i}" for i in range(1, len(shapes))]
    values = {n: rng.normal(size=s).astype(np.float32) for n, s in zip(names, shapes, strict=True)}
    with BundleWriter(path / "model.ckpt") as writer:
        for name, value in values.items():
            writer.add(name, value)
    return values


def _residual_numpy(t: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = np.maximum(x @ t["Variable"] + t["Variable_1"], 0) @ t["Variable_2"] + t["Variable_3"]
    s = x @ t["Variable_4"] + t["Variable_5"]
    out: np.ndarray = np.maximum(h + s, 0) @ t["Variable_6"] + t["Variable_7"]
    return out


def _residual_functional() -> Any:
    """The same block in Keras, built in the TF1 code's order: a, b, then the shortcut."""
    inputs = keras.Input((4,))
    h = keras.layers.Dense(4, activation="relu")(inputs)
    h = keras.layers.Dense(4)(h)
    s = keras.layers.Dense(4)(inputs)  # created last, but one level nearer the input than b
    out = keras.layers.Dense(2)(keras.layers.ReLU()(keras.layers.Add()([h, s])))
    return keras.Model(inputs, out)


def test_branched_model_with_unnamed_variables_restores_exactly(tmp_path: Path) -> None:
    values = _residual_checkpoint(tmp_path)
    model = _residual_functional()
    report = ckptbridge.restore(model, tmp_path / "model.ckpt")
    assert report.complete
    x = _x(5, 4)
    np.testing.assert_allclose(_np(model(x)), _residual_numpy(values, x), **TOL)


def test_shortcut_made_first_restores_exactly(tmp_path: Path) -> None:
    """The TF1 code makes the shortcut first (Variable, Variable_1), then the block; Keras lists
    the shortcut after the block's first layer, so model.weights order pairs them wrongly."""
    values = _residual_checkpoint(tmp_path)
    first = ["Variable_4", "Variable_5", "Variable", "Variable_1", "Variable_2", "Variable_3"]
    renamed = dict(zip(first, ["Variable"] + [f"Variable_{i}" for i in range(1, 6)], strict=True))
    with BundleWriter(tmp_path / "first" / "model.ckpt") as writer:
        for name, value in values.items():
            writer.add(renamed.get(name, name), value)
    inputs = keras.Input((4,))
    s = keras.layers.Dense(4)(inputs)
    h = keras.layers.Dense(4)(keras.layers.Dense(4, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.ReLU()(h + s)))
    assert ckptbridge.restore(model, tmp_path / "first" / "model.ckpt").complete
    x = _x(5, 4)
    np.testing.assert_allclose(_np(model(x)), _residual_numpy(values, x), **TOL)


def test_branched_model_whose_build_order_keras_did_not_record_is_not_guessed(
    tmp_path: Path,
) -> None:
    values = _residual_checkpoint(tmp_path)

    class Residual(keras.Model):  # built eagerly on first call: no record of the order
        def __init__(self) -> None:
            super().__init__()
            self.a = keras.layers.Dense(4, activation="relu")
            self.b = keras.layers.Dense(4)
            self.s = keras.layers.Dense(4)
            self.out = keras.layers.Dense(2)

        def call(self, x: Any) -> Any:
            return self.out(keras.ops.relu(self.b(self.a(x)) + self.s(x)))

    model = Residual()
    model(_x(1, 4))
    if keras.backend.backend() == "tensorflow":  # TensorFlow counted creation: exact
        ckptbridge.restore(model, tmp_path / "model.ckpt")
        x = _x(5, 4)
        np.testing.assert_allclose(_np(model(x)), _residual_numpy(values, x), **TOL)
        return
    with pytest.raises(ckptbridge.NotFoundError, match=r"^6 model 'residual' variable\(s\) have "):
        ckptbridge.restore(model, tmp_path / "model.ckpt")


def test_build_order_is_the_order_layers_were_first_called(tmp_path: Path) -> None:
    values = _residual_checkpoint(tmp_path)
    a, s, b = (keras.layers.Dense(4, activation="relu"), keras.layers.Dense(4),
               keras.layers.Dense(4))  # fmt: skip
    inputs = keras.Input((4,))
    h = b(a(inputs))  # made a, s, b but built a, b, s: TensorFlow's order, and TF1's
    out = keras.layers.Dense(2)(keras.layers.ReLU()(keras.layers.Add()([h, s(inputs)])))
    model = keras.Model(inputs, out)
    assert ckptbridge.restore(model, tmp_path / "model.ckpt").complete
    x = _x(5, 4)
    np.testing.assert_allclose(_np(model(x)), _residual_numpy(values, x), **TOL)


# -- RNN cells from the corpus --------------------------------------------------------------------


def _basic_lstm(x: np.ndarray, w: np.ndarray, b: np.ndarray, forget_bias: float) -> np.ndarray:
    """TF1 ``BasicLSTMCell`` (gates i, j, f, o), run over time; returns the last output."""
    units = b.shape[0] // 4
    h = np.zeros((x.shape[0], units), np.float32)
    c = np.zeros_like(h)
    for step in range(x.shape[1]):
        i, j, f, o = np.split(np.concatenate([x[:, step], h], 1) @ w + b, 4, axis=1)
        c = c * _sigmoid(f + forget_bias) + _sigmoid(i) * np.tanh(j)
        h = np.tanh(c) * _sigmoid(o)
    return h


def test_basic_lstm_from_the_corpus_computes_what_tf1_computes(corpus: Path) -> None:
    model = keras.Sequential(
        [keras.Input((10, 1)), keras.layers.Dense(80), keras.layers.LSTM(80), keras.layers.Dense(1)]
    )
    report = ckptbridge.restore(model, corpus / AP, rules={"options": {"forget_bias": 0.8}})
    assert report.complete
    t = ckptbridge.load_variables(corpus / AP)
    x = _x(2, 10, 1)
    h = x @ t["inference/weight1"] + t["inference/bias1"]
    h = _basic_lstm(h, t["rnn/basic_lstm_cell/weights"], t["rnn/basic_lstm_cell/biases"], 0.8)
    expected = h @ t["inference/weight2"] + t["inference/bias2"]
    np.testing.assert_allclose(_np(model(x)), expected, **TOL)


def _gru(x: np.ndarray, t: dict[str, np.ndarray], scope: str) -> np.ndarray:
    """TF1 ``GRUCell`` (pre-1.2 names): gates r, u, then the candidate; every step's output."""
    wg, bg = t[f"{scope}/gates/weights"], t[f"{scope}/gates/biases"]
    wc, bc = t[f"{scope}/candidate/weights"], t[f"{scope}/candidate/biases"]
    h = np.zeros((x.shape[0], bc.shape[0]), np.float32)
    outs = []
    for step in range(x.shape[1]):
        xt = x[:, step]
        r, u = np.split(_sigmoid(np.concatenate([xt, h], 1) @ wg + bg), 2, axis=1)
        cand = np.tanh(np.concatenate([xt, r * h], 1) @ wc + bc)
        h = u * h + (1 - u) * cand
        outs.append(h)
    return np.stack(outs, 1)


def test_stacked_gru_from_the_corpus_computes_what_tf1_computes(corpus: Path) -> None:
    gru = [keras.layers.GRU(120, reset_after=False, return_sequences=True) for _ in range(3)]
    model = keras.Sequential([keras.Input((4, 39)), *gru, keras.layers.Dense(11)])
    report = ckptbridge.restore(model, corpus / ENNY)
    assert report.complete
    t = ckptbridge.load_variables(corpus / ENNY)
    h = _x(2, 4, 39)
    out = h
    for i in range(3):
        out = _gru(out, t, f"rnn/multi_rnn_cell/cell_{i}/gru_cell")
    expected = out @ t["Variable"] + t["Variable_1"]
    np.testing.assert_allclose(_np(model(h)), expected, **TOL)


# -- a canned Estimator and a partitioned embedding -----------------------------------------------


def test_estimator_dnn_from_the_corpus_with_its_preset(corpus: Path) -> None:
    hidden = [keras.layers.Dense(n, activation="relu") for n in (10, 20, 10)]
    model = keras.Sequential([keras.Input((11,)), *hidden, keras.layers.Dense(10)])
    report = ckptbridge.restore(model, corpus / WINE, rules="preset:estimator-dnn")
    report.assert_consumed()
    t = ckptbridge.load_variables(corpus / WINE)
    x = _x(5, 11)
    h = x
    for i in range(3):
        h = np.maximum(h @ t[f"dnn/hiddenlayer_{i}/kernel"] + t[f"dnn/hiddenlayer_{i}/bias"], 0)
    expected = h @ t["dnn/logits/kernel"] + t["dnn/logits/bias"]
    np.testing.assert_allclose(_np(model(x)), expected, **TOL)


def test_partitioned_embedding_is_reassembled(tmp_path: Path) -> None:
    table = np.arange(10 * 3, dtype=np.float32).reshape(10, 3) / 7
    with BundleWriter(tmp_path / "model.ckpt") as writer:  # fixed_size_partitioner(3): 4+3+3 rows
        for start, stop in ((0, 4), (4, 7), (7, 10)):
            writer.add_slice("embedding/embeddings", (10, 3), (start, 0), table[start:stop])
    model = keras.Sequential([keras.Input((2,), dtype="int32"), keras.layers.Embedding(10, 3)])
    report = ckptbridge.restore(model, tmp_path / "model.ckpt")
    assert report.complete
    ids = np.array([[0, 9], [4, 7]], np.int32)
    np.testing.assert_array_equal(_np(model(ids)), table[ids])


def test_plan_needs_no_tensorflow_and_names_each_source(corpus: Path) -> None:
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(256), keras.layers.Dense(10)])
    plan = ckptbridge.plan(corpus / ALZI, model)
    assert {m.target: m.sources for m in plan.matches} == {
        "sequential/dense/kernel": ("Variable",),
        "sequential/dense/bias": ("Variable_2",),
        "sequential/dense_1/kernel": ("Variable_1",),
        "sequential/dense_1/bias": ("Variable_3",),
    }


# -- Keras 3 on NumPy: values written into the variables' own arrays ------------------------------

on_numpy = pytest.mark.skipif(keras.backend.backend() != "numpy", reason="Keras 3 on NumPy only")


@on_numpy
def test_numpy_restore_writes_into_each_variables_own_array(tmp_path: Path) -> None:
    values = _residual_checkpoint(tmp_path)
    model = _residual_functional()
    arrays = [id(v._value) for v in model.weights]  # ids only: holding them would be a reference
    assert ckptbridge.restore(model, tmp_path / "model.ckpt").complete
    assert [id(v._value) for v in model.weights] == arrays  # no fresh allocation per variable
    x = _x(5, 4)
    np.testing.assert_allclose(_np(model(x)), _residual_numpy(values, x), **TOL)
    assert ckptbridge.restore(model, tmp_path / "model.ckpt").complete  # again: still equal
    np.testing.assert_allclose(_np(model(x)), _residual_numpy(values, x), **TOL)


@on_numpy
def test_numpy_restore_leaves_an_array_held_elsewhere_as_it_was(tmp_path: Path) -> None:
    values = _residual_checkpoint(tmp_path)
    model = _residual_functional()
    kernel = model.layers[1].kernel
    held = kernel.value  # a caller's reference: assign gives the variable a new array instead
    before = held.copy()
    assert ckptbridge.restore(model, tmp_path / "model.ckpt").complete
    np.testing.assert_array_equal(held, before)
    np.testing.assert_array_equal(_np(kernel), values["Variable"])
    x = _x(5, 4)
    np.testing.assert_allclose(_np(model(x)), _residual_numpy(values, x), **TOL)


@on_numpy
def test_numpy_restore_inside_a_stateless_scope_only_records_the_updates(tmp_path: Path) -> None:
    from keras.src.backend.common.stateless_scope import StatelessScope

    values = _residual_checkpoint(tmp_path)
    model = _residual_functional()
    kernel = model.layers[1].kernel
    before = _np(kernel).copy()
    with StatelessScope() as scope:
        assert ckptbridge.restore(model, tmp_path / "model.ckpt").complete
        np.testing.assert_array_equal(_np(scope.get_current_value(kernel)), values["Variable"])
    np.testing.assert_array_equal(vars(kernel)["_value"], before)  # as assign leaves it
