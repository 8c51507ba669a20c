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


def test_entry_spec_equals_the_varspec_its_constructor_makes() -> None:
    import dataclasses

    from ckptbridge.engine._spec import VarSpec
    from ckptbridge.format import Entry
    from ckptbridge.sides._checkpoint import _entry_spec

    shapes: dict[object, tuple[int, ...]] = {}
    meta = {"trainable": False, "partition": ("4 4 0,2:0,4",)}
    for shape in [(4, 4), (np.int64(4), np.int64(4)), [4, 4], (4, 4)]:
        entry = Entry("w", "float32", shape, 64, False)  # type: ignore[arg-type]
        spec = _entry_spec("w", entry, order=3, aliases=("a",), meta=meta, shapes=shapes)
        expected = VarSpec(
            "w", (4, 4), "float32", 3, ("a",), trainable=False, partition=("4 4 0,2:0,4",)
        )
        assert spec == expected and hash(spec) == hash(expected) and repr(spec) == repr(expected)
        assert type(spec.shape[0]) is int
        assert dataclasses.replace(spec, name="v") == dataclasses.replace(expected, name="v")
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.name = "v"  # type: ignore[misc]
    assert _entry_spec("w", entry, order=None) == VarSpec("w", (4, 4))
