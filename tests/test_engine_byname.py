"""engine._byname: plans by names do not depend on PYTHONHASHSEED (no set decides a key or a pair)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ckptbridge.engine import VarSpec, derive

V = VarSpec
# A TF2 entry tracked as ``step`` whose variable is TF1's unnamed ``Variable``: each side holds both
# keys, so the pair is found under two keys. Which one names it (``step->Variable`` or
# ``Variable->step``), and whether a misfit under a real name fails the target or leaves it to later
# passes, used to follow the iteration order of a set of strings.
_SCRIPT = """
import sys
from ckptbridge.engine import VarSpec as V, derive
fit = [V("step", (), "int64", aliases=("Variable",)), V("net/dense/weights", (4, 2)),
       V("net/dense/biases", (2,)), V("global_step", (), "int64")]
fit_t = [V("Variable:0", (), "int64", aliases=("step",)), V("model/dense/kernel:0", (4, 2)),
         V("model/dense/bias:0", (2,)), V("global_step:0", (), "int64")]
misfit = [V("step", (3,), aliases=("Variable",)), V("other", (2,))]
misfit_t = [V("Variable:0", (2,), aliases=("step",))]
print("[" + derive(fit, fit_t).to_json() + "," + derive(misfit, misfit_t).to_json() + "]")
"""


def _plans(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip
    return done.stdout


def test_plans_are_the_same_whatever_the_hash_seed() -> None:
    first = _plans("0")
    assert _plans("1") == first
    assert _plans("5") == first
    fit, misfit = json.loads(first)
    reasons = {m["target"]: m["reason"] for m in fit["matches"]}
    assert reasons["Variable:0"] == "vocabulary: step->Variable"  # keyed by the target's own name
    # 'step' names the entry on both sides: its misfit is reported, no other entry is guessed in
    assert misfit["matches"] == []
    assert [m["target"] for m in misfit["missing"]] == ["Variable:0"]
    assert misfit["missing"][0]["why"].startswith("the checkpoint's layer 'step' has 3 units")


def test_a_misfit_under_unnamed_keys_only_is_left_to_later_passes() -> None:
    plan = derive([V("Variable", (3,)), V("other", (2,))], [V("Variable:0", (2,))])
    assert [(m.target, m.sources) for m in plan.matches] == [("Variable:0", ("other",))]
