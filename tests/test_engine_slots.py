"""Optimizer slots follow their weight, whatever decided the weight (pure, literal specs)."""

from __future__ import annotations

from ckptbridge.engine import VarSpec, derive
from ckptbridge.engine._plan import Auxiliary
from ckptbridge.rules import Rules

OPT = Rules.model_validate({"options": {"optimizer_state": True}})


def _k3(name: str, shape: tuple[int, ...], of: str, slot: str) -> VarSpec:
    return VarSpec(name, shape, auxiliary=Auxiliary(name, "optimizer_slot", of, slot))


def test_tf1_slots_follow_a_suffix_matched_weight() -> None:
    src = [VarSpec("net/fc/weights", (3, 2)), VarSpec("net/fc/weights/Adam", (3, 2)),
           VarSpec("net/fc/weights/Adam_1", (3, 2))]  # fmt: skip
    tgt = [VarSpec("model/net/fc/weights", (3, 2)), VarSpec("model/net/fc/weights/Adam", (3, 2)),
           VarSpec("model/net/fc/weights/Adam_1", (3, 2))]  # fmt: skip
    plan = derive(src, tgt, OPT)
    assert plan.complete and not plan.auxiliary and not plan.target_auxiliary
    assert [(m.target, m.source) for m in plan.matches][1:] == [
        ("model/net/fc/weights/Adam", "net/fc/weights/Adam"),
        ("model/net/fc/weights/Adam_1", "net/fc/weights/Adam_1"),
    ]
    assert plan.matches[1].reason == (
        "optimizer slot 'Adam' follows its weight 'model/net/fc/weights' "
        "(common path suffix 'net/fc/kernel')"
    )


def test_slots_never_contradict_their_weight() -> None:
    # The rules pair a with b's weight: a's slot follows a, although b's slot has b's name.
    src = [VarSpec("a", (2,)), VarSpec("b", (2,)), VarSpec("a/Adam", (2,)), VarSpec("b/Adam", (2,))]
    tgt = [VarSpec("b", (2,)), VarSpec("b/Adam", (2,))]
    rules = Rules.model_validate({"map": {"a": "b"}, "ignore": ["b"],
                                  "options": {"optimizer_state": True}})  # fmt: skip
    plan = derive(src, tgt, rules)
    assert [(m.target, m.sources) for m in plan.matches] == [("b", ("a",)), ("b/Adam", ("a/Adam",))]


def test_keras3_slots_follow_through_the_object_graph_facts() -> None:
    w_src, w_tgt = "model/_functional/_operations/1/_kernel", "sequential/dense/kernel"
    src = [VarSpec(w_src, (3, 4)), _k3("opt/_variables/2", (3, 4), w_src, "_momentums"),
           _k3("opt/_variables/3", (3, 4), w_src, "_velocities")]  # fmt: skip
    tgt = [VarSpec(w_tgt, (3, 4)), _k3("optimizer/_variables/1", (3, 4), w_tgt, "_velocities"),
           _k3("optimizer/_variables/2", (3, 4), w_tgt, "_momentums")]  # fmt: skip
    plan = derive(src, tgt, OPT)
    assert plan.complete
    assert {(m.target, m.source) for m in plan.matches[1:]} == {
        ("optimizer/_variables/1", "opt/_variables/3"),
        ("optimizer/_variables/2", "opt/_variables/2"),
    }
    without = derive(src, tgt)
    assert len(without.matches) == 1 and len(without.auxiliary) == 2


def test_a_slot_whose_weight_is_not_restored_stays_unmatched() -> None:
    src = [VarSpec("x/kernel/Adam", (2,))]
    tgt = [VarSpec("y/kernel", (5,)), VarSpec("y/kernel/Adam", (2,))]
    plan = derive(src, tgt, OPT)
    assert [a.name for a in plan.target_auxiliary] == ["y/kernel/Adam"]
    assert [a.name for a in plan.auxiliary] == ["x/kernel/Adam"]
