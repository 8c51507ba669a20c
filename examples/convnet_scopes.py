"""A TF1 tutorial conv net saved under ``conv1/weights``-style scopes (with Adam slots and
``global_step``) restored into the Keras CNN you would write today. Nothing in the names matches:
creation order and shapes carry the correspondence; the optimizer state is reported as auxiliary.

Run: ``python examples/convnet_scopes.py``
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


def _layer(x: tf.Tensor, scope: str, shape: list[int], conv: bool, relu: bool = True) -> tf.Tensor:
    with v1.variable_scope(scope):
        w = v1.get_variable(
            "weights", shape, initializer=v1.truncated_normal_initializer(stddev=0.1)
        )
        b = v1.get_variable("biases", shape[-1:], initializer=v1.constant_initializer(0.1))
        h = tf.nn.conv2d(x, w, [1, 1, 1, 1], "SAME") + b if conv else tf.matmul(x, w) + b
        h = tf.nn.relu(h) if relu else h
        return tf.nn.max_pool2d(h, 2, 2, "SAME") if conv else h


def train_tf1_convnet(directory: Path, images: np.ndarray) -> tuple[str, np.ndarray]:
    """conv1 -> pool -> conv2 -> pool -> fc1 -> fc2, one Adam step, Saver; returns (prefix, logits)."""
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, [None, 28, 28, 1])
        y = v1.placeholder(tf.int64, [None])
        step = v1.train.get_or_create_global_step()
        h = _layer(x, "conv1", [5, 5, 1, 8], conv=True)
        h = _layer(h, "conv2", [5, 5, 8, 16], conv=True)
        h = _layer(tf.reshape(h, [-1, 7 * 7 * 16]), "fc1", [7 * 7 * 16, 32], conv=False)
        logits = _layer(h, "fc2", [32, 10], conv=False, relu=False)
        loss = v1.losses.sparse_softmax_cross_entropy(y, logits)
        train = v1.train.AdamOptimizer(1e-3).minimize(loss, global_step=step)
        sess.run(v1.global_variables_initializer())
        sess.run(train, {x: images, y: np.arange(len(images))})
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"), global_step=step)
        return prefix, sess.run(logits, {x: images})


def main() -> None:
    import keras

    images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        prefix, tf1_logits = train_tf1_convnet(Path(tmp), images)
        model = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                keras.layers.Conv2D(8, 5, padding="same", activation="relu"),
                keras.layers.MaxPooling2D(2),
                keras.layers.Conv2D(16, 5, padding="same", activation="relu"),
                keras.layers.MaxPooling2D(2),
                keras.layers.Flatten(),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(10),
            ]
        )
        print(ckptbridge.restore(model, prefix))
        keras_logits = model(images).numpy()
        np.testing.assert_allclose(keras_logits, tf1_logits, rtol=1e-5, atol=1e-5)
        diff = float(np.max(np.abs(keras_logits - tf1_logits)))
        print(f"\nKeras CNN output == TF1 conv net output (max abs difference {diff:.2e})")


if __name__ == "__main__":
    main()
