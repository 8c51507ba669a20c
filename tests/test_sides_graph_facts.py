"""A TF1 LSTM cell's forget bias is read from its ``.meta`` and folded in: outputs equal TF1's.

Real TF1 graphs (``LSTMCell`` / ``BasicLSTMCell`` with ``forget_bias`` 0.5 and 0.8 under
``dynamic_rnn``, ``LSTMBlockCell``'s fused op), saved by ``tf.compat.v1.train.Saver`` with their
``.meta``, restored by ``ckptbridge.restore`` with no rules into Keras 3 and tf-keras ``LSTM``s.
"""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import ckptbridge
from ckptbridge.engine import VarSpec
from ckptbridge.format import open_checkpoint
from ckptbridge.format._meta import MetaInfo
from ckptbridge.sides._graph_facts import forget_biases
from rnn_builders import RNNCheckpoint, RNNSpec, keras_model, write_checkpoint

pytestmark = pytest.mark.tf
v1 = tf.compat.v1

SPECS = {
    "lstm_fb05": RNNSpec(kind="lstm", forget_bias=0.5),
    "basic_lstm_fb08_multi": RNNSpec(kind="basic_lstm", forget_bias=0.8, layers=2),
    "lstm_fb05_bidirectional": RNNSpec(kind="lstm", forget_bias=0.5, bidirectional=True),
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, RNNCheckpoint]:
    out = {}
    for name, spec in SPECS.items():
        out[name] = write_checkpoint(tmp_path_factory.mktemp(name), spec, seed=len(out))
    return out


def _lstm_biases(report: ckptbridge.RestoreReport) -> list[Any]:
    return [m for m in report.matched if m.reason.startswith("converter lstm") and "add" in
            [s.op for s in m.steps]]  # fmt: skip


@pytest.mark.parametrize("flavour", ["keras", "tf_keras"])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_restore_folds_the_meta_forget_bias(
    checkpoints: dict[str, RNNCheckpoint], name: str, flavour: str
) -> None:
    ck = checkpoints[name]
    model = keras_model(keras if flavour == "keras" else tf_keras, ck.spec)
    report = ckptbridge.restore(model, ck.prefix)
    assert report.notes == []
    biases = _lstm_biases(report)
    assert biases and all(
        re.search(
            rf"forget_bias {ck.spec.forget_bias} folded into bias \(\.meta: [^)]+\)", m.reason
        )
        for m in biases
    )
    np.testing.assert_allclose(np.asarray(model(ck.inputs)), ck.outputs, rtol=1e-5, atol=1e-5)


def test_meta_names_the_constant_for_every_cell(checkpoints: dict[str, RNNCheckpoint]) -> None:
    with open_checkpoint(checkpoints["basic_lstm_fb08_multi"].prefix) as ckpt:
        facts = forget_biases(ckpt.meta)
    assert {k: [(c.name, c.value) for c in v] for k, v in facts.items()} == {
        "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias": [("forget_bias", 0.8)],
        "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias": [("forget_bias", 0.8)],
    }
    # dynamic_rnn's functional while loop: the constant lives in the loop body
    assert facts["rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias"][0].node == (
        "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/Const_1"
    )


def test_without_meta_default_is_assumed_and_said(
    checkpoints: dict[str, RNNCheckpoint], tmp_path: Path
) -> None:
    ck = checkpoints["lstm_fb05"]
    for path in ck.prefix.parent.glob(ck.prefix.name + ".*"):
        if path.suffix != ".meta":
            shutil.copy(path, tmp_path / path.name)
    model = keras_model(keras, ck.spec)
    report = ckptbridge.restore(model, tmp_path / ck.prefix.name)
    [note] = report.notes
    assert note == (
        "forget_bias 1.0 assumed (TensorFlow's default) for TF1 LSTM cell 'rnn/lstm_cell': no "
        ".meta graph beside the checkpoint records the value added to the forget gate. If the "
        "TF1 code passed another forget_bias, set options.forget_bias (or "
        "options.forget_bias_per_key: {rnn/lstm_cell: VALUE}); outputs differ otherwise"
    )
    assert report.plan is not None and report.plan.notes == [note]
    assert f"Note: {note}" in str(report) and f"Note: {note}" in str(report.plan)
    assert report.to_dict()["notes"] == [note] and report.plan.to_dict()["notes"] == [note]
    [bias] = _lstm_biases(report)
    assert "forget_bias 1.0 folded into bias (TensorFlow's default, assumed" in bias.reason
    assert not np.allclose(np.asarray(model(ck.inputs)), ck.outputs, rtol=1e-5, atol=1e-5)


