"""ckptbridge.sides._live: live models described as VarSpecs, and value assignment."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from ckptbridge._errors import MappingError
from ckptbridge.sides._live import assign_values, check_values, describe_model, is_live_model

pytestmark = pytest.mark.tf


def _keras3_bn_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3, name="dense"),
            keras.layers.Dropout(0.1),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(2, name="out"),
        ],
        name="seq",
    )


def test_keras3_names_shapes_trainable_and_no_seed_state() -> None:
    live = describe_model(_keras3_bn_model())
    assert live.kind == "keras"
    assert [(s.name, s.shape, s.trainable) for s in live.specs] == [
        ("seq/dense/kernel", (4, 3), True),
        ("seq/dense/bias", (3,), True),
        ("seq/bn/gamma", (3,), True),
        ("seq/bn/beta", (3,), True),
        ("seq/bn/moving_mean", (3,), False),
        ("seq/bn/moving_variance", (3,), False),
        ("seq/out/kernel", (3, 2), True),
        ("seq/out/bias", (2,), True),
    ]
    assert [s.order for s in live.specs] == list(range(8))
    assert {s.layer for s in live.specs} == {"Dense", "BatchNormalization"}


def test_keras3_aliases_are_object_graph_paths() -> None:
    live = describe_model(_keras3_bn_model())
    kernel = live.specs[0]
    assert kernel.aliases == (
        "_functional/_operations/1/_kernel",
        "model/_functional/_operations/1/_kernel",
    )


def test_keras3_branched_model_uses_creation_order_not_layer_order() -> None:
    inputs = keras.Input((4,))
    first = keras.layers.Dense(3, name="first")(inputs)
    second = keras.layers.Dense(3, name="second")(inputs)
    outputs = keras.layers.Add()([second, first])
    model = keras.Model(inputs, outputs)
    assert [w.path for w in model.weights][:2] == ["second/kernel", "second/bias"]
    live = describe_model(model)
    assert [s.name for s in live.specs] == [
        "first/kernel",
        "first/bias",
        "second/kernel",
        "second/bias",
    ]


def test_tf_keras_names_end_in_colon_zero() -> None:
    model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(3, name="d")])
    live = describe_model(model)
    assert live.kind == "tf_keras"
    assert [(s.name, s.shape) for s in live.specs] == [("d/kernel:0", (4, 3)), ("d/bias:0", (3,))]
    assert "layer_with_weights-0/kernel" in live.specs[0].aliases


class _Net(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.zeta = tf.Variable(tf.ones([2, 3]), name="w")  # created first, listed last
        self.alpha = tf.Variable(tf.ones([4]), name="alpha")
        self.sub = tf.Module()
        self.sub.w = tf.Variable(tf.zeros([3]), name="w")  # same name as zeta's variable


def test_tf_module_creation_order_names_and_paths() -> None:
    net = _Net()
    assert [v.name for v in net.variables] == ["alpha:0", "w:0", "w:0"]  # sorted by attribute
    live = describe_model(net)
    assert live.kind == "module"
    assert [(s.name, s.shape) for s in live.specs] == [
        ("w:0", (2, 3)),
        ("alpha:0", (4,)),
        ("sub/w", (3,)),
    ]
    assert live.specs[0].aliases == ("zeta", "model/zeta")
    assert live.specs[2].aliases == ("w:0", "model/sub/w")


def test_unbuilt_keras_model_is_a_clear_error() -> None:
    model = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(MappingError, match=r"is not built.*model\.build\(input_shape\)"):
        describe_model(model)


def test_not_a_model() -> None:
    assert not is_live_model("old/model.ckpt-1000")
    with pytest.raises(MappingError, match=r"^cannot restore into a dict: expected a Keras 3"):
        describe_model({})


def test_check_then_assign() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="d")], name="m")
    live = describe_model(model)
    kernel = np.arange(4, dtype=np.float32).reshape(2, 2)
    with pytest.raises(MappingError, match=r"m/d/bias: expected shape \(2,\), received \(3,\)"):
        check_values(live, {"m/d/kernel": kernel, "m/d/bias": np.zeros(3, np.float32)})
    with pytest.raises(MappingError, match=r"expected dtype float32, received float64"):
        check_values(live, {"m/d/bias": np.zeros(2)})
    values = {"m/d/kernel": kernel, "m/d/bias": np.ones(2, np.float32)}
    check_values(live, values)
    assign_values(live, values)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernel)
    np.testing.assert_array_equal(model.layers[0].bias.numpy(), [1, 1])
