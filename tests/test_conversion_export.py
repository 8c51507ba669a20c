"""The reverse: Keras optimizer state -> TF1 slots, proven through a TF1 graph's ``Saver.restore``.

A Keras model trains 3 steps and is written as a TF1 checkpoint (template: the TF1 graph's own
checkpoint or ``.meta``); the TF1 graph restores it and runs one step on the same batch, which must
give the weights Keras has after its 4th step. Tolerance: rtol 1e-5, atol 1e-7 (Adam: TF1 reads the
float32 ``beta1_power`` we write as ``beta_1**4``, Keras computes the power itself; observed max
relative error ~2.5e-6; every other optimizer ~1e-7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tf_keras

from ckptbridge._errors import MappingError
from ckptbridge.conversion import save_tf1_checkpoint
from ckptbridge.format import open_checkpoint
from optim_builders import TF1Run, X, Y, keras_model, keras_weights, step_tf1, train_tf1

pytestmark = pytest.mark.tf

FLAVOURS = [pytest.param(keras, id="keras3"), pytest.param(tf_keras, id="tf_keras")]
EXPORTED = ["adam", "momentum", "rmsprop", "rmsprop_centered", "adagrad"]


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TF1Run]:
    root = tmp_path_factory.mktemp("templates")
    return {case: train_tf1(root / case, case, steps=1) for case in EXPORTED}


def _trained(k: Any, case: str, steps: int = 3) -> Any:
    model = keras_model(k, case)
    for _ in range(steps):
        model.train_on_batch(X, Y)
    return model


@pytest.mark.parametrize("k", FLAVOURS)
@pytest.mark.parametrize("case", EXPORTED)
def test_tf1_step_after_export_equals_keras_step(
    templates: dict[str, TF1Run], tmp_path: Path, case: str, k: Any
) -> None:
    model = _trained(k, case)
    export = save_tf1_checkpoint(model, tmp_path / "model.ckpt-3", template=templates[case].prefix)
    model.train_on_batch(X, Y)
    got, global_step = step_tf1(export.prefix, case)
    for name, value in keras_weights(model).items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-7, err_msg=name)
    assert global_step == 4


def test_adam_entries_and_counters(templates: dict[str, TF1Run], tmp_path: Path) -> None:
    model = _trained(keras, "adam")
    export = save_tf1_checkpoint(
        model, tmp_path / "model.ckpt", template=f"{templates['adam'].prefix}.meta"
    )
    with open_checkpoint(export.prefix) as ckpt:
        keys = sorted(ckpt.entries)
        assert float(ckpt.read("beta1_power")) == pytest.approx(0.9**4, rel=1e-6)
        assert float(ckpt.read("beta2_power")) == pytest.approx(0.999**4, rel=1e-6)
        assert int(ckpt.read("global_step")) == 3
    weights = ["fc1/biases", "fc1/weights", "fc2/biases", "fc2/weights"]
    assert keys == sorted(
        ["beta1_power", "beta2_power", "global_step", *weights,
         *(f"{w}/Adam" for w in weights), *(f"{w}/Adam_1" for w in weights)]
    )  # fmt: skip
    reasons = {c.target: c.reason for c in export.optimizer.counters}
    assert reasons["beta1_power"].startswith("beta1**(steps+1), steps: ")


def test_momentum_slot_is_divided_by_minus_lr(templates: dict[str, TF1Run], tmp_path: Path) -> None:
    model = _trained(tf_keras, "momentum")
    export = save_tf1_checkpoint(model, tmp_path / "m.ckpt", template=templates["momentum"].prefix)
    slot = model.optimizer.momentums[0]
    with open_checkpoint(export.prefix) as ckpt:
        np.testing.assert_allclose(ckpt.read("fc1/weights/Momentum"), np.asarray(slot) / -0.1,
                                   rtol=1e-6)  # fmt: skip


def test_keras_rmsprop_without_momentum_writes_zero_momentum_slots(
    templates: dict[str, TF1Run], tmp_path: Path
) -> None:
    model = keras_model(keras, "rmsprop")
    model.compile(optimizer=keras.optimizers.RMSprop(0.01, epsilon=1e-10), loss="mse")
    model.train_on_batch(X, Y)
    export = save_tf1_checkpoint(model, tmp_path / "r.ckpt", template=templates["rmsprop"].prefix)
    zeros = [m for m in export.optimizer.slots if not m.sources]
    assert len(zeros) == 4 and all(m.target.endswith("/RMSProp_1") for m in zeros)
    assert zeros[0].reason.startswith("zeros: the source has no 'momentum' slot (momentum 0)")


def test_template_of_another_optimizer_is_an_error(
    templates: dict[str, TF1Run], tmp_path: Path
) -> None:
    model = _trained(keras, "adam", steps=1)
    with pytest.raises(MappingError, match=r"^cannot restore keras\.optimizers\.Adam optimizer "
                       r"state into TF1 Momentum: .* Fix: pass a template saved from a graph with "
                       r"tf\.compat\.v1\.train\.AdamOptimizer"):  # fmt: skip
        save_tf1_checkpoint(model, tmp_path / "x.ckpt", template=templates["momentum"].prefix)
    assert not (tmp_path / "x.ckpt.index").exists()
