"""The TF 1.2 linear-regression tutorial's checkpoint (``weight`` and ``bias``, shape [1]) into
``keras.layers.Dense(1)``, whose kernel is [1, 1]: ckptbridge finds the reshape by itself.

Run: ``python examples/linear_regression.py``
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


def train_tf12_style(directory: Path) -> tuple[str, float, float]:
    """Fit y = 3x + 2 for a few steps the TF 1.2 way; return the prefix and the learned W, b."""
    rng = np.random.default_rng(0)
    train_x = rng.normal(size=50).astype(np.float32)
    train_y = 3.0 * train_x + 2.0
    with tf.Graph().as_default(), v1.Session() as sess:
        X = v1.placeholder("float")
        Y = v1.placeholder("float")
        W = tf.Variable(rng.normal(size=[1]).astype(np.float32), name="weight")
        b = tf.Variable(rng.normal(size=[1]).astype(np.float32), name="bias")
        pred = tf.add(tf.multiply(X, W), b)
        cost = tf.reduce_sum(tf.pow(pred - Y, 2)) / (2 * 50)
        optimizer = v1.train.GradientDescentOptimizer(0.1).minimize(cost)
        sess.run(v1.global_variables_initializer())
        for _ in range(100):
            sess.run(optimizer, {X: train_x, Y: train_y})
        prefix = v1.train.Saver().save(sess, str(directory / "linear.ckpt"))
        w_value, b_value = sess.run([W, b])
        return prefix, float(w_value[0]), float(b_value[0])


def main() -> None:
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        prefix, w, b = train_tf12_style(Path(tmp))
        print(f"TF1 learned: weight={w:.4f} bias={b:.4f}")

        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        print(ckptbridge.restore(model, prefix))

        x = np.array([[-1.0], [0.0], [2.5]], dtype=np.float32)
        expected = x * w + b
        np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-5)
        print(f"Dense(1) predictions {model(x).numpy().ravel()} == W*x + b {expected.ravel()}")


if __name__ == "__main__":
    main()
