"""Mapping optimizer state along the weight mapping (pure): slots follow weights, counters."""

from __future__ import annotations

import pytest

from ckptbridge._errors import MappingError
from ckptbridge.engine import Match
from ckptbridge.engine.optim import (
    Hyper,
    OptimizerSide,
    SlotRef,
    check_compatible,
    map_counters,
    map_slots,
    steps_done,
)
from ckptbridge.rules import Add, Concat, PermuteBlocks, Transpose

ADAM_TF1 = OptimizerSide(
    "adam",
    "tf1",
    (
        SlotRef("w/Adam", "w", "m", (2, 3)),
        SlotRef("w/Adam_1", "w", "v", (2, 3)),
        SlotRef("b/Adam", "b", "m", (3,)),
        SlotRef("b/Adam_1", "b", "v", (3,)),
        SlotRef("old/Adam", "old", "m", (1,)),
        SlotRef("old/Adam_1", "old", "v", (1,)),
    ),
    {"beta1_power": "beta1_power", "beta2_power": "beta2_power", "global_step": "global_step"},
    kind="TF1 Adam",
)
ADAM_KERAS = OptimizerSide(
    "adam",
    "keras",
    (
        SlotRef("adam/k_m", "d/kernel", "m", (3, 2)),
        SlotRef("adam/k_v", "d/kernel", "v", (3, 2)),
        SlotRef("adam/b_m", "d/bias", "m", (3,)),
        SlotRef("adam/b_v", "d/bias", "v", (3,)),
    ),
    {"iterations": "adam/iteration"},
    Hyper(learning_rate=0.01, beta_1=0.9, beta_2=0.999),
    "keras.optimizers.Adam",
)
WEIGHTS = [
    Match("d/kernel", ("w",), (Transpose(perm=(1, 0)),), "rule map[w]", (3, 2), ((2, 3),)),
    Match("d/bias", ("b",), (Add(value=1.0),), "forget bias", (3,), ((3,),)),
]


def test_slots_follow_their_weights_steps_except_add() -> None:
    plan = map_slots(WEIGHTS, ADAM_TF1, ADAM_KERAS)
    rows = [(m.target, m.sources, m.steps, m.scale) for m in plan.slots]
    assert rows == [
        ("adam/k_m", ("w/Adam",), (Transpose(perm=(1, 0)),), 1.0),
        ("adam/k_v", ("w/Adam_1",), (Transpose(perm=(1, 0)),), 1.0),
        ("adam/b_m", ("b/Adam",), (), 1.0),
        ("adam/b_v", ("b/Adam_1",), (), 1.0),
    ]
    assert plan.slots[0].reason == "m slot of 'd/kernel' follows its weight (rule map[w])"
    assert plan.slots[2].reason == (
        "m slot of 'd/bias' follows its weight (forget bias) (the weight's add step is not "
        "applied to its slot)"
    )
    assert plan.unused == ["old/Adam", "old/Adam_1"]
    assert plan.complete


def test_several_sources_concatenate_their_slots() -> None:
    weights = [Match("k", ("a", "b"), (Concat(axis=0), PermuteBlocks(parts=2, order=(1, 0))))]
    src = OptimizerSide("adagrad", "tf1", (SlotRef("a/Adagrad", "a", "accumulator"),
                                           SlotRef("b/Adagrad", "b", "accumulator")))  # fmt: skip
    dst = OptimizerSide("adagrad", "keras", (SlotRef("adagrad/k_acc", "k", "accumulator"),))
    (m,) = map_slots(weights, src, dst).slots
    assert (m.sources, m.steps) == (("a/Adagrad", "b/Adagrad"), weights[0].steps)


def test_missing_weight_and_missing_slot() -> None:
    plan = map_slots(WEIGHTS[:1], ADAM_TF1, ADAM_KERAS)
    assert [(u.target, u.why) for u in plan.missing] == [
        ("adam/b_m", "its weight 'd/bias' is not restored from this checkpoint"),
        ("adam/b_v", "its weight 'd/bias' is not restored from this checkpoint"),
    ]
    src = OptimizerSide("adam", "tf1", ADAM_TF1.slots[:1], kind="TF1 Adam")
    plan = map_slots(WEIGHTS[:1], src, ADAM_KERAS)
    assert plan.missing[0].why.startswith("no TF1 Adam 'v' slot for 'w' (was it trainable")


def test_momentum_scale_both_ways() -> None:
    tf1 = OptimizerSide("momentum", "tf1", (SlotRef("w/Momentum", "w", "momentum"),))
    keras_side = OptimizerSide("momentum", "keras", (SlotRef("sgd/m", "d", "momentum"),),
                               hyper=Hyper(learning_rate=0.1))  # fmt: skip
    (fwd,) = map_slots([Match("d", ("w",))], tf1, keras_side).slots
    assert fwd.scale == pytest.approx(-0.1)
    assert fwd.reason.endswith("x (-learning_rate=-0.1): Keras SGD keeps -lr * TF1's accumulator")
    back_target = OptimizerSide("momentum", "tf1", (SlotRef("w/Momentum", "w", "momentum"),))
    (back,) = map_slots([Match("w", ("d",))], keras_side, back_target).slots
    assert back.scale == pytest.approx(-10.0)


