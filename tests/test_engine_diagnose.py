"""A real architecture mismatch is named as such: the sizes that differ, per layer, and the fixes
that can work (strict=False, ckptbridge.plan), in a short message without tensor values."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import ckptbridge
from ckptbridge.engine import MappingPlan, VarSpec, derive, format_not_found

pytestmark = pytest.mark.tf


def _model(units: int) -> keras.Model:
    return keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(10)]
    )


def test_dense_128_against_64_names_the_sizes(tmp_path: Path) -> None:
    saved = _model(128)
    prefix = tf.train.Checkpoint(model=saved).write(str(tmp_path / "ck"))
    model = _model(64)
    with pytest.raises(ckptbridge.NotFoundError) as info:
        ckptbridge.restore(model, prefix)
    message = str(info.value)
    assert len(message) < 1200, message  # with a 60-character temporary path, twice
    lines = message.splitlines()
    assert re.fullmatch(
        r"3 model '\w+' variable\(s\) have no match in '.*ck' \(1 matched\)\.", lines[0]
    )
    assert re.fullmatch(
        r"layer '\w+/dense_\d+' of the model '\w+': the checkpoint's layer "
        r"'model/_functional/_operations/1' has 128 units, the model's 64\.",
        lines[1],
    )
    assert re.search(
        r"^layer '\w+/dense_\d+' of the model '\w+': the checkpoint's layer "
        r"'model/_functional/_operations/2' takes 128 inputs, the model's 64\.$",
        message,
        re.M,
    )
    assert re.search(
        r"^Fix: the architectures differ; build the model as the checkpoint's, or restore the "
        r"variables that do match with strict=False\. ckptbridge\.plan\(checkpoint, model\) lists "
        r"every match and why\.$",
        message,
        re.M,
    )
    assert "transpose" not in message and "same name" not in message and "map:" not in message
    # the closest entries shown have the variable's role: no bias offered for a kernel
    kernel_lines = [line for line in lines if "/kernel' (" in line and "Closest:" in line]
    assert kernel_lines and all("/bias/" not in line for line in kernel_lines)
    # the fix it names works: strict=False restores what matches
    report = ckptbridge.restore(model, prefix, strict=False)
    assert [m.target.rsplit("/", 1)[-1] for m in report.matched] == ["bias"]
    np.testing.assert_array_equal(np.asarray(model.weights[-1]), np.asarray(saved.weights[-1]))


def test_a_transposed_kernel_is_still_told_as_a_transpose() -> None:
    plan = derive([VarSpec("dense/kernel", (4, 6))], [VarSpec("dense/kernel", (6, 4))])
    assert plan.missing[0].why == (
        "'dense/kernel' has the same name but shape (4, 6), expected (6, 4) (transposed). Fix: "
        "add to the rules transforms: [{target: 'dense/kernel', steps: [{op: transpose, perm: "
        "[1, 0]}]}]"
    )
    assert "Fix: add a 'map:" in format_not_found(plan) or "transpose" in format_not_found(plan)


_BN = ("gamma", "beta", "moving_mean", "moving_variance")


def _tied_batch_norms() -> MappingPlan:
    """31 slim BatchNorm scopes of one width for 30 Keras BatchNormalization layers: a real tie."""
    src = [
        VarSpec(f"net/unit_{i}/conv3/BatchNorm/{leaf}", (16,)) for i in range(31) for leaf in _BN
    ]
    tgt = [VarSpec(f"batch_normalization_{i}/{leaf}", (16,)) for i in range(30) for leaf in _BN]
    return derive(src, tgt, source_label="old/model.ckpt-1000")


def test_a_tie_over_many_layers_is_told_per_layer_in_a_bounded_message() -> None:
    plan = _tied_batch_norms()
    message = format_not_found(plan)
    assert len(message) < 1500, message
    assert re.match(
        r"^120 model variable\(s\) have no match in 'old/model\.ckpt-1000' \(0 matched\)\.\n"
        r"model variable 'batch_normalization_0/gamma' \(16,\) has no match in "
        r"'old/model\.ckpt-1000'\. Closest: [^\n]*\n"
        r"    why: ambiguous: 124 unused entries have shape \(16,\) \('net/unit_0/conv3/BatchNorm/"
        r"gamma', [^\n]* and neither names nor creation order decide between them; add a 'map:' "
        r"rule, e\.g\. map: \{net/unit_0/conv3/BatchNorm/gamma: batch_normalization_0/gamma\}\n"
        r"  also 'batch_normalization_0/beta' \(16,\), 'batch_normalization_0/moving_mean' "
        r"\(16,\), 'batch_normalization_0/moving_variance' \(16,\): the same reason\.\n"
        r"\.\.\. and 116 more unmatched model variable\(s\) in 29 more layer\(s\) "
        r"\(ckptbridge\.plan\(checkpoint, model\) lists them all\)\.\n"
        r"Unused entries in 'old/model\.ckpt-1000' \(124\), by scope:\n"
        r"(  net/unit_\d+/conv3/BatchNorm/ \(4 entries\)\n){5}"
        r"  \.\.\. and 26 more scopes\n",
        message,
    )
    # a name picked among equals is no fix: no map pairs for a tie
    assert message.endswith(
        "\nFix: add a 'map: {checkpoint_key: variable}' rule for each variable above, or "
        "'ignore_target:' for variables that should keep their initial values."
    )
    # the plan keeps every variable and its reason
    assert str(plan).count(": ambiguous: 124 unused entries") == 120
    assert len(plan.to_dict()["missing"]) == 120


def test_an_ambiguous_variable_is_offered_entries_of_its_own_role_first() -> None:
    src = [VarSpec(f"fc/BatchNorm/{leaf}", (8,)) for leaf in ("beta", "gamma")] + [
        VarSpec("fc2/BatchNorm/gamma", (8,))
    ]
    plan = derive(src, [VarSpec("bn/gamma", (8,)), VarSpec("other/gamma", (8,))])
    assert plan.missing[0].why.startswith(
        "ambiguous: 3 unused entries have shape (8,) ('fc/BatchNorm/gamma', "
        "'fc2/BatchNorm/gamma', 'fc/BatchNorm/beta')"
    )
    assert plan.missing[0].why.endswith("e.g. map: {fc/BatchNorm/gamma: bn/gamma}")
