"""Restore and plan by object path: layers without weights, Dropout, nested containers, dtypes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptbridge

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

pytestmark = pytest.mark.tf


def _randomise(model: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(rng.normal(size=tuple(v.shape)).astype("float32"))


def _dense_stack(*, dropout_first: bool) -> Any:
    layers = [keras.Input((8,))]
    if dropout_first:
        layers.append(keras.layers.Dropout(0.5))
    layers += [keras.layers.Dense(8, activation="relu") for _ in range(2)]
    return keras.Sequential([*layers, keras.layers.Dense(8)])


def test_tf2_checkpoint_into_model_with_an_extra_layer_without_weights(tmp_path: Path) -> None:
    """Keras 3 numbers layers by position (``_operations/2``) counting Dropout; a raw index
    compared across models paired the wrong layers and the last one by elimination: a silent
    cyclic permutation of the weights."""
    saved = _dense_stack(dropout_first=False)
    _randomise(saved, 0)
    x = np.random.default_rng(1).normal(size=(2, 8)).astype("float32")
    prefix = tf.train.Checkpoint(model=saved).write(str(tmp_path / "ckpt"))

    fresh = _dense_stack(dropout_first=True)
    report = ckptbridge.restore(fresh, prefix)

    assert report.complete
    np.testing.assert_allclose(fresh(x).numpy(), saved(x).numpy(), rtol=1e-6)


def test_tf2_checkpoint_with_dropout_into_model_without(tmp_path: Path) -> None:
    saved = _dense_stack(dropout_first=True)
    _randomise(saved, 2)
    x = np.random.default_rng(3).normal(size=(2, 8)).astype("float32")
    prefix = tf.train.Checkpoint(model=saved).write(str(tmp_path / "ckpt"))

    fresh = _dense_stack(dropout_first=False)
    ckptbridge.restore(fresh, prefix)

    np.testing.assert_allclose(fresh(x).numpy(), saved(x).numpy(), rtol=1e-6)


def _seq(units: list[int]) -> Any:
    return keras.Sequential([keras.Input((4,)), *(keras.layers.Dense(n) for n in units)])


def test_missing_variable_is_not_offered_an_entry_already_used(tmp_path: Path) -> None:
    """A model with one layer more than its checkpoint: every entry is used, so the message must
    not say a used entry's "role differs" nor suggest mapping it (it would steal it)."""
    saved = _seq([16, 5])
    prefix = tf.train.Checkpoint(model=saved).write(str(tmp_path / "ckpt"))
    bigger = _seq([16, 5, 16])
    before = [w.copy() for w in bigger.get_weights()]

    with pytest.raises(ckptbridge.NotFoundError) as info:
        ckptbridge.restore(bigger, prefix)

    message = str(info.value)
    assert "already used" in message
    assert "role differs" not in message
    assert "map:\n" not in message
    assert all(np.array_equal(a, b) for a, b in zip(before, bigger.get_weights(), strict=True))


def test_plan_with_a_mapped_pair_of_another_dtype_is_incomplete() -> None:
    """A ``map`` pair whose dtypes differ (float32 entry, float16 model) used to plan as complete
    and only fail when restoring (and convert would write the wrong dtype)."""
    from ckptbridge.engine import VarSpec, derive
    from ckptbridge.rules import load_rules

    source = [VarSpec("enc/w", (6, 9), "float32")]
    target = [VarSpec("h/dense/kernel", (6, 9), "float16")]

    plan = derive(source, target, load_rules({"map": {"enc/w": "h/dense/kernel"}}))
    fixed = derive(
        source,
        target,
        load_rules(
            {
                "map": {"enc/w": "h/dense/kernel"},
                "transforms": [{"target": ".*", "steps": [{"op": "cast", "dtype": "float16"}]}],
            }
        ),
    )

    assert not plan.complete
    assert "dtype float16" in plan.missing[0].why and "cast" in plan.missing[0].why
    assert fixed.complete


def _outer(*, dropout: bool) -> Any:
    inner = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(8)]
    )
    inputs = keras.Input((8,))
    hidden = keras.layers.Dropout(0.5)(inputs) if dropout else inputs
    return keras.Model(inputs, keras.layers.Dense(8)(inner(hidden)))


def test_positions_are_ranked_per_container_in_nested_models(tmp_path: Path) -> None:
    saved = _outer(dropout=False)
    _randomise(saved, 4)
    x = np.random.default_rng(5).normal(size=(2, 8)).astype("float32")
    prefix = tf.train.Checkpoint(model=saved).write(str(tmp_path / "ckpt"))

    for dropout in (True, False):
        fresh = _outer(dropout=dropout)
        assert ckptbridge.restore(fresh, prefix).complete
        np.testing.assert_allclose(fresh(x).numpy(), saved(x).numpy(), rtol=1e-6)


def test_rank_positions_keeps_containers_apart() -> None:
    from ckptbridge.engine._positions import rank_positions

    ranked = rank_positions(
        ["m/_operations/3/_operations/1/k", "m/_operations/3/_operations/4/k", "m/_operations/7/k"]
    )

    assert ranked == {
        "m/_operations/3/_operations/1/k": "m/_operations/#0/_operations/#0/k",
        "m/_operations/3/_operations/4/k": "m/_operations/#0/_operations/#1/k",
        "m/_operations/7/k": "m/_operations/#1/k",
    }
