"""MappingPlan (engine/_plan.py, _table.py) and format_not_found (engine/_diagnose.py)."""

from __future__ import annotations

import json
import re

import pytest

from ckptbridge.engine import MappingPlan, VarSpec, derive, format_not_found
from ckptbridge.rules import Concat, KeyTransform, Options, Rules

V = VarSpec


@pytest.fixture(scope="module")
def mixed_plan() -> MappingPlan:
    src = [V("Variable", (784, 256)), V("Variable_1", (256, 10)), V("Variable_2", (256,)),
           V("Variable_3", (10,)), V("weight", (1,)), V("Variable/Adam", (784, 256)),
           V("global_step", (), "int64"), V("x1", (3, 2)), V("x2", (4, 2)), V("junk", (5,)),
           V("ema/w", (7,)), V("ema/w/ExponentialMovingAverage", (7,))]  # fmt: skip
    tgt = [V("dense/kernel", (784, 256), order=0), V("dense/bias", (256,), order=1),
           V("dense_1/kernel", (256, 10), order=2), V("dense_1/bias", (10,), order=3),
           V("lin/kernel", (1, 1), order=4), V("cat", (7, 2), order=5), V("ema/w", (7,), order=6),
           V("nothing/here", (99,), order=7)]  # fmt: skip
    rules = Rules(map={"weight": "lin/kernel"}, ignore=("junk",), options=Options(use_ema=True),
                  transforms=(KeyTransform(target="cat", sources=("x1", "x2"), steps=(Concat(),)),))  # fmt: skip
    return derive(src, tgt, rules, source_label="old/model.ckpt-1000")


def test_plan_contents(mixed_plan: MappingPlan) -> None:
    assert not mixed_plan.complete
    assert [u.target for u in mixed_plan.missing] == ["nothing/here"]
    assert mixed_plan.unused == ["ema/w"]  # the raw weight, replaced by its EMA shadow
    assert [a.kind for a in mixed_plan.auxiliary] == ["optimizer_slot", "global_step"]
    assert mixed_plan.ignored == ["junk"]


def test_json_round_trip(mixed_plan: MappingPlan) -> None:
    text = mixed_plan.to_json()
    data = json.loads(text)
    assert data["complete"] is False
    assert data["matches"][4] == {
        "target": "lin/kernel", "sources": ["weight"], "steps": [{"op": "reshape", "shape": [1, 1]}],
        "reason": "rule map[weight]", "target_shape": [1, 1], "source_shapes": [[1]],
        "target_dtype": "float32",
    }  # fmt: skip
    assert MappingPlan.from_json(text) == mixed_plan
    assert MappingPlan.from_dict(mixed_plan.to_dict()).to_json() == text


def test_compact_json_is_json_dumps_of_to_dict(mixed_plan: MappingPlan) -> None:
    """``to_json(indent=None)`` (what ``plan --json`` prints) writes matches and auxiliary entries
    by hand for speed: it must stay ``json.dumps(to_dict())`` whatever a plan holds."""
    src = [V('é/w"q', (True, 2)), V('é/w"q/Adam', (1, 2)), V("s1", (2,)), V("s2", (2,))]
    tgt = [V("ü/kernel", (1, 2), order=0), V("c", (4,), order=1), V("gone", (3,), order=2)]
    rules = Rules(
        transforms=(KeyTransform(target="c", sources=("s1", "s2"), steps=(Concat(),)),),
        options=Options(optimizer_state=True),
    )
    odd = derive(src, tgt, rules, source_label="ø", target_label='a "label"')
    for plan in (mixed_plan, odd):
        assert plan.to_json(indent=None) == json.dumps(plan.to_dict())
    assert odd.matches and odd.missing and odd.auxiliary  # every section written by hand is there


def _key(plan: MappingPlan) -> list[tuple[str, tuple[str, ...], tuple[object, ...]]]:
    return [(m.target, m.sources, m.steps) for m in plan.matches]


def test_to_rules_reproduces_the_plan(mixed_plan: MappingPlan) -> None:
    rules = mixed_plan.to_rules()
    assert rules.options.derive is False
    src = [V(n, s) for n, s in [("Variable", (784, 256)), ("Variable_1", (256, 10)), ("Variable_2", (256,)),
           ("Variable_3", (10,)), ("weight", (1,)), ("Variable/Adam", (784, 256)), ("x1", (3, 2)),
           ("x2", (4, 2)), ("junk", (5,)), ("ema/w", (7,)), ("ema/w/ExponentialMovingAverage", (7,))]]  # fmt: skip
    src.append(V("global_step", (), "int64"))
    tgt = [V("dense/kernel", (784, 256)), V("dense/bias", (256,)), V("dense_1/kernel", (256, 10)),
           V("dense_1/bias", (10,)), V("lin/kernel", (1, 1)), V("cat", (7, 2)), V("ema/w", (7,)),
           V("nothing/here", (99,))]  # fmt: skip
    again = derive(src, tgt, rules, source_label="old/model.ckpt-1000")
    assert _key(again) == _key(mixed_plan)
    assert again.ignored == mixed_plan.ignored
    # and the rules survive a trip through JSON, as a rules file would
    assert Rules.model_validate_json(rules.model_dump_json()) == rules


