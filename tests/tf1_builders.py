"""Write TF1 checkpoints with real TF1-style code, for tests across the project.

Every builder builds a graph the way TensorFlow 1.x code did (``tf.compat.v1`` graph mode, variable
scopes, ``tf.Variable`` / ``get_variable``, a TF1 optimizer, ``Saver``), runs one training step so
the values are not the initial ones, saves, and returns a :class:`TF1Checkpoint`: the prefix, the
names of the model's weights, and the graph's output on a fixed input (plus :meth:`run` for others)::

    from tf1_builders import write_convnet_scopes
    ck = write_convnet_scopes(tmp_path)
    ckptbridge.restore(model, ck.prefix)
    np.testing.assert_allclose(model(ck.inputs), ck.outputs, rtol=1e-5)

Conftest sets ``TF_USE_LEGACY_KERAS=1`` first, so ``tf.compat.v1.layers`` (tf-keras) is available.
Nothing here disables eager execution: each graph lives in ``with tf.Graph().as_default()``.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1

__all__ = [
    "TF1Checkpoint",
    "write_convnet_scopes",
    "write_linear_regression",
    "write_mlp_unnamed",
    "write_partitioned",
    "write_tf_layers",
]


@dataclass(frozen=True)
class TF1Checkpoint:
    """A checkpoint written by TF1 code and what its graph computes.

    ``weights``: model weight name -> shape, layer by layer (kernel, bias, ...; no optimizer state).
    ``auxiliary``: the other entries the saver wrote (slots, beta powers, global_step).
    ``outputs``: the graph's output for ``inputs``, computed in the session that saved.
    """

    prefix: Path
    inputs: np.ndarray
    outputs: np.ndarray
    input_name: str
    output_name: str
    weights: dict[str, tuple[int, ...]] = field(default_factory=dict)
    auxiliary: tuple[str, ...] = ()
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def run(self, x: np.ndarray) -> np.ndarray:
        """Re-import the saved ``.meta`` graph, restore it with ``Saver`` and run it on ``x``."""
        with tf.Graph().as_default(), v1.Session() as sess:
            saver = v1.train.import_meta_graph(f"{self.prefix}.meta")
            saver.restore(sess, str(self.prefix))
            out: np.ndarray = sess.run(self.output_name, {self.input_name: x})
            return out


def _save(
    sess: Any,
    directory: Path,
    name: str,
    x: Any,
    out: Any,
    inputs: np.ndarray,
    *,
    weights: list[Any],
    version: int = 2,
    global_step: Any = None,
) -> TF1Checkpoint:
    """Save the session with a TF1 Saver and describe what was written."""
    directory.mkdir(parents=True, exist_ok=True)
    write_version = v1.train.SaverDef.V1 if version == 1 else v1.train.SaverDef.V2
    saver = v1.train.Saver(write_version=write_version)
    path = saver.save(sess, str(directory / name), global_step=global_step)
    outputs = sess.run(out, {x: inputs})
    weight_names = {w.op.name: tuple(w.shape.as_list()) for w in weights}
    values = dict(zip(weight_names, sess.run(weights), strict=True))
    saved = [v.op.name for v in v1.global_variables()]
    aux = tuple(n for n in saved if n not in weight_names)
    return TF1Checkpoint(
        prefix=Path(path),
        inputs=inputs,
        outputs=outputs,
        input_name=x.name,
        output_name=out.name,
        weights=weight_names,
        auxiliary=aux,
        values=values,
    )


def _train_once(sess: Any, train_op: Any, feed: dict[Any, Any]) -> None:
    sess.run(v1.global_variables_initializer())
    sess.run(train_op, feed)


def write_linear_regression(directory: Path, *, version: int = 2) -> TF1Checkpoint:
    """The TF 1.2 linear-regression tutorial: ``weight`` and ``bias`` of shape [1], plain SGD.

    Input ``(N, 1)``; output ``X * W + b``, which is what ``keras.layers.Dense(1)`` computes.
    ``version=1`` writes the pre-2017 V1 single-file format.
    """
    rng = np.random.default_rng(0)
    train_x = rng.normal(size=(16, 1)).astype(np.float32)
    train_y = (3.0 * train_x + 2.0).astype(np.float32)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 1], name="X")
        y = v1.placeholder(tf.float32, [None, 1], name="Y")
        w = tf.Variable(rng.normal(size=[1]).astype(np.float32), name="weight")
        b = tf.Variable(rng.normal(size=[1]).astype(np.float32), name="bias")
        pred = tf.add(tf.multiply(x, w), b, name="pred")
        cost = tf.reduce_sum(tf.pow(pred - y, 2)) / (2 * 16)
        train_op = v1.train.GradientDescentOptimizer(0.01).minimize(cost)
        _train_once(sess, train_op, {x: train_x, y: train_y})
        return _save(
            sess, directory, "model.ckpt", x, pred, train_x[:5], weights=[w, b], version=version
        )


def write_mlp_unnamed(
    directory: Path, *, sizes: tuple[int, ...] = (784, 256, 10), seed: int = 0
) -> TF1Checkpoint:
    """The Udacity-course MLP: unnamed ``tf.Variable`` s, all weights created before all biases.

    So ``Variable`` .. ``Variable_{L-1}`` are the kernels and the rest the biases; with five or
    more layers the names run past ``Variable_10`` (natural order is not string order).
    Hidden layers use ReLU, the last is linear; input ``(N, sizes[0])``.
    """
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(4, sizes[0])).astype(np.float32)
    labels = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], size=4)]
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(seed)
        x = v1.placeholder(tf.float32, [None, sizes[0]], name="x")
        y = v1.placeholder(tf.float32, [None, sizes[-1]], name="y")
        kernels = [
            tf.Variable(v1.truncated_normal([a, b], stddev=0.1, seed=seed + i))
            for i, (a, b) in enumerate(itertools.pairwise(sizes))
        ]
        biases = [tf.Variable(v1.random_normal([b], stddev=0.1)) for b in sizes[1:]]
        h = x
        for i, (k, b) in enumerate(zip(kernels, biases, strict=True)):
            h = tf.matmul(h, k) + b
            if i < len(kernels) - 1:
                h = tf.nn.relu(h)
        logits = tf.identity(h, name="logits")
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train_op = v1.train.GradientDescentOptimizer(0.1).minimize(loss)
        _train_once(sess, train_op, {x: inputs, y: labels})
        weights = [w for pair in zip(kernels, biases, strict=True) for w in pair]
        return _save(sess, directory, "model.ckpt", x, logits, inputs, weights=weights)


def _conv_layer(x: Any, scope: str, shape: list[int]) -> Any:
    with v1.variable_scope(scope):
        w = v1.get_variable("weights", shape, initializer=v1.truncated_normal_initializer(0.0, 0.1))
        b = v1.get_variable("biases", shape[-1:], initializer=v1.constant_initializer(0.1))
        h = tf.nn.relu(tf.nn.conv2d(x, w, strides=[1, 1, 1, 1], padding="SAME") + b)
        return tf.nn.max_pool2d(h, ksize=2, strides=2, padding="SAME")


def _fc_layer(x: Any, scope: str, shape: list[int], *, relu: bool) -> Any:
    with v1.variable_scope(scope):
        w = v1.get_variable("weights", shape, initializer=v1.truncated_normal_initializer(0.0, 0.1))
        b = v1.get_variable("biases", shape[-1:], initializer=v1.constant_initializer(0.1))
        h = tf.matmul(x, w) + b
        return tf.nn.relu(h) if relu else h


def write_convnet_scopes(directory: Path, *, global_step: int | None = 1000) -> TF1Checkpoint:
    """A TF1 tutorial conv net: ``conv1/weights``, ``conv1/biases``, ``conv2/...``, ``fc1/...``, ``fc2/...``.

    Input ``(N, 28, 28, 1)``; conv 5x5x8 + ReLU + 2x2 max pool, conv 5x5x16 + ReLU + pool, flatten,
    dense 64 + ReLU, dense 10. Trained one step with Adam, so the checkpoint also holds Adam slots,
    ``beta1_power`` / ``beta2_power`` and ``global_step``. Saved as ``model.ckpt-<global_step>``.
    """
    rng = np.random.default_rng(1)
    inputs = rng.random(size=(4, 28, 28, 1), dtype=np.float32)
    labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, size=4)]
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(1)
        x = v1.placeholder(tf.float32, [None, 28, 28, 1], name="images")
        y = v1.placeholder(tf.float32, [None, 10], name="labels")
        step = v1.train.get_or_create_global_step()
        h = _conv_layer(x, "conv1", [5, 5, 1, 8])
        h = _conv_layer(h, "conv2", [5, 5, 8, 16])
        h = tf.reshape(h, [-1, 7 * 7 * 16])
        h = _fc_layer(h, "fc1", [7 * 7 * 16, 64], relu=True)
        logits = tf.identity(_fc_layer(h, "fc2", [64, 10], relu=False), name="logits")
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train_op = v1.train.AdamOptimizer(1e-3).minimize(loss, global_step=step)
        _train_once(sess, train_op, {x: inputs, y: labels})
        if global_step is not None:
            sess.run(step.assign(global_step))
        weights = v1.trainable_variables()
        return _save(
            sess, directory, "model.ckpt", x, logits, inputs, weights=weights, global_step=step
        )


def write_tf_layers(directory: Path) -> TF1Checkpoint:
    """A ``tf.compat.v1.layers`` model: conv2d, batch_normalization, dense, dense_1.

    Input ``(N, 8, 8, 3)``; conv 3x3x4 (same) + batch norm (inference) + ReLU, flatten, dense 16 +
    ReLU, dense 5. One Momentum step with the batch-norm update ops, so the moving statistics moved.
    """
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
    labels = np.eye(5, dtype=np.float32)[rng.integers(0, 5, size=4)]
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(2)
        x = v1.placeholder(tf.float32, [None, 8, 8, 3], name="x")
        y = v1.placeholder(tf.float32, [None, 5], name="y")
        training = v1.placeholder_with_default(False, [], name="training")
        with warnings.catch_warnings():  # "tf.layers is deprecated": the point of this builder
            warnings.simplefilter("ignore", UserWarning)
            h = v1.layers.conv2d(x, 4, 3, padding="same")
            h = tf.nn.relu(v1.layers.batch_normalization(h, training=training))
            h = v1.layers.flatten(h)
            h = v1.layers.dense(h, 16, activation=tf.nn.relu)
            logits = tf.identity(v1.layers.dense(h, 5), name="logits")
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
        with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            train_op = v1.train.MomentumOptimizer(0.1, 0.9).minimize(loss)
        _train_once(sess, train_op, {x: inputs, y: labels, training: True})
        weights = [v for v in v1.global_variables() if "Momentum" not in v.op.name]
        return _save(sess, directory, "model.ckpt", x, logits, inputs, weights=weights)


def write_partitioned(directory: Path, *, partitions: int = 3) -> TF1Checkpoint:
    """A two-layer net whose first kernel ``hidden/weights`` [20, 16] is partitioned in ``partitions``.

    The checkpoint stores it as one sliced entry; Adagrad adds sliced ``.../Adagrad`` slots.
    Input ``(N, 20)``; dense 16 + ReLU (``hidden``), dense 4 (``logits``).
    """
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(4, 20)).astype(np.float32)
    labels = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=4)]
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(3)
        x = v1.placeholder(tf.float32, [None, 20], name="x")
        y = v1.placeholder(tf.float32, [None, 4], name="y")
        init = v1.truncated_normal_initializer(0.0, 0.1)
        with v1.variable_scope("hidden"):
            w1 = v1.get_variable(
                "weights",
                [20, 16],
                initializer=init,
                partitioner=v1.fixed_size_partitioner(partitions),
            )
            b1 = v1.get_variable("biases", [16], initializer=v1.zeros_initializer())
        with v1.variable_scope("logits"):
            w2 = v1.get_variable("weights", [16, 4], initializer=init)
            b2 = v1.get_variable("biases", [4], initializer=v1.zeros_initializer())
        h = tf.nn.relu(tf.matmul(x, w1) + b1)
        logits = tf.identity(tf.matmul(h, w2) + b2, name="out")
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train_op = v1.train.AdagradOptimizer(0.1).minimize(loss)
        _train_once(sess, train_op, {x: inputs, y: labels})
        directory.mkdir(parents=True, exist_ok=True)
        path = v1.train.Saver().save(sess, str(directory / "model.ckpt"))
        full_w1 = sess.run(w1.as_tensor())
        values = {
            "hidden/weights": full_w1,
            **dict(
                zip(
                    ["hidden/biases", "logits/weights", "logits/biases"],
                    sess.run([b1, w2, b2]),
                    strict=True,
                )
            ),
        }
        saved = {re.sub(r"/part_\d+", "", v.op.name) for v in v1.global_variables()}
        return TF1Checkpoint(
            prefix=Path(path),
            inputs=inputs,
            outputs=sess.run(logits, {x: inputs}),
            input_name=x.name,
            output_name=logits.name,
            weights={k: tuple(v.shape) for k, v in values.items()},
            auxiliary=tuple(sorted(saved - set(values))),
            values=values,
        )


BUILDERS: dict[str, Callable[[Path], TF1Checkpoint]] = {
    "linear_regression": write_linear_regression,
    "mlp_unnamed": write_mlp_unnamed,
    "convnet_scopes": write_convnet_scopes,
    "tf_layers": write_tf_layers,
    "partitioned": write_partitioned,
}
