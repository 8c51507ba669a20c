"""A TF2 variable's saved name (``SerializedTensor.full_name``) is a naming signal for the engine.

A ``tf.Module`` whose attribute paths say nothing (``a``, ``b``), created in the order opposite to
the TF1 graph's, maps onto the TF1 graph by the names its variables were given; the converted
checkpoint holds the module's values under the right TF1 keys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import ckptbridge

pytestmark = pytest.mark.tf
v1 = tf.compat.v1


def test_saved_names_pair_a_module_with_a_tf1_graph(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = {
        n: rng.normal(size=(4, 4)).astype(np.float32) for n in ("dense_1/kernel", "dense/kernel")
    }
    module = tf.Module()
    module.a = tf.Variable(values["dense_1/kernel"], name="dense_1/kernel")
    module.b = tf.Variable(values["dense/kernel"], name="dense/kernel")
    prefix = tf.train.Checkpoint(model=module).write(str(tmp_path / "tf2" / "ck"))
    with tf.Graph().as_default(), v1.Session() as sess:
        for scope in ("dense", "dense_1"):  # what tf.compat.v1.layers.dense names them
            with v1.variable_scope(scope):
                v1.get_variable("kernel", (4, 4))
        sess.run(v1.global_variables_initializer())
        template = v1.train.Saver().save(sess, str(tmp_path / "tf1" / "model.ckpt"))
    plan = ckptbridge.plan(prefix, template)
    assert plan.complete
    assert {m.target: m.source for m in plan.matches} == {
        "dense/kernel": "model/b/.ATTRIBUTES/VARIABLE_VALUE",
        "dense_1/kernel": "model/a/.ATTRIBUTES/VARIABLE_VALUE",
    }
    report = ckptbridge.convert(tmp_path / "tf2", tmp_path / "out", target=template)
    assert report.ok, str(report)
    reader = tf.train.load_checkpoint(str(tmp_path / "out"))
    for name, value in values.items():
        np.testing.assert_array_equal(reader.get_tensor(name), value)