def test_str_is_a_table(mixed_plan: MappingPlan) -> None:
    text = str(mixed_plan)
    lines = text.splitlines()
    assert lines[0] == ("MappingPlan 'old/model.ckpt-1000' -> 'model': 7 of 8 model variables "
                        "matched, 1 missing")  # fmt: skip
    assert re.fullmatch(r"target\s+shape\s+source\s+reason", lines[1])
    assert re.search(
        r"^lin/kernel\s+\(1, 1\)\s+weight\s+rule map\[weight\] \[reshape\]$", text, re.M
    )
    assert re.search(r"^cat\s+\(7, 2\)\s+x1 \+ x2\s+rule transforms\[0\] \[concat\]$", text, re.M)
    assert "Missing (1):\n  nothing/here (99,): " in text
    assert "Unused (1), by scope: ema/ (1)" in text
    assert "Auxiliary (2): 1 global_step, 1 optimizer_slot" in text


def test_not_found_message_names_variable_closest_key_and_fix() -> None:
    src = [V("fc1/weights", (128, 64)), V("fc1/biases", (64,)), V("fc2/weights", (64, 10)),
           V("fc2/biases", (10,)), V("fc2/weights/Adam", (64, 10))]  # fmt: skip
    tgt = [V("dense_1/kernel", (128, 64)), V("dense_1/bias", (64,)), V("dense_2/kernel", (64, 10)),
           V("dense_2/bias", (10,)), V("dense_3/kernel", (64, 10))]  # fmt: skip
    rules = Rules(map={"fc1/weights": "dense_1/kernel", "fc1/biases": "dense_1/bias",
                       "fc2/biases": "dense_2/bias"}, options=Options(derive=False))  # fmt: skip
    plan = derive(src, tgt, rules, source_label="old/model.ckpt-1000")
    msg = format_not_found(plan)
    assert re.search(
        r"^2 model variable\(s\) have no match in 'old/model.ckpt-1000' \(3 matched\)\.$", msg, re.M
    )
    assert re.search(r"^model variable 'dense_2/kernel' \(64, 10\) has no match in "
                     r"'old/model.ckpt-1000'\. Closest: 'fc2/weights' \(64, 10\)\.$", msg, re.M)  # fmt: skip
    assert re.search(
        r"^Unused entries in 'old/model.ckpt-1000' \(1\), by scope:\n  fc2/ \(1 entry\)$", msg, re.M
    )
    assert re.search(
        r"^Fix \(check each pair\), add to the rules:\nmap:\n  fc2/weights: dense_2/kernel$",
        msg,
        re.M,
    )
    assert "optimizer_slot" in msg
    assert not re.search(r"\d\.\d{3}", msg)  # no tensor values, no scores


def test_not_found_message_is_summarised_for_large_models() -> None:
    src = [V(f"old/layer{i}/w", (i + 1, 3)) for i in range(1000)]
    tgt = [V(f"new/dense_{i}/kernel", (i + 1, 4)) for i in range(1000)]
    msg = format_not_found(derive(src, tgt))
    lines = msg.splitlines()
    assert len(msg) < 1500 and len(lines) < 20, msg
    assert (
        "... and 997 more unmatched model variable(s) in 997 more layer(s) "
        "(ckptbridge.plan(checkpoint, model) lists them all)."
    ) in lines
    assert "  ... and 995 more scopes" in lines


def test_empty_plan_table() -> None:
    assert (
        str(MappingPlan()) == "MappingPlan 'checkpoint' -> 'model': 0 of 0 model variables matched"
    )


def _vgg_like() -> tuple[list[VarSpec], list[VarSpec]]:
    src = [V("vgg_16/conv1/conv1_1/weights", (3, 3, 3, 8)), V("vgg_16/conv1/conv1_1/biases", (8,)),
           V("vgg_16/fc6/weights", (7, 7, 8, 16)), V("vgg_16/fc6/biases", (16,)),
           V("vgg_16/fc6/weights/Momentum", (7, 7, 8, 16))]  # fmt: skip
    tgt = [V("block1_conv1/kernel", (3, 3, 3, 8), order=0), V("block1_conv1/bias", (8,), order=1),
           V("fc1/kernel", (392, 16), order=2), V("fc1/bias", (16,), order=3)]  # fmt: skip
    return src, tgt


def _unnamed() -> tuple[list[VarSpec], list[VarSpec]]:
    src = [V("Variable", (784, 256)), V("Variable_1", (256, 10)), V("Variable_2", (256,)),
           V("Variable_3", (10,))]  # fmt: skip
    tgt = [V("dense/kernel:0", (784, 256)), V("dense/bias:0", (256,)), V("dense_1/kernel:0", (256, 10)),
           V("dense_1/bias:0", (10,))]  # fmt: skip
    return src, tgt


def _rnn() -> tuple[list[VarSpec], list[VarSpec]]:
    src = [V("rnn/basic_lstm_cell/weights", (160, 320)), V("rnn/basic_lstm_cell/biases", (320,))]
    tgt = [V("lstm/lstm_cell/kernel", (80, 320), order=0),
           V("lstm/lstm_cell/recurrent_kernel", (80, 320), order=1),
           V("lstm/lstm_cell/bias", (320,), order=2)]  # fmt: skip
    return src, tgt


@pytest.mark.parametrize("case", [_vgg_like, _unnamed, _rnn])
def test_to_rules_round_trip_of_derived_plans(case: object) -> None:
    src, tgt = case()  # type: ignore[operator]
    plan = derive(src, tgt)
    assert plan.complete
    again = derive(src, tgt, plan.to_rules())
    assert _key(again) == _key(plan)
    assert MappingPlan.from_json(plan.to_json()) == plan


def test_layer_converter_hook_is_used_when_present() -> None:
    src, tgt = _rnn()
    plan = derive(src, tgt)
    assert all(m.reason.startswith("converter lstm") for m in plan.matches)
    assert plan.match_for("lstm/lstm_cell/recurrent_kernel").source == "rnn/basic_lstm_cell/weights"  # type: ignore[union-attr]