def test_explicit_option_wins_over_the_meta_and_says_so(
    checkpoints: dict[str, RNNCheckpoint],
) -> None:
    ck = checkpoints["lstm_fb05"]
    model = keras_model(keras, ck.spec)
    report = ckptbridge.restore(model, ck.prefix, rules={"options": {"forget_bias": 1.0}})
    [note] = report.notes
    assert re.fullmatch(
        r"TF1 LSTM cell 'rnn/lstm_cell' \(in 3, h 4\): forget_bias 1\.0 from options\.forget_bias, "
        r"although its \.meta graph adds 0\.5 \(lstm_cell/add/y\); the rules win",
        note,
    )
    assert not np.allclose(np.asarray(model(ck.inputs)), ck.outputs, rtol=1e-5, atol=1e-5)
    same = ckptbridge.restore(model, ck.prefix, rules={"options": {"forget_bias_per_key": {
        "rnn/lstm_cell": 0.5}}})  # fmt: skip
    assert same.notes == []
    np.testing.assert_allclose(np.asarray(model(ck.inputs)), ck.outputs, rtol=1e-5, atol=1e-5)


def test_two_values_for_one_cell_are_refused_not_guessed() -> None:
    from ckptbridge.engine import derive
    from ckptbridge.engine._spec import GraphConstant

    fb = (
        GraphConstant("forget_bias", 0.5, "a/add/y"),
        GraphConstant("forget_bias", 1.0, "b/add/y"),
    )
    src = [
        VarSpec("rnn/lstm_cell/kernel", (7, 16)),
        VarSpec("rnn/lstm_cell/bias", (16,), constants=fb),
    ]
    dst = [VarSpec("lstm/lstm_cell/kernel", (3, 16)), VarSpec("lstm/lstm_cell/recurrent_kernel", (4, 16)),
           VarSpec("lstm/lstm_cell/bias", (16,))]  # fmt: skip
    plan = derive(src, dst)
    assert not plan.matches and len(plan.missing) == 3
    assert plan.missing[0].why == (
        "the .meta graph adds different forget biases to TF1 LSTM cell 'rnn/lstm_cell' (in 3, h 4): "
        "0.5 (a/add/y), 1.0 (b/add/y); which one its outputs used is unknown. Set it: options: "
        "{forget_bias_per_key: {rnn/lstm_cell: VALUE}}"
    )


# -- LSTMBlockCell: the fused op holds forget_bias as an attribute (gates i, ci, f, o) ------------


def test_lstm_block_cell_attribute_is_folded(tmp_path: Path) -> None:
    units, n_in, steps, forget_bias = 4, 3, 5, 0.3
    rng = np.random.default_rng(7)
    x_val = rng.normal(size=(2, steps, n_in)).astype(np.float32)
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, x_val.shape)
        with v1.variable_scope("rnn/lstm_cell"):
            w = v1.get_variable("kernel", (n_in + units, 4 * units))
            b = v1.get_variable("bias", (4 * units,))
        zeros = tf.zeros((units,))
        h = c = tf.zeros((2, units))
        outs = []
        for t in range(steps):
            _, c, _, _, _, _, h = tf.raw_ops.LSTMBlockCell(
                x=x[:, t], cs_prev=c, h_prev=h, w=w, wci=zeros, wcf=zeros, wco=zeros, b=b,
                forget_bias=forget_bias, cell_clip=-1.0, use_peephole=False,
            )  # fmt: skip
            outs.append(h)
        y = tf.stack(outs, axis=1)
        sess.run(v1.global_variables_initializer())
        for var in (w, b):
            var.load(rng.normal(scale=0.5, size=var.shape).astype(np.float32), sess)
        expected = sess.run(y, {x: x_val})
        prefix = v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    model = keras.Sequential(
        [keras.Input((steps, n_in)), keras.layers.LSTM(units, return_sequences=True)]
    )
    report = ckptbridge.restore(model, prefix)
    assert report.notes == []
    [bias] = _lstm_biases(report)
    assert re.search(
        r"forget_bias 0\.3 folded into bias \(\.meta: LSTMBlockCell(_\d+)? \(forget_bias\)\)",
        bias.reason,
    )
    np.testing.assert_allclose(np.asarray(model(x_val)), expected, rtol=1e-5, atol=1e-5)


