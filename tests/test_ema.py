"""EMA shadows (``options.use_ema``, engine/_derive.py ``_use_ema``): restore the averaged weights.

The checkpoint is written by real TF1 code: a dense / batch-norm / dense graph trained a few steps
with ``tf.compat.v1.train.ExponentialMovingAverage(decay).apply(tf.trainable_variables())``. The
reference outputs are computed the TF1 way: a fresh eval graph restored with
``Saver(ema.variables_to_restore())`` (averaged weights) or ``Saver()`` (raw weights).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import ckptbridge
from ckptbridge.engine import VarSpec, derive
from ckptbridge.rules import Options, Rules

v1 = tf.compat.v1
DECAY = 0.5  # far from 1, so the shadows differ clearly from the raw weights
EMA = {"options": {"use_ema": True}}


@dataclass(frozen=True)
class EmaCheckpoint:
    prefix: Path
    inputs: np.ndarray
    raw_outputs: np.ndarray
    ema_outputs: np.ndarray


def _graph(x: Any) -> Any:
    """fc1 (6->8) + batch norm (inference) + ReLU + fc2 (8->3): ``fc1/weights``, ``fc1/biases``, ..."""
    with v1.variable_scope("fc1"):
        w = v1.get_variable("weights", [6, 8], initializer=v1.truncated_normal_initializer(0, 0.5))
        b = v1.get_variable("biases", [8], initializer=v1.constant_initializer(0.1))
        h = tf.matmul(x, w) + b
    training = v1.placeholder_with_default(False, [], name="training")
    with warnings.catch_warnings():  # "tf.layers is deprecated": the point here
        warnings.simplefilter("ignore", UserWarning)
        h = tf.nn.relu(v1.layers.batch_normalization(h, training=training))
    with v1.variable_scope("fc2"):
        w = v1.get_variable("weights", [8, 3], initializer=v1.truncated_normal_initializer(0, 0.5))
        b = v1.get_variable("biases", [3], initializer=v1.constant_initializer(0.1))
        return tf.identity(tf.matmul(h, w) + b, name="logits"), training


def _evaluate(prefix: str, inputs: np.ndarray, *, averaged: bool) -> np.ndarray:
    """The TF1 evaluation graph, restored with or without the moving averages."""
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, [None, 6])
        logits, _ = _graph(x)
        var_list = (
            v1.train.ExponentialMovingAverage(DECAY).variables_to_restore() if averaged else None
        )
        v1.train.Saver(var_list).restore(sess, prefix)
        out: np.ndarray = sess.run(logits, {x: inputs})
        return out


def _write(directory: Path, *, with_ema: bool) -> EmaCheckpoint:
    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(4, 6)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=4)]
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(5)
        x = v1.placeholder(tf.float32, [None, 6])
        y = v1.placeholder(tf.float32, [None, 3])
        logits, training = _graph(x)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
        with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            train_op = v1.train.GradientDescentOptimizer(0.5).minimize(loss)
        if with_ema:
            ema = v1.train.ExponentialMovingAverage(DECAY)
            with tf.control_dependencies([train_op]):
                train_op = ema.apply(v1.trainable_variables())
        sess.run(v1.global_variables_initializer())
        for _ in range(3):
            sess.run(train_op, {x: inputs, y: labels, training: True})
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"))
    return EmaCheckpoint(
        Path(prefix),
        inputs,
        raw_outputs=_evaluate(prefix, inputs, averaged=False),
        ema_outputs=_evaluate(prefix, inputs, averaged=True) if with_ema else np.empty(0),
    )


@pytest.fixture(scope="module")
def ema_ckpt(tmp_path_factory: pytest.TempPathFactory) -> EmaCheckpoint:
    return _write(tmp_path_factory.mktemp("ema"), with_ema=True)


@pytest.fixture(scope="module")
def plain_ckpt(tmp_path_factory: pytest.TempPathFactory) -> EmaCheckpoint:
    return _write(tmp_path_factory.mktemp("plain"), with_ema=False)


def _keras3() -> Any:
    import keras

    L = keras.layers
    return keras.Sequential(
        [keras.Input((6,)), L.Dense(8), L.BatchNormalization(), L.ReLU(), L.Dense(3)]
    )


def _tf_keras() -> Any:
    import tf_keras

    L = tf_keras.layers
    return tf_keras.Sequential(
        [tf_keras.Input((6,)), L.Dense(8), L.BatchNormalization(), L.ReLU(), L.Dense(3)]
    )


FLAVOURS: dict[str, Callable[[], Any]] = {"keras3": _keras3, "tf_keras": _tf_keras}


def test_the_shadows_really_differ(ema_ckpt: EmaCheckpoint) -> None:
    assert not np.allclose(ema_ckpt.raw_outputs, ema_ckpt.ema_outputs, atol=1e-3)


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_use_ema_restores_the_averaged_weights(flavour: str, ema_ckpt: EmaCheckpoint) -> None:
    model = FLAVOURS[flavour]()
    report = ckptbridge.restore(model, ema_ckpt.prefix, rules=EMA)
    np.testing.assert_allclose(model(ema_ckpt.inputs), ema_ckpt.ema_outputs, rtol=1e-5, atol=1e-5)
    sources = {m.target.rsplit("/", 2)[-1].split(":")[0]: m.source for m in report.matched}
    assert sources["moving_mean"] == "batch_normalization/moving_mean"  # never averaged: raw
    used = {m.source for m in report.matched}
    assert "fc1/weights/ExponentialMovingAverage" in used and "fc1/weights" not in used


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_without_use_ema_the_raw_weights_are_restored(
    flavour: str, ema_ckpt: EmaCheckpoint
) -> None:
    model = FLAVOURS[flavour]()
    report = ckptbridge.restore(model, ema_ckpt.prefix)
    np.testing.assert_allclose(model(ema_ckpt.inputs), ema_ckpt.raw_outputs, rtol=1e-5, atol=1e-5)
    shadows = sorted(a.name for a in report.auxiliary if a.kind == "ema_shadow")
    assert shadows == [
        "batch_normalization/beta/ExponentialMovingAverage",
        "batch_normalization/gamma/ExponentialMovingAverage",
        "fc1/biases/ExponentialMovingAverage",
        "fc1/weights/ExponentialMovingAverage",
        "fc2/biases/ExponentialMovingAverage",
        "fc2/weights/ExponentialMovingAverage",
    ]
    assert report.unused == []


def test_the_report_gives_the_reason_and_leaves_raw_weights_over(ema_ckpt: EmaCheckpoint) -> None:
    report = ckptbridge.restore(_keras3(), ema_ckpt.prefix, rules=EMA)
    by_source = {m.source: m.reason for m in report.matched}
    assert by_source["fc2/weights/ExponentialMovingAverage"].endswith(
        " + EMA shadow (options.use_ema)"
    )
    assert by_source["batch_normalization/moving_variance"].endswith(
        " + raw weight: no EMA shadow in the checkpoint (as TF1's variables_to_restore())"
    )
    assert sorted(report.unused) == [
        "batch_normalization/beta", "batch_normalization/gamma", "fc1/biases", "fc1/weights",
        "fc2/biases", "fc2/weights",
    ]  # fmt: skip
    assert not [a for a in report.auxiliary if a.kind == "ema_shadow"]
    assert report.plan is not None
    assert report.plan.unused_rules == [
        "options.use_ema: 2 of 8 matched variables have no EMA shadow and keep their raw weights: "
        + ", ".join(m.target for m in report.matched if "moving_" in m.target)
    ]


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_use_ema_without_shadows_is_an_error_before_any_assignment(
    flavour: str, plain_ckpt: EmaCheckpoint
) -> None:
    model = FLAVOURS[flavour]()
    before = [w.numpy() for w in model.weights]
    with pytest.raises(ckptbridge.RulesError, match=(
        r"^options\.use_ema is true, but the checkpoint has no ExponentialMovingAverage shadow for "
        r"any of the 8 matched variables \(e\.g\. no 'fc1/weights/ExponentialMovingAverage' beside "
        r"'fc1/weights'\)\. .* Fix: remove options\.use_ema to restore the raw weights, or point at "
        r"the checkpoint that holds the shadows\.$"
    )):  # fmt: skip
        ckptbridge.restore(model, plain_ckpt.prefix, rules=EMA)
    for old, new in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(old, new.numpy())


def test_plan_from_the_cli_side_uses_the_shadows(ema_ckpt: EmaCheckpoint) -> None:
    plan = ckptbridge.plan(ema_ckpt.prefix, _keras3(), rules=EMA)
    assert plan.complete
    assert sum(m.source.endswith("/ExponentialMovingAverage") for m in plan.matches) == 6


# -- the engine alone (pure, literal specs) ------------------------------------------------------

V = VarSpec


def test_a_source_feeding_two_targets_is_swapped_for_both() -> None:
    from ckptbridge.engine._derive import _use_ema
    from ckptbridge.engine._state import State

    src = [V("cell/kernel", (5, 8)), V("cell/kernel/ExponentialMovingAverage", (5, 8))]
    st = State.build(
        src, [V("lstm/kernel", (3, 8)), V("lstm/recurrent_kernel", (2, 8))], ("c", "m")
    )
    st.aux["cell/kernel/ExponentialMovingAverage"] = ckptbridge.engine.classify_auxiliary(
        "cell/kernel/ExponentialMovingAverage"
    )  # type: ignore[assignment]
    st.take(("cell/kernel",), "lstm/kernel", (), "converter")
    st.take(("cell/kernel",), "lstm/recurrent_kernel", (), "converter")
    _use_ema(st)
    assert {m.source for m in st.matches.values()} == {"cell/kernel/ExponentialMovingAverage"}
    assert list(st.free_src) == ["cell/kernel"]


def test_no_matches_means_nothing_to_average() -> None:
    plan = derive([V("a", (2,))], [V("b", (3,))], Rules(options=Options(use_ema=True)))
    assert plan.matches == [] and plan.unused == ["a"]


def test_optimizer_slots_are_never_averaged() -> None:
    src = [
        V("w", (2,)),
        V("w/ExponentialMovingAverage", (2,)),
        V("w/Adam", (2,)),
        V("w/Adam_1", (2,)),
    ]
    plan = derive(src, [V("w", (2,)), V("w/Adam", (2,)), V("w/Adam_1", (2,))],
                  Rules(options=Options(use_ema=True, optimizer_state=True)))  # fmt: skip
    assert {m.target: m.source for m in plan.matches} == {
        "w": "w/ExponentialMovingAverage", "w/Adam": "w/Adam", "w/Adam_1": "w/Adam_1"
    }  # fmt: skip
    assert plan.unused_rules == []
