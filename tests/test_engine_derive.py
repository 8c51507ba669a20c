"""derive() at scale: generated 2,000-variable cases give the plans the straightforward passes gave.

The digests were computed with the engine before its hot passes were rewritten for speed (issue 11:
positional ranks, the common-suffix index, the auxiliary pre-filter, structure grouping). A change
that alters a digest changes which entry feeds which variable, or why: if that is intended (a
correctness fix), check the new plan by hand and update the digest in the same commit.
"""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from ckptbridge.engine import MappingPlan, VarSpec, derive

V = VarSpec
_LAYERS = (  # (TF1 leaf, Keras leaf, rank) per layer kind; rank 4: a conv kernel
    [("weights", "kernel", 2), ("biases", "bias", 1)],
    [("gamma", "gamma", 1), ("beta", "beta", 1), ("moving_mean", "moving_mean", 1),
     ("moving_variance", "moving_variance", 1)],
    [("weights", "kernel", 4), ("biases", "bias", 1)],
    [("Variable", "v", 2)],
)  # fmt: skip


def _keys(kind: str, i: int, tf1: str, keras: str) -> tuple[str, str]:
    dense = "dense" if i == 0 else f"dense_{i}"
    if kind == "names":  # an outer scope on each side, TF1 vocabulary: names decide
        return f"net/{dense}/{tf1}", f"model/{dense}/{keras}:0"
    if kind == "positional":  # Keras positions that count layers without weights: ranks decide
        return (f"model/_operations/{2 * i + 1}/{keras}/.ATTRIBUTES/VARIABLE_VALUE",
                f"functional/_operations/{3 * i + i % 3}/{keras}")  # fmt: skip
    return f"net/block{i}/fc/{tf1}", f"sequential/dense_{i}/{keras}"  # names share nothing


def generated(kind: str, n: int = 2000, seed: int = 11) -> tuple[list[VarSpec], list[VarSpec]]:
    """``n`` model variables of mixed layers (dense, batch norm, conv with a layout reshape,
    unnamed), the checkpoint with Adam slots or EMA shadows, a few missing and unused entries."""
    rng = random.Random(seed)
    src: list[VarSpec] = []
    tgt: list[VarSpec] = []
    i = 0
    while len(tgt) < n:
        w = rng.choice([4, 8, 8, 16, 32])
        k = rng.random()
        layer = _LAYERS[0 if k < 0.5 else 1 if k < 0.75 else 2 if k < 0.85 else 3]
        for tf1, keras, rank in layer:
            shape = {1: (w,) if keras != "bias" else (8,), 2: (w, 8), 4: (1, 1, w, 8)}[rank]
            if tf1 == "Variable":
                tf1, shape = (f"Variable_{i}" if i else "Variable"), (w, 3)
            tshape = (w, 8) if rank == 4 and rng.random() < 0.5 else shape
            skey, tkey = _keys(kind, i, tf1, keras)
            if kind != "names" or rng.random() > 0.03:  # else: a variable the checkpoint lacks
                src.append(V(skey, shape))
                slots = ("Adam", "Adam_1") if rng.random() < 0.8 else ("ExponentialMovingAverage",)
                for slot in slots:
                    base = skey.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE")
                    src.append(V(f"{base}/.OPTIMIZER_SLOT/optimizer/{slot}/.ATTRIBUTES/VARIABLE_VALUE"
                                 if base != skey else f"{skey}/{slot}", shape))  # fmt: skip
            tgt.append(V(tkey, tshape, order=len(tgt)))
        if rng.random() < 0.02:
            src.append(V(f"unused/extra_{i}/w", (w, w + 1)))
        i += 1
    src += [V("beta1_power", ()), V("beta2_power", ()), V("global_step", (), "int64"),
            V("Adam/iter", (), "int64"), V("training/Adam/dense/kernel/m", (3, 3))]  # fmt: skip
    tgt += [V("adam/iteration", (), "int64"), V("adam/learning_rate", ())]
    return src, tgt


def digest(plan: MappingPlan) -> str:
    return hashlib.sha256(json.dumps(plan.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("kind", "expected", "counts"),
    [
        ("names", "e549dfc8f026b7d0", (1831, 169, 119, 3472)),
        ("structure", "8adfc3dffdc107bd", (2002, 0, 20, 3623)),
        ("positional", "b495e0478d6e1ff2", (2002, 0, 20, 3623)),
    ],
)
def test_generated_plans_are_unchanged(kind: str, expected: str, counts: tuple[int, ...]) -> None:
    plan = derive(*generated(kind))
    got = (len(plan.matches), len(plan.missing), len(plan.unused), len(plan.auxiliary))
    assert (digest(plan), got) == (expected, counts)
