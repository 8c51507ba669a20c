"""Numeric proof for the RNN converters: TF1 graph outputs == Keras outputs, both directions.

Real TF1 graphs (``tf.compat.v1.nn.rnn_cell``) write real checkpoints; ``propose`` maps them to
Keras 3 and tf-keras models (and Keras weights back to the TF1 layout); the outputs must agree.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from ckptbridge.engine.converters import propose
from ckptbridge.rules import Options
from rnn_builders import (
    RNNCheckpoint,
    RNNSpec,
    apply_match,
    assign_by_name,
    inputs_for,
    keras_model,
    keras_specs,
    reader_specs,
    run_tf1,
    tf1_template,
    write_checkpoint,
)

pytestmark = pytest.mark.tf

FLAVOURS = {"keras3": keras, "tf_keras": tf_keras}

FORWARD = {
    "basic_lstm": RNNSpec(kind="basic_lstm"),
    "basic_lstm_fb08_static": RNNSpec(kind="basic_lstm", forget_bias=0.8, runner="static"),
    "lstm_multi": RNNSpec(kind="lstm", layers=2, n_in=3, units=5),
    "gru": RNNSpec(kind="gru", units=5),
    "gru_multi": RNNSpec(kind="gru", layers=3, units=4),
    "bidirectional_lstm_multi": RNNSpec(kind="lstm", layers=2, bidirectional=True),
    "bidirectional_gru": RNNSpec(kind="gru", bidirectional=True),
    "shared_cell": RNNSpec(kind="basic_lstm", layers=2, shared=True, n_in=4, units=4),
    "basic_rnn_multi": RNNSpec(kind="basic_rnn", layers=2),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RNNCheckpoint]:
    out = {}
    for i, (name, spec) in enumerate(FORWARD.items()):
        out[name] = write_checkpoint(tmp_path_factory.mktemp(name), spec, seed=i)
    return out


def _restore_forward(ck: RNNCheckpoint, k: ModuleType, options: Options) -> Any:
    source, reader = reader_specs(ck.prefix)
    model = keras_model(k, ck.spec)
    target = keras_specs(model)
    result = propose(source, target, options)
    assert result.unmatched == []
    assert sorted(m.target for m in result.matches) == sorted(t.name for t in target)
    values = {
        m.target: apply_match(m, [reader.get_tensor(s) for s in m.sources]) for m in result.matches
    }
    assign_by_name(model, values)
    return model


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("name", sorted(FORWARD))
def test_tf1_to_keras_outputs_equal(
    checkpoints: dict[str, RNNCheckpoint], name: str, flavour: str
) -> None:
    ck = checkpoints[name]
    model = _restore_forward(ck, FLAVOURS[flavour], Options(forget_bias=ck.spec.forget_bias))
    np.testing.assert_allclose(np.asarray(model(ck.inputs)), ck.outputs, rtol=1e-5, atol=1e-5)


def test_forget_bias_per_key_overrides_default(checkpoints: dict[str, RNNCheckpoint]) -> None:
    ck = checkpoints["basic_lstm_fb08_static"]
    options = Options(forget_bias=1.0, forget_bias_per_key={r"rnn/basic_lstm_cell": 0.8})
    model = _restore_forward(ck, keras, options)
    np.testing.assert_allclose(np.asarray(model(ck.inputs)), ck.outputs, rtol=1e-5, atol=1e-5)


def test_wrong_forget_bias_changes_outputs(checkpoints: dict[str, RNNCheckpoint]) -> None:
    ck = checkpoints["basic_lstm_fb08_static"]
    model = _restore_forward(ck, keras, Options(forget_bias=1.0))
    assert not np.allclose(np.asarray(model(ck.inputs)), ck.outputs, rtol=1e-5, atol=1e-5)


REVERSE = {
    "lstm_fb08": RNNSpec(kind="lstm", forget_bias=0.8, units=5),
    "basic_lstm_multi": RNNSpec(kind="basic_lstm", layers=2),
    "gru_multi": RNNSpec(kind="gru", layers=2),
    "bidirectional_lstm_multi": RNNSpec(kind="lstm", layers=2, bidirectional=True),
    "basic_rnn": RNNSpec(kind="basic_rnn"),
}


def _randomize(model: Any, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = {}
    for spec, var in zip(keras_specs(model), model.weights, strict=True):
        value = rng.normal(scale=0.5, size=spec.shape).astype(np.float32)
        var.assign(value)
        values[spec.name] = value
    return values


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize("name", sorted(REVERSE))
def test_keras_to_tf1_outputs_equal(name: str, flavour: str) -> None:
    spec = REVERSE[name]
    model = keras_model(FLAVOURS[flavour], spec)
    values = _randomize(model, seed=7)
    x = inputs_for(spec)
    expected = np.asarray(model(x))
    template = tf1_template(spec)
    result = propose(keras_specs(model), template, Options(forget_bias=spec.forget_bias))
    assert result.unmatched == []
    assert sorted(m.target for m in result.matches) == sorted(t.name for t in template)
    converted = {m.target: apply_match(m, [values[s] for s in m.sources]) for m in result.matches}
    np.testing.assert_allclose(run_tf1(spec, converted, x), expected, rtol=1e-5, atol=1e-5)


def test_round_trip_restores_the_checkpoint(checkpoints: dict[str, RNNCheckpoint]) -> None:
    # exact up to float32 rounding of the forget bias added and subtracted again
    ck = checkpoints["lstm_multi"]
    source, reader = reader_specs(ck.prefix)
    model = keras_model(keras, ck.spec)
    there = propose(source, keras_specs(model), Options())
    keras_values = {
        m.target: apply_match(m, [reader.get_tensor(s) for s in m.sources]) for m in there.matches
    }
    back = propose(keras_specs(model), source, Options())
    for m in back.matches:
        restored = apply_match(m, [keras_values[s] for s in m.sources])
        np.testing.assert_allclose(restored, reader.get_tensor(m.target), rtol=0, atol=1e-6)


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_tf2_object_checkpoint_to_tf1_layout(flavour: str, tmp_path: Path) -> None:
    # A TF2 checkpoint of a Keras model (keys like model/layer_with_weights-0/forward_layer/cell/
    # kernel/.ATTRIBUTES/VARIABLE_VALUE) converts back to a TF1 bidirectional GRU.
    spec = RNNSpec(kind="gru", bidirectional=True, units=3)
    model = keras_model(FLAVOURS[flavour], spec)
    _randomize(model, seed=11)
    x = inputs_for(spec)
    expected = np.asarray(model(x))
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "tf2"))
    source, reader = reader_specs(Path(prefix))
    template = tf1_template(spec)
    result = propose(source, template, Options())
    assert result.unmatched == []
    assert sorted(m.target for m in result.matches) == sorted(t.name for t in template)
    fw = next(m for m in result.matches if m.target.startswith("bidirectional_rnn/fw/"))
    assert "forward_layer/cell/kernel/" in fw.sources[0]
    converted = {
        m.target: apply_match(m, [reader.get_tensor(s) for s in m.sources]) for m in result.matches
    }
    np.testing.assert_allclose(run_tf1(spec, converted, x), expected, rtol=1e-5, atol=1e-5)


def test_real_peephole_projection_cell_is_refused_both_ways() -> None:
    spec = RNNSpec(kind="lstm", peepholes=True, num_proj=2, units=4)
    tf1 = tf1_template(spec)
    assert sorted(t.name for t in tf1) == [
        "rnn/lstm_cell/bias",
        "rnn/lstm_cell/kernel",
        "rnn/lstm_cell/projection/kernel",
        "rnn/lstm_cell/w_f_diag",
        "rnn/lstm_cell/w_i_diag",
        "rnn/lstm_cell/w_o_diag",
    ]
    model = keras_model(keras, RNNSpec(kind="lstm", units=4))
    forward = propose(tf1, keras_specs(model), Options())
    assert forward.matches == []
    assert len(forward.unmatched) == 3
    assert (
        "peepholes (w_f_diag, w_i_diag, w_o_diag) and a projection to 2" in forward.unmatched[0].why
    )
    back = propose(keras_specs(model), tf1, Options())
    assert back.matches == []
    assert sorted(u.target for u in back.unmatched) == sorted(t.name for t in tf1)
