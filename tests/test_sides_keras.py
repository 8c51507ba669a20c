"""Keras 3 object paths and creation order from Keras's own structure (sides._keras), on every backend.

The paths are TensorFlow's (``tf.train.Checkpoint`` object graph), checked against
``tf.train.TrackableView`` on the TensorFlow backend and against the literal below on the others
(tox runs this file on JAX, NumPy, PyTorch and TensorFlow). Creation order is checked against
TensorFlow's own variable counter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from ckptbridge.sides import _keras, _live
from conftest import require
from keras_zoo import ZOO, all_variables

# The first path of every variable (model.weights, then the optimizer's), as TensorFlow 2.21 +
# Keras 3.15 write them: the key of that variable in a TF2 checkpoint of the model. None: not in
# a TF2 checkpoint at all (layers held in a list attribute of a subclassed model).
FIRST_PATHS = {
    "attention": [
        "_operations/1/_query_dense/_kernel",
        "_operations/1/_query_dense/bias",
        "_operations/1/_key_dense/_kernel",
        "_operations/1/_key_dense/bias",
        "_operations/1/_value_dense/_kernel",
        "_operations/1/_value_dense/bias",
        "_operations/1/_output_dense/_kernel",
        "_operations/1/_output_dense/bias",
        "_operations/2/gamma",
        "_operations/2/beta",
        "_operations/5/_embeddings",
    ],
    "nested": [
        "_operations/1/_kernel",
        "_operations/1/bias",
        "_operations/2/_functional/_operations/1/_kernel",
        "_operations/2/_functional/_operations/1/bias",
        "_operations/2/_functional/_operations/2/_kernel",
        "_operations/2/_functional/_operations/2/bias",
        "_operations/3/_kernel",
        "_operations/3/bias",
    ],
    "residual": [
        "_operations/1/_kernel",
        "_operations/1/bias",
        "_operations/2/gamma",
        "_operations/2/beta",
        "_operations/2/moving_mean",
        "_operations/2/moving_variance",
        "_operations/4/_kernel",
        "_operations/4/bias",
        "_operations/5/_kernel",
        "_operations/5/bias",
        "_operations/9/_kernel",
        "_operations/9/bias",
    ],
    "rnn": [
        "_operations/1/cell/kernel",
        "_operations/1/cell/recurrent_kernel",
        "_operations/1/cell/bias",
        "_operations/2/forward_layer/cell/kernel",
        "_operations/2/forward_layer/cell/recurrent_kernel",
        "_operations/2/forward_layer/cell/bias",
        "_operations/2/backward_layer/cell/kernel",
        "_operations/2/backward_layer/cell/recurrent_kernel",
        "_operations/2/backward_layer/cell/bias",
        "_operations/3/_kernel",
        "_operations/3/bias",
    ],
    "sequential": [
        "_functional/_operations/1/_kernel",
        "_functional/_operations/1/bias",
        "_functional/_operations/3/gamma",
        "_functional/_operations/3/beta",
        "_functional/_operations/3/moving_mean",
        "_functional/_operations/3/moving_variance",
        "_functional/_operations/4/_kernel",
        "_functional/_operations/4/bias",
    ],
    "subclassed": ["d1/_kernel", "d1/bias", None, None, None, None, "d2/_kernel", "d2/bias"],
    "with_optimizer": [
        "optimizer/_trainable_variables/0",
        "optimizer/_trainable_variables/1",
        "optimizer/_trainable_variables/2",
        "optimizer/_trainable_variables/3",
        "optimizer/_iterations",
        "optimizer/_learning_rate",
        "optimizer/_variables/2",
        "optimizer/_variables/3",
        "optimizer/_variables/4",
        "optimizer/_variables/5",
        "optimizer/_variables/6",
        "optimizer/_variables/7",
        "optimizer/_variables/8",
        "optimizer/_variables/9",
    ],
}


@pytest.fixture(autouse=True)
def fresh_layer_names() -> None:
    keras.backend.clear_session()


def _first_paths(model: Any) -> list[str | None]:
    variables = all_variables(model)
    paths = _keras.object_paths(model, {id(v) for v in variables})
    return [(paths.get(id(v)) or [None])[0] for v in variables]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_paths_on_this_backend_are_tensorflows(name: str) -> None:
    assert _first_paths(ZOO[name]()) == FIRST_PATHS[name]


@pytest.mark.tf
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow backend only")
@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_path_equals_tensorflows_trackable_view(name: str) -> None:
    model = ZOO[name]()
    wanted = {id(v) for v in all_variables(model)}
    ours = _keras.object_paths(model, wanted, limit=1000)
    assert ours == _live._object_paths(model, wanted)  # TensorFlow's own walk


@pytest.mark.tf
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow backend only")
@pytest.mark.parametrize("name", sorted(set(ZOO) - {"subclassed"}))
def test_recorded_order_equals_tensorflows_creation_counter(name: str) -> None:
    model = ZOO[name]()
    ranks = _keras.creation_order(model)
    assert ranks is not None
    by_uid = sorted(model.weights, key=lambda v: _live._creation_order(v, 0))
    assert sorted(model.weights, key=lambda v: ranks[id(v)]) == by_uid


def test_order_is_unknown_where_keras_recorded_none() -> None:
    assert _keras.creation_order(ZOO["subclassed"]()) is None
    specs = _live.describe_model(ZOO["subclassed"]()).specs
    if keras.backend.backend() != "tensorflow":  # TensorFlow counts creation itself
        assert {(s.order, s.counted) for s in specs} == {(None, False)}


# -- the bug this fixes: JAX paired unnamed TF1 variables by model.weights ---------------------

_JAX_RESTORE = """
import json, sys
import keras, numpy as np, ckptbridge
inputs = keras.Input((4,))
s = keras.layers.Dense(4)(inputs)  # the shortcut first, as the TF1 code made it
h = keras.layers.Dense(4, activation="relu")(inputs)
h = keras.layers.Dense(4)(h)
out = keras.layers.Dense(2)(keras.layers.ReLU()(keras.layers.Add()([h, s])))
model = keras.Model(inputs, out)
x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
try:
    ckptbridge.restore(model, sys.argv[1])
