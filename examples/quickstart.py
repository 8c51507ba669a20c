"""Quickstart: migrate a TF 1.x checkpoint into a Keras model, end to end.

1. Write a small checkpoint the way TF 1.x code did: graph mode, variable scopes, one training
   step, ``tf.compat.v1.train.Saver``.
2. Look at it with ``ckptbridge.inspect`` (no TensorFlow needed for that part).
3. Restore it into the Keras model you would write today with ``ckptbridge.restore``, print the
   report, and prove the Keras model computes what the TF1 graph computed.

Run: ``python examples/quickstart.py``
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

import ckptbridge
from ckptbridge._optional import import_tensorflow

tf = import_tensorflow()  # TensorFlow without the C++ start-up lines it writes to stderr

v1 = tf.compat.v1


def write_tf1_checkpoint(directory: Path, inputs: np.ndarray) -> tuple[str, np.ndarray]:
    """TF 1.x style: a 4-8-3 classifier under scopes 'hidden' and 'output'. Returns (prefix, logits)."""
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        y = v1.placeholder(tf.int64, [None], name="y")
        with v1.variable_scope("hidden"):
            w = v1.get_variable(
                "weights", [4, 8], initializer=v1.glorot_uniform_initializer(seed=1)
            )
            b = v1.get_variable("biases", [8], initializer=v1.zeros_initializer())
            h = tf.nn.relu(tf.matmul(x, w) + b)
        with v1.variable_scope("output"):
            w = v1.get_variable(
                "weights", [8, 3], initializer=v1.glorot_uniform_initializer(seed=2)
            )
            b = v1.get_variable("biases", [3], initializer=v1.zeros_initializer())
            logits = tf.matmul(h, w) + b
        loss = v1.losses.sparse_softmax_cross_entropy(y, logits)
        step = v1.train.get_or_create_global_step()
        train = v1.train.GradientDescentOptimizer(0.5).minimize(loss, global_step=step)
        sess.run(v1.global_variables_initializer())
        sess.run(train, {x: inputs, y: np.array([0, 1, 2, 1])})
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"), global_step=step)
        return prefix, sess.run(logits, {x: inputs})


def main() -> None:
    inputs = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        prefix, tf1_logits = write_tf1_checkpoint(Path(tmp), inputs)

        print("== What ckptbridge sees in the TF1 checkpoint ==")
        print(ckptbridge.inspect(prefix))

        print("\n== Restore into today's Keras model ==")
        import keras  # Keras 3

        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
        )
        report = ckptbridge.restore(model, prefix)
        print(report)

        keras_logits = model(inputs).numpy()
        np.testing.assert_allclose(keras_logits, tf1_logits, rtol=1e-5, atol=1e-6)
        diff = float(np.max(np.abs(keras_logits - tf1_logits)))
        print(f"\nKeras output == TF1 graph output (max abs difference {diff:.2e})")


if __name__ == "__main__":
    main()