# -- cell_clip: a state clipped by the TF1 cell, which no Keras LSTM does -------------------------


def test_a_clipped_cell_state_is_read_and_refused_not_restored(tmp_path: Path) -> None:
    """``LSTMCell(cell_clip=0.1)`` restored into ``keras.layers.LSTM`` completed with outputs off
    by 0.6: the clip lives only in the graph."""
    with tf.Graph().as_default(), v1.Session() as sess, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "LSTMCell is deprecated": the point here
        x = v1.placeholder(tf.float32, (2, 5, 3))
        v1.nn.dynamic_rnn(v1.nn.rnn_cell.LSTMCell(4, cell_clip=0.1), x, dtype=tf.float32)
        sess.run(v1.global_variables_initializer())
        prefix = v1.train.Saver().save(sess, str(tmp_path / "model.ckpt"))
    facts = forget_biases(open_checkpoint(prefix).meta)
    assert [(c.name, round(c.value, 6), c.node) for c in facts["rnn/lstm_cell/bias"]] == [
        ("forget_bias", 1.0, "lstm_cell/add/y"),
        ("cell_clip", 0.1, "lstm_cell/clip_by_value"),
    ]
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, return_sequences=True)])
    with pytest.raises(
        ckptbridge.NotFoundError,
        match=r"^3 model '\w+' variable\(s\) have no match in '.*model\.ckpt' \(0 matched\)\.\n"
        r"model '\w+' variable '[\w/]+/lstm_cell/kernel' \(3, 16\) has no match in .*\n"
        r"    why: the checkpoint's TF1 LSTM cell 'rnn/lstm_cell' \(in 3, h 4\) clips its cell "
        r"state to \[-0\.1, 0\.1\] \(lstm_cell/clip_by_value in its \.meta: "
        r"LSTMCell\(cell_clip=\.\.\.\)\); keras\.layers\.LSTM has no cell clipping, so its "
        r"outputs would differ\. Keep the TF1 cell \(tf\.compat\.v1\.nn\.rnn_cell\.LSTMCell with "
        r"the same cell_clip\), or retrain without it\.\n"
        r"  also .*: the same reason\.\n"
        r"Unused entries in .*\n  rnn/lstm_cell/ \(2 entries\)$",
    ):
        ckptbridge.restore(model, prefix)


def test_lstm_block_cell_cell_clip_attribute_is_read() -> None:
    with tf.Graph().as_default():
        with v1.variable_scope("rnn/lstm_cell"):
            w = v1.get_variable("kernel", (7, 16))
            b = v1.get_variable("bias", (16,))
        zeros, state = tf.zeros((4,)), tf.zeros((2, 4))
        tf.raw_ops.LSTMBlockCell(
            x=tf.zeros((2, 3)), cs_prev=state, h_prev=state, w=w, wci=zeros, wcf=zeros,
            wco=zeros, b=b, forget_bias=1.0, cell_clip=3.0, use_peephole=False,
        )  # fmt: skip
        meta = v1.train.export_meta_graph()
    info = MetaInfo.decode(meta.SerializeToString())
    assert [(c.name, c.value) for c in forget_biases(info)["rnn/lstm_cell/bias"]] == [
        ("forget_bias", 1.0),
        ("cell_clip", 3.0),
    ]
