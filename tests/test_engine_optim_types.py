"""The optimizer plan types (pure)."""

from __future__ import annotations

from ckptbridge.engine import Match
from ckptbridge.engine.optim import CounterValue, OptimizerPlan, SlotMatch


def test_plan_rows_for_the_report() -> None:
    plan = OptimizerPlan("a", "b", slots=[SlotMatch("s", ("x",), reason="r", target_shape=(2,))])
    plan.counters = [CounterValue("it", 3.0, ("gs",), "steps done: gs = 3")]
    assert plan.as_matches() == [
        Match("s", ("x",), (), "r", (2,), (), "float32"),
        Match("it", ("gs",), (), "steps done: gs = 3", (), ((),), "int64"),
    ]
    assert plan.used_sources == {"x", "gs"}
    assert plan.complete
