"""Optimizer objects in TF2 object graphs, whatever attribute tracks them, are optimizer state.

Real checkpoints written by ``tf.train.Checkpoint`` for Keras 3, tf-keras and tf-keras legacy
optimizers, trained for a few steps: their variables are auxiliary (slots tied to their weight),
never ``unused``, never match candidates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import ckptbridge
from ckptbridge.format import open_checkpoint
from ckptbridge.sides._tf2_optimizer import optimizer_facts

pytestmark = pytest.mark.tf

X = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
Y = X.sum(1, keepdims=True)


def _model(k: Any, optimizer: Any, extra: int = 0) -> Any:
    layers = [k.layers.Dense(4, activation="relu"), k.layers.Dense(1)]
    layers += [k.layers.Dense(1) for _ in range(extra)]
    model = k.Sequential([k.Input((3,)), *layers])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def _saved(tmp_path: Path, k: Any, optimizer: Any, attribute: str) -> str:
    model = _model(k, optimizer)
    model.fit(X, Y, epochs=2, verbose=0)
    return str(tf.train.Checkpoint(model=model, **{attribute: model.optimizer}).write(
        str(tmp_path / "ck")))  # fmt: skip


CASES = {
    "keras3": (keras, lambda: keras.optimizers.Adam(0.01), ("_momentums", "_velocities")),
    "tf_keras": (tf_keras, lambda: tf_keras.optimizers.Adam(0.01), ("_momentums", "_velocities")),
    "tf_keras_legacy": (tf_keras, lambda: tf_keras.optimizers.legacy.Adam(0.01), ("m", "v")),
}


@pytest.mark.parametrize("attribute", ["opt", "optimizer"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_optimizer_variables_are_auxiliary_with_their_weight(
    tmp_path: Path, case: str, attribute: str
) -> None:
    k, make, slots = CASES[case]
    prefix = _saved(tmp_path, k, make(), attribute)
    with open_checkpoint(prefix) as ckpt:
        assert ckpt.object_graph is not None
        facts = optimizer_facts(ckpt.object_graph)
        keys = [key for key in ckpt.entries if key != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    weights = [key for key in keys if key not in facts]
    assert len(weights) == 4
    slot_facts = [f for f in facts.values() if f.kind == "optimizer_slot"]
    assert sorted((f.of, f.slot) for f in slot_facts) == sorted(
        (w, s) for w in weights for s in slots
    )
    plan = ckptbridge.plan(prefix, _model(k, make()))
    assert plan.complete and plan.unused == []
    assert {a.kind for a in plan.auxiliary} >= {"optimizer_slot", "learning_rate"}
    assert len(plan.auxiliary) == len(facts)
    assert {m.source for m in plan.matches}.isdisjoint(facts)


def test_optimizer_entries_are_never_candidates(tmp_path: Path) -> None:
    # the checkpoint's slot of a (1,) bias must not be offered for the model's extra (1,) bias
    prefix = _saved(tmp_path, keras, keras.optimizers.Adam(0.01), "opt")
    plan = ckptbridge.plan(prefix, _model(keras, keras.optimizers.Adam(0.01), extra=1))
    assert plan.missing
    for unmatched in plan.missing:
        assert not [c.name for c in unmatched.candidates if c.name.startswith("opt/")]
