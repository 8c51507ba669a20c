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
from ckptbridge.engine import VarSpec, derive, format_not_found

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