except ckptbridge.NotFoundError:
    print(json.dumps(None))
else:
    print(json.dumps(np.asarray(model(x)).tolist()))
"""


@pytest.mark.tf
def test_branched_tf1_model_with_unnamed_variables_restores_exactly_on_jax(tmp_path: Path) -> None:
    """Written by TF1 code (tf.compat.v1, unnamed variables in creation order), restored into the
    same residual block built with Keras on JAX in a subprocess. The shortcut is made first; Keras
    lists it after the longer branch's first layer. Before: the plan was complete and the weights
    wrong (max abs diff 7.7 against TF1's outputs); now equal."""
    require("jax")
    import tensorflow as tf

    v1 = tf.compat.v1
    x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
    graph = tf.Graph()
    with graph.as_default():
        rng = np.random.default_rng(3)

        def var(*shape: int) -> Any:
            return v1.Variable(rng.normal(size=shape).astype(np.float32))

        inp = v1.placeholder(tf.float32, (None, 4))
        ws, bs, wa, ba, wb, bb, wo, bo = (var(4, 4), var(4), var(4, 4), var(4), var(4, 4), var(4),
                                          var(4, 2), var(2))  # fmt: skip
        h = tf.matmul(tf.nn.relu(tf.matmul(inp, wa) + ba), wb) + bb
        logits = tf.matmul(tf.nn.relu(h + tf.matmul(inp, ws) + bs), wo) + bo
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            expected = sess.run(logits, {inp: x})
            prefix = v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run([sys.executable, "-c", _JAX_RESTORE, prefix], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    restored = json.loads(out.stdout.splitlines()[-1])
    assert restored is not None
    np.testing.assert_allclose(np.array(restored, np.float32), expected, rtol=1e-5, atol=1e-5)