def test_momentum_with_a_schedule_is_an_error() -> None:
    tf1 = OptimizerSide(
        "momentum", "tf1", (SlotRef("w/Momentum", "w", "momentum"),), kind="TF1 Momentum"
    )
    keras_side = OptimizerSide("momentum", "keras", (SlotRef("sgd/m", "d", "momentum"),),
                               hyper=Hyper(learning_rate=0.1, lr_is_schedule=True),
                               kind="keras.optimizers.SGD")  # fmt: skip
    with pytest.raises(MappingError, match=r"^cannot convert TF1 Momentum momentum slots for "
                       r"keras\.optimizers\.SGD: .*a schedule"):  # fmt: skip
        map_slots([Match("d", ("w",))], tf1, keras_side)


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        (OptimizerSide("adam", "tf1", kind="TF1 Adam"), OptimizerSide("momentum", "keras", kind="SGD"),
         r"^cannot restore TF1 Adam optimizer state into SGD: .*optimizer=keras\.optimizers\.Adam"),
        (OptimizerSide("adam", "tf1", kind="A"), OptimizerSide("adam", "keras", hyper=Hyper(amsgrad=True), kind="B"),
         r"^cannot map A state to B: amsgrad keeps a 'vhat' slot"),
        (OptimizerSide("rmsprop", "tf1", hyper=Hyper(centered=True), kind="A"),
         OptimizerSide("rmsprop", "keras", kind="B"), r"RMSprop\(centered=True\)"),
    ],
)  # fmt: skip
def test_incompatible_optimizers(
    source: OptimizerSide, target: OptimizerSide, message: str
) -> None:
    with pytest.raises(MappingError, match=message):
        check_compatible(source, target)


def test_plain_gradient_descent_fits_keras_sgd_with_momentum_slots_missing() -> None:
    check_compatible(OptimizerSide("sgd", "tf1"), OptimizerSide("momentum", "keras"))


def test_rmsprop_target_without_momentum_leaves_tf1_momentum_unused() -> None:
    src = OptimizerSide("rmsprop", "tf1", (SlotRef("w/RMSProp", "w", "velocity"),
                                           SlotRef("w/RMSProp_1", "w", "momentum")))  # fmt: skip
    dst = OptimizerSide("rmsprop", "keras", (SlotRef("rms/v", "d", "velocity"),))
    plan = map_slots([Match("d", ("w",))], src, dst)
    assert plan.unused == ["w/RMSProp_1"]
    assert "RMSProp momentum slots are not read: the target uses momentum=0" in plan.notes


def test_steps_from_beta_powers() -> None:
    values = {"beta1_power": 0.9**11, "beta2_power": 0.999**11, "global_step": 10.0}
    assert steps_done(ADAM_TF1, values, 0.9, 0.999) == (
        10, ("beta1_power", "beta2_power", "global_step"), "log(beta1_power)/log(0.9) - 1 = 10"
    )  # fmt: skip


def test_steps_when_global_step_disagrees() -> None:
    values = {"beta1_power": 0.9**11, "beta2_power": 0.999**11, "global_step": 500.0}
    steps, read, how = steps_done(ADAM_TF1, values, 0.9, 0.999)
    assert (steps, read) == (10, ("beta1_power", "beta2_power"))
    assert how.endswith("(Adam's own counter; global_step = 500 differs and is not used)")


def test_steps_when_beta1_power_underflowed() -> None:
    values = {"beta1_power": 0.0, "beta2_power": 0.999**2001, "global_step": 2000.0}
    assert steps_done(ADAM_TF1, values, 0.9, 0.999)[:2] == (2000, ("beta2_power", "global_step"))
    values = {"beta1_power": 0.0, "beta2_power": 0.0, "global_step": 200000.0}
    assert steps_done(ADAM_TF1, values, 0.9, 0.999) == (
        200000, ("global_step",), "global_step = 200000 (beta powers underflowed or absent)"
    )  # fmt: skip


def test_counters_both_ways() -> None:
    values = {"beta1_power": 0.9**4, "beta2_power": 0.999**4, "global_step": 3.0}
    (it,) = map_counters(ADAM_TF1, ADAM_KERAS, values)
    assert (it.target, it.value, it.dtype) == ("adam/iteration", 3.0, "int64")
    target = OptimizerSide("adam", "tf1", counters={"beta1_power": "b1", "beta2_power": "b2",
                                                    "global_step": "gs"})  # fmt: skip
    out = {c.target: c.value for c in map_counters(ADAM_KERAS, target, {"adam/iteration": 3})}
    assert out == {"b1": pytest.approx(0.9**4), "b2": pytest.approx(0.999**4), "gs": 3.0}
    assert map_counters(OptimizerSide("sgd", "tf1"), ADAM_KERAS, {}) == []
