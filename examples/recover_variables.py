"""Recover variables from name scopes: pull every value out of a TF1 checkpoint as numpy arrays,
without rebuilding the graph, and use them directly.

``ckptbridge.load_variables(path)`` returns ``{name: numpy.ndarray}``; grouping the names by their
scope gives the layers back. The numpy forward pass equals the TF1 graph's output.

Run: ``python examples/recover_variables.py``
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

import ckptbridge
from ckptbridge._optional import import_tensorflow

tf = import_tensorflow()  # TensorFlow without the C++ start-up lines it writes to stderr

v1 = tf.compat.v1


def write_checkpoint(directory: Path, x_value: np.ndarray) -> tuple[str, np.ndarray]:
    """Variables created inside ``tf.name_scope`` blocks, as many TF1 tutorials did."""
    rng = np.random.default_rng(0)
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, [None, 6])
        h = x
        for i, (n_in, n_out) in enumerate([(6, 5), (5, 2)], start=1):
            with tf.name_scope(f"layer{i}"):
                w = tf.Variable(rng.normal(size=(n_in, n_out)).astype(np.float32), name="W")
                b = tf.Variable(rng.normal(size=n_out).astype(np.float32), name="b")
                h = tf.matmul(h, w) + b
                h = tf.nn.tanh(h) if i == 1 else h
        sess.run(v1.global_variables_initializer())
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"))
        return str(prefix), sess.run(h, {x: x_value})


def main() -> None:
    x = np.random.default_rng(1).normal(size=(3, 6)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        prefix, tf1_out = write_checkpoint(Path(tmp), x)
        variables = ckptbridge.load_variables(prefix)

        scopes: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
        for name, value in sorted(variables.items()):
            scope, _, leaf = name.rpartition("/")
            scopes[scope][leaf] = value
        for scope, leaves in scopes.items():
            shapes = ", ".join(f"{leaf} {tuple(v.shape)}" for leaf, v in leaves.items())
            print(f"{scope}: {shapes}")

        h = np.tanh(x @ scopes["layer1"]["W"] + scopes["layer1"]["b"])
        out = h @ scopes["layer2"]["W"] + scopes["layer2"]["b"]
        np.testing.assert_allclose(out, tf1_out, rtol=1e-5, atol=1e-6)
        print(
            f"numpy forward pass == TF1 graph output (max abs difference {np.max(np.abs(out - tf1_out)):.2e})"
        )


if __name__ == "__main__":
    main()
