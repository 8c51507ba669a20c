"""ckptbridge.restoring._restore.RestoreReport: the table, the JSON, assert_consumed (no TensorFlow)."""

from __future__ import annotations

import json

import pytest

from ckptbridge._errors import MappingError
from ckptbridge.engine._plan import Auxiliary, Candidate, MappingPlan, Match, Unmatched
from ckptbridge.restoring._restore import RestoreReport, describe_steps
from ckptbridge.rules import Reshape


def _plan(unused: list[str] | None = None) -> MappingPlan:
    return MappingPlan(
        matches=[
            Match(
                target="sequential/dense/kernel",
                sources=("weight",),
                steps=(Reshape(shape=(1, 1)),),
                reason="creation order + shape",
                target_shape=(1, 1),
                source_shapes=((1,),),
            ),
            Match(
                target="sequential/dense/bias",
                sources=("bias",),
                reason="vocabulary: biases->bias",
                target_shape=(1,),
                source_shapes=((1,),),
            ),
        ],
        missing=[
            Unmatched(
                target="sequential/dense_1/kernel",
                shape=(4, 2),
                why="no entry of shape (4, 2)",
                candidates=(Candidate(name="fc2/weights", shape=(4, 3), score=0.5),),
            )
        ],
        unused=unused or [],
        auxiliary=[
            Auxiliary(name="weight/Adam", kind="optimizer_slot", of="weight"),
            Auxiliary(name="global_step", kind="global_step"),
        ],
    )


def _report(unused: list[str] | None = None) -> RestoreReport:
    return RestoreReport.from_plan(_plan(unused), checkpoint="/c/model.ckpt", model="model 'seq'")


def test_describe_steps() -> None:
    assert describe_steps(_plan().matches[0]) == "reshape(shape=(1, 1))"
    assert describe_steps(_plan().matches[1]) == ""


def test_str_is_a_readable_table() -> None:
    assert str(_report(["fc3/weights"])).splitlines() == [
        "Restored 2 of 3 variables of model 'seq' from '/c/model.ckpt'",
        "  variable                 <- checkpoint entry  shape   reason",
        "  sequential/dense/kernel  <- weight            (1, 1)  creation order + shape"
        " [reshape(shape=(1, 1))]",
        "  sequential/dense/bias    <- bias              (1,)    vocabulary: biases->bias",
        "Missing (1):",
        "  sequential/dense_1/kernel (4, 2): no entry of shape (4, 2)",
        "Auxiliary, not restored (2): 1 global_step, 1 optimizer_slot",
        "Unused (1):",
        "  fc3/weights",
    ]


def test_to_json_round_trips_without_values() -> None:
    data = json.loads(_report().to_json())
    assert data["complete"] is False
    assert data["matched"][0] == {
        "target": "sequential/dense/kernel",
        "sources": ["weight"],
        "reason": "creation order + shape",
        "transform": [{"op": "reshape", "shape": [1, 1]}],
        "shape": [1, 1],
    }
    assert data["missing"][0]["candidates"] == [{"name": "fc2/weights", "shape": [4, 3]}]
    assert data["auxiliary"][1] == {"name": "global_step", "kind": "global_step", "of": None}
    assert data["unused"] == []


def test_assert_consumed() -> None:
    _report().assert_consumed()  # auxiliary entries do not count
    with pytest.raises(
        MappingError,
        match=r"^1 entry of '/c/model\.ckpt' restored nothing into model 'seq': 'fc3/weights'\. ",
    ):
        _report(["fc3/weights"]).assert_consumed()
