"""Restoring with error handling: the model differs from its checkpoint in one layer.

``ckptbridge.NotFoundError`` subclasses ``tf.errors.NotFoundError``, so the ``except`` clause
existing TF code already has keeps working. The message names the variable, the closest checkpoint
key and both shapes, and suggests a rule. Nothing is assigned when it is raised: the model is
untouched. ``strict=False`` then restores what does match and reports the rest.

Run: ``python examples/error_handling.py``
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


def write_checkpoint(directory: Path) -> str:
    """A TF1 MLP 10 -> 32 -> 4 under scopes fc1 and fc2."""
    with tf.Graph().as_default(), v1.Session() as sess:
        for scope, shape in (("fc1", [10, 32]), ("fc2", [32, 4])):
            with v1.variable_scope(scope):
                v1.get_variable("weights", shape)
                v1.get_variable("biases", shape[-1:], initializer=v1.ones_initializer())
        sess.run(v1.global_variables_initializer())
        return str(v1.train.Saver().save(sess, str(directory / "model.ckpt")))


def main() -> None:
    import keras

    with tempfile.TemporaryDirectory() as tmp:
        prefix = write_checkpoint(Path(tmp))
        # The second layer has 5 units; the checkpoint's fc2 has 4.
        model = keras.Sequential(
            [keras.Input((10,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(5)]
        )
        before = [w.numpy().copy() for w in model.weights]
        try:
            ckptbridge.restore(model, prefix)
        except tf.errors.NotFoundError as err:
            print("Caught tf.errors.NotFoundError:\n")
            print(err)
        untouched = all(
            np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights, strict=True)
        )
        print(f"\nModel untouched after the failed restore: {untouched}")
        if not untouched:
            raise SystemExit("the failed restore changed the model")

        report = ckptbridge.restore(model, prefix, strict=False)
        print("\nWith strict=False, what matched is restored and the rest reported:\n")
        print(report)
        if not report.missing:
            raise SystemExit("expected the 5-unit layer to be reported missing")


if __name__ == "__main__":
    main()
