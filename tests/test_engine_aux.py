"""Auxiliary classification (engine/_aux.py), and every corpus checkpoint planned against itself."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptbridge.engine import VarSpec, classify_auxiliary, derive
from ckptbridge.engine._aux import auxiliaries

# (key, kind, of) -- keys taken from ../shared/corpus/*/VARIABLES.txt and TF2 / Keras 3 layouts.
CASES = [
    ("dense/kernel/Adam", "optimizer_slot", "dense/kernel"),
    ("dense/kernel/Adam_1", "optimizer_slot", "dense/kernel"),
    ("dense/bias/RMSProp", "optimizer_slot", "dense/bias"),
    ("dense/bias/RMSProp_1", "optimizer_slot", "dense/bias"),
    ("w/Momentum", "optimizer_slot", "w"),
    ("dnn/hiddenlayer_0/weights/t_0/Adagrad", "optimizer_slot", "dnn/hiddenlayer_0/weights"),
    ("w/Adagrad", "optimizer_slot", "w"),
    ("w/Ftrl", "optimizer_slot", "w"),
    ("w/Ftrl_1", "optimizer_slot", "w"),
    ("w/Adadelta", "optimizer_slot", "w"),
    ("w/Adadelta_1", "optimizer_slot", "w"),
    ("w/AdagradDA", "optimizer_slot", "w"),
    ("w/AdagradDA_1", "optimizer_slot", "w"),
    ("beta1_power", "optimizer_power", None),
    ("model/beta2_power", "optimizer_power", None),
    ("global_step", "global_step", None),
    ("OptimizeLoss/learning_rate", "learning_rate", None),
    ("dnn/learning_rate", "learning_rate", None),
    ("training/Ftrl/learning_rate", "learning_rate", None),
    ("training/Ftrl/beta", "optimizer_other", None),
    ("training/Ftrl/l1_regularization_strength", "optimizer_other", None),
    (
        "training/Ftrl/linear/linear_model/age/weights/accumulator",
        "optimizer_slot",
        "linear/linear_model/age/weights",
    ),
    ("conv1/weights/ExponentialMovingAverage", "ema_shadow", "conv1/weights"),
    ("_CHECKPOINTABLE_OBJECT_GRAPH", "object_graph", None),
    ("save_counter/.ATTRIBUTES/VARIABLE_VALUE", "save_counter", None),
    ("optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE", "optimizer_other", None),
    (
        "model/layer_with_weights-0/kernel/.OPTIMIZER_SLOT/optimizer/m/.ATTRIBUTES/VARIABLE_VALUE",
        "optimizer_slot",
        "model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE",
    ),
    ("adam/iteration", "optimizer_other", None),
    ("adam/learning_rate", "learning_rate", None),
    ("adam/dense_kernel_momentum", "optimizer_slot", None),
    ("Adam/iter", "optimizer_other", None),
]


@pytest.mark.parametrize(("key", "kind", "of"), CASES)
def test_classify_auxiliary_kinds(key: str, kind: str, of: str | None) -> None:
    aux = classify_auxiliary(key, ())
    assert aux is not None
    assert (aux.kind, aux.of) == (kind, of)


@pytest.mark.parametrize(
    "key",
    ["dense/kernel", "conv1/weights", "Variable_3", "embedding", "bn/beta", "lstm_cell/bias",
     "model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE", "adam_layer/kernel"],
)  # fmt: skip
def test_weights_are_not_auxiliary(key: str) -> None:
    assert classify_auxiliary(key, (3, 3)) is None


def test_non_scalar_lr_is_a_weight() -> None:
    assert classify_auxiliary("lr", (10,)) is None
    assert classify_auxiliary("lr", ()) is not None


def test_doubled_scope_resolves_owner() -> None:
    known = {"model/embed", "model/model/embed/Adam"}
    aux = classify_auxiliary("model/model/embed/Adam", (4363, 40), known)
    assert aux is not None and aux.of == "model/embed"


def test_target_side_slots_are_not_required() -> None:
    src = [VarSpec("w", (2, 2))]
    tgt = [VarSpec("w", (2, 2)), VarSpec("w/Adam", (2, 2)), VarSpec("beta1_power", ())]
    plan = derive(src, tgt)
    assert plan.complete
    assert [a.name for a in plan.target_auxiliary] == ["w/Adam", "beta1_power"]


# ---------------------------------------------------------------------------------------------
# The real corpus: VARIABLES.txt lists every entry as TensorFlow's reader sees it.
# ---------------------------------------------------------------------------------------------

_LINE = re.compile(r"\s+(\S+) \[([\d, ]*)\] (\w+)")


def _read_variables(path: Path) -> dict[str, list[VarSpec]]:
    out: dict[str, list[VarSpec]] = {}
    current: list[VarSpec] = []
    for line in path.read_text().splitlines():
        if line.startswith("== "):
            current = out.setdefault(line[3:].strip(), [])
        elif m := _LINE.fullmatch(line):
            shape = tuple(int(d) for d in m.group(2).split(",") if d.strip())
            current.append(VarSpec(m.group(1), shape, m.group(3)))
    return out


def _corpus_checkpoints(corpus: Path) -> list[tuple[str, list[VarSpec]]]:
    found = []
    for var_file in sorted(corpus.glob("*/VARIABLES.txt")):
        found += sorted(_read_variables(var_file).items())
    return found


def test_corpus_plans_against_itself(corpus: Path) -> None:
    checkpoints = _corpus_checkpoints(corpus)
    assert len(checkpoints) >= 19
    for name, specs in checkpoints:
        plan = derive(specs, specs, source_label=name)
        weights = [s.name for s in specs if classify_auxiliary(s.name, s.shape) is None]
        assert plan.complete, name
        assert not plan.unused, name
        assert sorted(m.target for m in plan.matches) == sorted(weights), name
        assert all(m.sources == (m.target,) and not m.steps for m in plan.matches), name
        assert len(plan.auxiliary) + len(weights) == len(specs), name


def test_corpus_auxiliaries_are_classified(corpus: Path) -> None:
    for name, specs in _corpus_checkpoints(corpus):
        plan = derive(specs, [], source_label=name)
        for s in specs:
            if re.search(r"/(Adam(_1)?|RMSProp(_1)?|Adagrad)$|_power$|^global_step$|Ftrl/", s.name):
                assert s.name in {a.name for a in plan.auxiliary}, (name, s.name)
        for a in plan.auxiliary:
            if a.kind == "optimizer_slot" and a.of is not None:
                assert a.of in {s.name for s in specs}, (name, a)


def _renamed(spec: VarSpec) -> VarSpec:
    """A copy under another model scope, with Keras names (kernel/bias) and tf-keras ``:0``."""
    name = spec.name.replace("/weights", "/kernel").replace("/biases", "/bias")
    return VarSpec(f"new_model/{name}:0", spec.shape, spec.dtype)


def test_corpus_plans_against_renamed_copy(corpus: Path) -> None:
    for name, specs in _corpus_checkpoints(corpus):
        weights = [s for s in specs if classify_auxiliary(s.name, s.shape) is None]
        plan = derive(specs, [_renamed(s) for s in weights], source_label=name)
        assert plan.complete, (name, plan.missing)
        for m in plan.matches:
            assert m.target == _renamed(VarSpec(m.source, ())).name, (name, m)


def test_corpus_against_anonymised_copy_never_mismatches(corpus: Path) -> None:
    """Scopes replaced by ``layer_N`` (creation order kept): whatever is matched must be right."""
    for name, specs in _corpus_checkpoints(corpus):
        weights = [s for s in specs if classify_auxiliary(s.name, s.shape) is None]
        scopes: dict[str, str] = {}
        originals: dict[str, str] = {}
        targets = []
        for i, s in enumerate(sorted(weights, key=lambda s: s.name)):
            scope, _, leaf = s.name.rpartition("/")
            new_scope = scopes.setdefault(scope, f"layer_{len(scopes)}")
            new = f"anon/{new_scope}/{leaf.replace('weights', 'kernel').replace('biases', 'bias')}"
            originals[new] = s.name
            targets.append(VarSpec(new, s.shape, s.dtype, order=i))
        plan = derive(specs, targets, source_label=name)
        for m in plan.matches:
            if not m.reason.startswith("converter"):
                assert m.sources == (originals[m.target],), (name, m)


_WORDS = ["dense", "kernel", "bias", "w", "Adam", "Adam_1", "Momentum", "RMSProp", "Adagrad", "t_0",
          "part_1", "beta1_power", "global_step", "learning_rate", "save_counter", "optimizer",
          "training", "model", "ExponentialMovingAverage", ".ATTRIBUTES", "VARIABLE_VALUE",
          ".OPTIMIZER_SLOT", "m", "iter", "adam", "_CHECKPOINTABLE_OBJECT_GRAPH"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=5), min_size=1, max_size=12),
    st.sampled_from([(), (3,), (2, 2)]),
    st.booleans(),
)
def test_auxiliaries_decides_as_classify_auxiliary_does(
    paths: list[list[str]], shape: tuple[int, ...], doubled: bool
) -> None:
    """``auxiliaries`` decides the usual keys inline (100,000s of entries): the same answers as
    ``classify_auxiliary`` one key at a time, with its caches cold and warm."""
    names = list(dict.fromkeys("/".join(p) for p in paths))
    if doubled:  # Estimator-style doubled scopes: model/model/w/Adam is the slot of model/w
        names += [f"model/{n}" for n in names] + [f"model/model/{n}/Adam" for n in names]
    specs = [VarSpec(n, shape) for n in names]
    want = {n: a for n in names if (a := classify_auxiliary(n, shape, set(names))) is not None}
    for _ in range(2):
        assert auxiliaries(specs, set(names)) == want
