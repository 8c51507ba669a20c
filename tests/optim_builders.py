"""A tiny TF1 MLP trained with real TF1 optimizers, and the matching Keras model, for the optimizer
state tests (test_optim_hook.py, test_optim_export.py).

The TF1 graph is ``fc1`` (3->4, ReLU) then ``fc2`` (4->2) under ``variable_scope`` s with
``weights``/``biases``, loss ``reduce_mean(square(out - y))`` (what Keras' ``"mse"`` computes), and
``global_step`` passed to ``minimize``. Each optimizer below has the TF1 constructor and the Keras
one with the same hyperparameters (TF1's defaults where Keras' differ: Adam epsilon 1e-8, RMSProp
epsilon 1e-10, Adagrad has no epsilon so Keras gets 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1

_RNG = np.random.default_rng(7)
X = _RNG.normal(size=(8, 3)).astype(np.float32)
Y = _RNG.normal(size=(8, 2)).astype(np.float32)
_INIT = {
    "fc1/weights": _RNG.normal(size=(3, 4)).astype(np.float32),
    "fc1/biases": np.full(4, 0.05, np.float32),
    "fc2/weights": _RNG.normal(size=(4, 2)).astype(np.float32),
    "fc2/biases": np.full(2, 0.1, np.float32),
}
WEIGHTS = tuple(_INIT)


@dataclass(frozen=True)
class OptimizerCase:
    """One optimizer, on both sides, with the same hyperparameters."""

    tf1: Callable[[], Any]
    keras: Callable[[Any], Any]  # the keras or tf_keras module -> optimizer


CASES: dict[str, OptimizerCase] = {
    "adam": OptimizerCase(
        lambda: v1.train.AdamOptimizer(0.01),
        lambda k: k.optimizers.Adam(0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-8),
    ),
    "momentum": OptimizerCase(
        lambda: v1.train.MomentumOptimizer(0.1, 0.9),
        lambda k: k.optimizers.SGD(0.1, momentum=0.9),
    ),
    "nesterov": OptimizerCase(
        lambda: v1.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True),
        lambda k: k.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    ),
    "rmsprop": OptimizerCase(
        lambda: v1.train.RMSPropOptimizer(0.01, decay=0.9, momentum=0.5),
        lambda k: k.optimizers.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-10),
    ),
    "rmsprop_centered": OptimizerCase(
        lambda: v1.train.RMSPropOptimizer(0.01, decay=0.9, momentum=0.5, centered=True),
        lambda k: k.optimizers.RMSprop(0.01, rho=0.9, momentum=0.5, epsilon=1e-10, centered=True),
    ),
    "adagrad": OptimizerCase(
        lambda: v1.train.AdagradOptimizer(0.1),
        lambda k: k.optimizers.Adagrad(0.1, epsilon=0.0),
    ),
}


@dataclass(frozen=True)
class TF1Run:
    """A TF1 run saved after ``steps`` steps, and its weights after one more step on (X, Y)."""

    prefix: str
    expected: dict[str, np.ndarray]


def _graph(case: str) -> tuple[Any, Any, dict[str, Any]]:
    x = v1.placeholder(tf.float32, [None, 3], name="x")
    y = v1.placeholder(tf.float32, [None, 2], name="y")
    global_step = v1.train.get_or_create_global_step()
    weights = {}
    for name, value in _INIT.items():
        scope, leaf = name.split("/")
        with v1.variable_scope(scope, reuse=v1.AUTO_REUSE):
            weights[name] = v1.get_variable(leaf, initializer=value)
    hidden = tf.nn.relu(tf.matmul(x, weights["fc1/weights"]) + weights["fc1/biases"])
    out = tf.matmul(hidden, weights["fc2/weights"]) + weights["fc2/biases"]
    loss = tf.reduce_mean(tf.square(out - y))
    train = CASES[case].tf1().minimize(loss, global_step=global_step)
    return train, {x: X, y: Y}, weights


def train_tf1(directory: Path, case: str, *, steps: int = 3) -> TF1Run:
    """Train ``steps`` steps with TF1's optimizer, save, then record one more step's weights."""
    with tf.Graph().as_default(), v1.Session() as sess:
        train, feed, weights = _graph(case)
        sess.run(v1.global_variables_initializer())
        for _ in range(steps):
            sess.run(train, feed)
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"), global_step=steps)
        sess.run(train, feed)
        return TF1Run(prefix, dict(zip(weights, sess.run(list(weights.values())), strict=True)))


def step_tf1(prefix: str, case: str) -> tuple[dict[str, np.ndarray], int]:
    """Restore ``prefix`` into the TF1 graph with ``Saver.restore``, run one step on (X, Y);
    return the weights and ``global_step`` after it."""
    with tf.Graph().as_default(), v1.Session() as sess:
        train, feed, weights = _graph(case)
        v1.train.Saver().restore(sess, prefix)
        sess.run(train, feed)
        values = dict(zip(weights, sess.run(list(weights.values())), strict=True))
        return values, int(sess.run(v1.train.get_global_step()))


def keras_model(k: Any, case: str) -> Any:
    """The Keras model a user writes today for this graph, compiled with the matching optimizer."""
    layers = [k.layers.Dense(4, activation="relu", name="fc1"), k.layers.Dense(2, name="fc2")]
    model = k.Sequential([k.Input((3,)), *layers], name="mlp")
    extra = {"jit_compile": False} if k.__name__ == "keras" else {}
    model.compile(optimizer=CASES[case].keras(k), loss="mse", **extra)
    return model


def keras_weights(model: Any) -> dict[str, np.ndarray]:
    """The model's weights under the TF1 names (kernel/bias of both Dense layers, in order)."""
    return dict(zip(WEIGHTS, (np.asarray(w) for w in model.weights), strict=True))
