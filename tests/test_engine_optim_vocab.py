"""The TF1 optimizer vocabulary (pure): slot keys, roles, counters, and the names TF1 expects."""

from __future__ import annotations

import pytest

from ckptbridge._errors import MappingError
from ckptbridge.engine import Auxiliary, VarSpec
from ckptbridge.engine.optim import slot_role, tf1_side, tf1_slot_name, tf1_target_side


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("dense/kernel/Adam", ("dense/kernel", "adam", "m")),
        ("dense/kernel/Adam_1", ("dense/kernel", "adam", "v")),
        ("fc1/weights/Momentum", ("fc1/weights", "momentum", "momentum")),
        ("w/RMSProp", ("w", "rmsprop", "velocity")),
        ("w/RMSProp_1", ("w", "rmsprop", "momentum")),
        (
            "dnn/hiddenlayer_0/kernel/t_0/Adagrad",
            ("dnn/hiddenlayer_0/kernel", "adagrad", "accumulator"),
        ),
        ("dense/kernel", None),
        ("dense/kernel/Adam_2", None),
        ("beta1_power", None),
    ],
)
def test_slot_role(key: str, expected: tuple[str, str, str] | None) -> None:
    assert slot_role(key) == expected


def test_centered_rmsprop_has_three_slots() -> None:
    assert slot_role("w/RMSProp_1", centered=True) == ("w", "rmsprop", "average_gradient")
    assert slot_role("w/RMSProp_2", centered=True) == ("w", "rmsprop", "momentum")
    assert tf1_slot_name("w", "rmsprop", "momentum", centered=True) == "w/RMSProp_2"


def _aux(*names: str) -> list[Auxiliary]:
    out = []
    for n in names:
        if "power" in n:
            out.append(Auxiliary(n, "optimizer_power"))
        elif n.startswith("global_step"):
            out.append(Auxiliary(n, "global_step"))
        else:
            out.append(Auxiliary(n, "optimizer_slot", n.rsplit("/", 1)[0]))
    return out


def test_tf1_side_of_adam() -> None:
    aux = _aux("w/Adam", "w/Adam_1", "beta1_power", "beta2_power", "global_step")
    side = tf1_side(
        aux, {"w/Adam": VarSpec("w/Adam", (3, 2)), "w/Adam_1": VarSpec("w/Adam_1", (3, 2))}
    )
    assert side is not None
    assert (side.family, side.convention, side.kind) == ("adam", "tf1", "TF1 Adam")
    assert [(s.name, s.weight, s.role, s.shape) for s in side.slots] == [
        ("w/Adam", "w", "m", (3, 2)),
        ("w/Adam_1", "w", "v", (3, 2)),
    ]
    assert side.counters == {
        "beta1_power": "beta1_power", "beta2_power": "beta2_power", "global_step": "global_step"
    }  # fmt: skip


def test_tf1_side_detects_centered_rmsprop() -> None:
    side = tf1_side(_aux("w/RMSProp", "w/RMSProp_1", "w/RMSProp_2"), {})
    assert side is not None and side.hyper.centered and side.kind == "TF1 RMSProp (centered)"
    assert [s.role for s in side.slots] == ["velocity", "average_gradient", "momentum"]


def test_tf1_side_without_slots() -> None:
    assert tf1_side([], {}) is None
    side = tf1_side(_aux("global_step"), {})
    assert side is not None and side.family == "sgd" and side.kind == "TF1 GradientDescent"


def test_tf1_side_with_two_optimizers_is_an_error() -> None:
    with pytest.raises(MappingError, match=r"^ckpt holds the slots of several TF1 optimizers "
                       r"\(Adam, Momentum\); .*ignore: \['\.\*/Momentum'\]"):  # fmt: skip
        tf1_side(_aux("w/Adam", "w/Momentum"), {}, label="ckpt")
    with pytest.raises(MappingError, match=r"'w/Adam_2' looks like a slot of a second Adam"):
        tf1_side([Auxiliary("w/Adam_2", "optimizer_slot", "w")], {}, label="ckpt")


def test_tf1_target_side_default_names() -> None:
    side = tf1_target_side([VarSpec("a", (2,)), VarSpec("b", (3, 2))], "momentum")
    assert [(s.name, s.weight, s.role, s.shape) for s in side.slots] == [
        ("a/Momentum", "a", "momentum", (2,)),
        ("b/Momentum", "b", "momentum", (3, 2)),
    ]
    assert side.counters == {"global_step": "global_step"}


def test_tf1_target_side_takes_names_from_the_template() -> None:
    existing = _aux("scope/a/Adam", "scope/a/Adam_1", "scope/beta1_power", "scope/beta2_power")
    existing = [Auxiliary(a.name, a.kind, "a" if a.of else None) for a in existing]
    side = tf1_target_side([VarSpec("a", (2,))], "adam", existing=existing)
    assert [s.name for s in side.slots] == ["scope/a/Adam", "scope/a/Adam_1"]
    assert side.counters == {
        "beta1_power": "scope/beta1_power", "beta2_power": "scope/beta2_power",
        "global_step": "global_step",
    }  # fmt: skip
