"""Live optimizers: describing Keras 3 and tf-keras optimizers' slots, computing and assigning."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from ckptbridge._errors import MappingError
from ckptbridge.engine.optim import OptimizerPlan, SlotMatch
from ckptbridge.rules import Transpose
from ckptbridge.sides._live import describe_model
from ckptbridge.sides._optimizer import (
    assign_optimizer,
    check_optimizer,
    describe_optimizer,
    optimizer_of,
    slot_values,
)

pytestmark = pytest.mark.tf


def _model(k: Any, optimizer: Any) -> Any:
    model = k.Sequential([k.Input((3,)), k.layers.Dense(2, name="fc")], name="net")
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _describe(model: Any) -> Any:
    live = describe_model(model)
    return describe_optimizer(model.optimizer, live.variables, list(model.trainable_variables))


def test_keras3_adam_is_built_and_described() -> None:
    model = _model(keras, keras.optimizers.Adam(0.5, beta_1=0.8))
    opt = _describe(model)
    scope = str(model.optimizer.iterations.path).split("/")[0]
    assert [(s.name, s.weight, s.role, s.shape) for s in opt.side.slots] == [
        (f"{scope}/net_fc_kernel_momentum", "net/fc/kernel", "m", (3, 2)),
        (f"{scope}/net_fc_kernel_velocity", "net/fc/kernel", "v", (3, 2)),
        (f"{scope}/net_fc_bias_momentum", "net/fc/bias", "m", (2,)),
        (f"{scope}/net_fc_bias_velocity", "net/fc/bias", "v", (2,)),
    ]
    assert opt.side.counters == {
        "iterations": f"{scope}/iteration",
        "learning_rate": f"{scope}/learning_rate",
    }
    assert (opt.side.family, opt.side.kind) == ("adam", "keras.optimizers.Adam")
    assert opt.side.hyper.learning_rate == pytest.approx(0.5)
    assert opt.side.hyper.beta_1 == pytest.approx(0.8)


def test_tf_keras_rmsprop_is_described() -> None:
    model = _model(tf_keras, tf_keras.optimizers.RMSprop(momentum=0.3, centered=True))
    opt = _describe(model)
    assert [(s.name, s.role) for s in opt.side.slots[:3]] == [
        ("RMSprop/velocity/fc/kernel:0", "velocity"),
        ("RMSprop/momentum/fc/kernel:0", "momentum"),
        ("RMSprop/average_gradient/fc/kernel:0", "average_gradient"),
    ]
    assert opt.side.counters == {
        "iterations": "RMSprop/iteration:0",
        "learning_rate": "RMSprop/learning_rate:0",
    }
    assert opt.side.hyper.centered


@pytest.mark.parametrize("k", [keras, tf_keras])
def test_sgd_without_momentum_has_no_slots(k: Any) -> None:
    opt = _describe(_model(k, k.optimizers.SGD(0.1)))
    assert (opt.side.family, opt.side.slots) == ("sgd", ())


def test_unsupported_optimizers_are_errors() -> None:
    with pytest.raises(MappingError, match=r"^cannot restore TF1 optimizer state into a "
                       r"keras\.src\.optimizers\.adamw\.AdamW: expected"):  # fmt: skip
        _describe(_model(keras, keras.optimizers.AdamW()))
    with pytest.raises(MappingError, match=r"tf_keras\.optimizers\.legacy\.\* is not supported"):
        _describe(_model(tf_keras, tf_keras.optimizers.legacy.Adam()))


def test_optimizer_of_a_module_is_an_error() -> None:
    with pytest.raises(MappingError, match=r"^options\.optimizer_state is set, but model 'm' has "
                       r"no optimizer to restore into"):  # fmt: skip
        optimizer_of(tf.Module(name="m"))


def test_values_are_computed_checked_and_assigned() -> None:
    model = _model(keras, keras.optimizers.SGD(0.1, momentum=0.9))
    opt = _describe(model)
    kernel_m, bias_m = (s.name for s in opt.side.slots)
    it = opt.side.counters["iterations"]
    plan = OptimizerPlan("TF1 Momentum", "keras.optimizers.SGD", slots=[
        SlotMatch(kernel_m, ("acc",), (Transpose(),), -0.1, "", (3, 2), ((2, 3),)),
        SlotMatch(bias_m, (), (), 0.0, "", (2,), ()),
    ])  # fmt: skip
    source = np.arange(6, dtype=np.float32).reshape(2, 3)
    values = slot_values(plan, {"acc": source}.__getitem__)
    values[it] = np.asarray(7, np.int64)
    check_optimizer(opt, values)
    assign_optimizer(opt, values)
    np.testing.assert_allclose(np.asarray(opt.variables[kernel_m]), source.T * -0.1, rtol=1e-6)
    assert int(np.asarray(model.optimizer.iterations)) == 7
    with pytest.raises(MappingError, match=r"expected shape \(3, 2\), received \(2, 3\)"):
        check_optimizer(opt, {kernel_m: source})
