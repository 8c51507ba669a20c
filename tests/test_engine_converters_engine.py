"""The converters inside the engine: ``derive`` picks them without rules, ``restore`` uses them."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tf_keras

import ckptbridge
from ckptbridge.engine import derive
from ckptbridge.engine._spec import VarSpec
from ckptbridge.rules import Rules
from rnn_builders import RNNCheckpoint, RNNSpec, keras_model, write_checkpoint
from test_engine_converters_cells import keras_cell, tf1_gru, tf1_lstm


def test_derive_without_rules_picks_the_lstm_converter() -> None:
    source = [
        *tf1_lstm("rnn/basic_lstm_cell", 80, 80, pre12=True),
        VarSpec("rnn/basic_lstm_cell/weights/Adam", (160, 320)),
        VarSpec("rnn/basic_lstm_cell/weights/Adam_1", (160, 320)),
        VarSpec("fc/weights", (80, 1)),
        VarSpec("fc/biases", (1,)),
        VarSpec("global_step", (), "int64"),
    ]
    target = [
        *keras_cell("sequential/lstm/lstm_cell", 80, 80, 4),
        VarSpec("sequential/dense/kernel", (80, 1)),
        VarSpec("sequential/dense/bias", (1,)),
    ]
    plan = derive(source, target)
    assert plan.complete
    reasons = {m.target: m.reason.split(";")[0] for m in plan.matches}
    assert reasons["sequential/lstm/lstm_cell/kernel"] == (
        "converter lstm: TF1 gates i,j,f,o -> Keras i,f,c,o"
    )
    assert plan.match_for("sequential/dense/kernel").sources == ("fc/weights",)  # type: ignore[union-attr]
    assert plan.unused == []


def test_derive_reports_reset_after_as_missing_with_the_fix() -> None:
    target = [*keras_cell("gru/gru_cell", 3, 4, 3)[:2], VarSpec("gru/gru_cell/bias", (2, 12))]
    plan = derive(tf1_gru("rnn/gru_cell", 3, 4), target)
    assert not plan.complete
    assert {u.target for u in plan.missing} == {t.name for t in target}
    assert all("reset_after=False" in u.why for u in plan.missing)


@pytest.fixture(scope="module")
def lstm_ckpt(tmp_path_factory: pytest.TempPathFactory) -> RNNCheckpoint:
    spec = RNNSpec(kind="lstm", layers=2, forget_bias=0.8)
    return write_checkpoint(tmp_path_factory.mktemp("lstm"), spec, seed=3)


@pytest.fixture(scope="module")
def gru_ckpt(tmp_path_factory: pytest.TempPathFactory) -> RNNCheckpoint:
    return write_checkpoint(tmp_path_factory.mktemp("gru"), RNNSpec(kind="gru"), seed=4)


@pytest.mark.tf
@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_restore_end_to_end(
    lstm_ckpt: RNNCheckpoint, gru_ckpt: RNNCheckpoint, flavour: str
) -> None:
    k = keras if flavour == "keras3" else tf_keras
    rules = Rules.model_validate({"options": {"forget_bias": 0.8}})
    for ck in (lstm_ckpt, gru_ckpt):
        model = keras_model(k, ck.spec)
        report = ckptbridge.restore(model, ck.prefix, rules=rules)
        assert report.complete
        out = np.asarray(model(ck.inputs))
        np.testing.assert_allclose(out, ck.outputs, rtol=1e-5, atol=1e-5)


@pytest.mark.tf
def test_restore_into_reset_after_gru_raises_not_found(gru_ckpt: RNNCheckpoint) -> None:
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(4, return_sequences=True)])
    with pytest.raises(ckptbridge.NotFoundError) as info:
        ckptbridge.restore(model, Path(gru_ckpt.prefix))
    assert "reset_after=False" in str(info.value)
