"""TF2 object-based checkpoints written together with a Keras 3 optimizer.

Keras 3 optimizers track the model's variables, so the stored key of a kernel is
``optimizer/_trainable_variables/0/...``: it must still restore as a weight, not as optimizer state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ckptbridge

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def _model() -> keras.Model:
    return keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)]
    )


def test_weights_stored_under_the_optimizer_restore_as_weights(tmp_path: Path) -> None:
    trained = _model()
    trained.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    trained.fit(rng.normal(size=(8, 4)), rng.normal(size=(8, 2)), epochs=1, verbose=0)
    prefix = tf.train.Checkpoint(model=trained, optimizer=trained.optimizer).write(
        str(tmp_path / "ckpt")
    )
    with ckptbridge.format.open_checkpoint(prefix) as ckpt:
        assert "optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE" in ckpt.entries

    fresh = _model()
    report = ckptbridge.restore(fresh, prefix)

    assert report.complete and not report.unused
    assert all(m.source.startswith("model/") for m in report.matched)
    assert {a.kind for a in report.auxiliary} <= {
        "optimizer_other",
        "optimizer_slot",
        "learning_rate",
    }
    x = rng.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(fresh(x)), np.asarray(trained(x)))
