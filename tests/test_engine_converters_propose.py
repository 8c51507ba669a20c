"""propose(): the matches, steps, reasons and refusals the engine gets for RNN cells."""

from __future__ import annotations

import pytest

from ckptbridge.engine._plan import Match
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.converters import ConverterResult, propose
from ckptbridge.rules import Add, Cast, Concat, Options, PermuteBlocks, Slice
from test_engine_converters_cells import keras_cell, tf1_gru, tf1_lstm

SWAP4 = PermuteBlocks(axis=-1, parts=4, order=(0, 2, 1, 3))
SWAP3 = PermuteBlocks(axis=-1, parts=3, order=(1, 0, 2))
SWAP2 = PermuteBlocks(axis=-1, parts=2, order=(1, 0))


def by_target(result: ConverterResult) -> dict[str, Match]:
    return {m.target: m for m in result.matches}


def test_basic_lstm_pre_1_2_to_keras_steps_and_reason() -> None:
    source = tf1_lstm("rnn/basic_lstm_cell", 80, 80, pre12=True)
    target = keras_cell("sequential/lstm/lstm_cell", 80, 80, 4)
    result = propose(source, target, Options(forget_bias=0.8))
    assert result.unmatched == []
    m = by_target(result)
    kernel = m["sequential/lstm/lstm_cell/kernel"]
    assert kernel.sources == ("rnn/basic_lstm_cell/weights",)
    assert kernel.steps == (Slice(axis=0, start=0, stop=80), SWAP4)
    assert (kernel.target_shape, kernel.source_shapes) == ((80, 320), ((160, 320),))
    assert m["sequential/lstm/lstm_cell/recurrent_kernel"].steps == (Slice(axis=0, start=80), SWAP4)
    bias = m["sequential/lstm/lstm_cell/bias"]
    assert bias.steps == (SWAP4, Add(value=0.8, axis=0, start=80, stop=160))
    assert bias.reason == (
        "converter lstm: TF1 gates i,j,f,o -> Keras i,f,c,o; kernel split at row 80; "
        "forget_bias 0.8 folded into bias (options.forget_bias); "
        "rnn/basic_lstm_cell -> sequential/lstm/lstm_cell, by order (cell 1 of 1)"
    )


def test_forget_bias_default_is_tf1s_one() -> None:
    result = propose(tf1_lstm("rnn/lstm_cell", 2, 3), keras_cell("lstm/lstm_cell", 2, 3, 4))
    bias = by_target(result)["lstm/lstm_cell/bias"]
    assert bias.steps[-1] == Add(value=1.0, axis=0, start=3, stop=6)


def test_forget_bias_zero_adds_nothing() -> None:
    result = propose(tf1_lstm("rnn/lstm_cell", 2, 3), keras_cell("lstm/lstm_cell", 2, 3, 4),
                     Options(forget_bias=0.0))  # fmt: skip
    assert by_target(result)["lstm/lstm_cell/bias"].steps == (SWAP4,)


def test_forget_bias_per_key_matches_cell_scope_or_key() -> None:
    source = tf1_lstm("enc/rnn/lstm_cell", 2, 3) + tf1_lstm("dec/rnn/lstm_cell", 5, 3)
    target = keras_cell("lstm/lstm_cell", 2, 3, 4) + keras_cell("lstm_1/lstm_cell", 5, 3, 4)
    options = Options(
        forget_bias=1.0,
        forget_bias_per_key={"enc/.*": 0.5, r"dec/rnn/lstm_cell/bias": 0.25},
    )
    m = by_target(propose(source, target, options))
    assert m["lstm/lstm_cell/bias"].steps[-1].value == 0.5  # type: ignore[union-attr]
    assert m["lstm_1/lstm_cell/bias"].steps[-1].value == 0.25  # type: ignore[union-attr]
    assert (
        "forget_bias 0.25 folded into bias (options.forget_bias_per_key['dec/rnn/lstm_cell/bias'])"
        in (m["lstm_1/lstm_cell/bias"].reason)
    )


def test_invalid_forget_bias_pattern_is_refused_when_the_options_are_built() -> None:
    # Rules files report it with file and line (tests/test_rules.py); the converter never sees it.
    with pytest.raises(
        ValueError, match=r"forget_bias_per_key: entry \[0\]: bad regular expression '\('"
    ):
        Options(forget_bias_per_key={"(": 0.8})


def test_keras_lstm_to_tf1_subtracts_forget_bias() -> None:
    source = keras_cell("lstm/lstm_cell", 2, 3, 4, suffix=":0")
    target = tf1_lstm("rnn/lstm_cell", 2, 3)
    m = by_target(propose(source, target, Options(forget_bias=0.8)))
    kernel = m["rnn/lstm_cell/kernel"]
    assert kernel.sources == ("lstm/lstm_cell/kernel:0", "lstm/lstm_cell/recurrent_kernel:0")
    assert kernel.steps == (Concat(axis=0), SWAP4)
    assert m["rnn/lstm_cell/bias"].steps == (Add(value=-0.8, axis=0, start=3, stop=6), SWAP4)
    assert m["rnn/lstm_cell/bias"].reason.startswith(
        "converter lstm: Keras i,f,c,o -> TF1 gates i,j,f,o; kernel = concat(kernel, "
        "recurrent_kernel) rows; forget_bias 0.8 subtracted from bias"
    )


def test_gru_both_directions() -> None:
    tf1 = tf1_gru("rnn/multi_rnn_cell/cell_0/gru_cell", 39, 120)
    k = keras_cell("gru/gru_cell", 39, 120, 3)
    forward = by_target(propose(tf1, k))
    assert forward["gru/gru_cell/kernel"].sources == (
        "rnn/multi_rnn_cell/cell_0/gru_cell/gates/kernel",
        "rnn/multi_rnn_cell/cell_0/gru_cell/candidate/kernel",
    )
    assert forward["gru/gru_cell/kernel"].steps == (
        Concat(axis=1),
        Slice(axis=0, start=0, stop=39),
        SWAP3,
    )
    assert forward["gru/gru_cell/bias"].steps == (Concat(axis=0), SWAP3)
    assert forward["gru/gru_cell/bias"].reason.startswith(
        "converter gru: TF1 gates r,u + candidate -> Keras z,r,h (reset_after=False); kernel split at row 39"
    )
    back = by_target(propose(k, tf1))
    gates = back["rnn/multi_rnn_cell/cell_0/gru_cell/gates/kernel"]
    assert gates.steps == (Concat(axis=0), Slice(axis=1, start=0, stop=240), SWAP2)
    cand_bias = back["rnn/multi_rnn_cell/cell_0/gru_cell/candidate/bias"]
    assert (cand_bias.sources, cand_bias.steps) == (
        ("gru/gru_cell/bias",),
        (Slice(axis=0, start=240, stop=360),),
    )


def test_gru_reset_after_target_is_refused_with_the_fix() -> None:
    target = [*keras_cell("gru/gru_cell", 3, 4, 3)[:2], VarSpec("gru/gru_cell/bias", (2, 12))]
    result = propose(tf1_gru("rnn/gru_cell", 3, 4), target)
    assert result.matches == []
    assert sorted(u.target for u in result.unmatched) == [
        "gru/gru_cell/bias", "gru/gru_cell/kernel", "gru/gru_cell/recurrent_kernel",
    ]  # fmt: skip
    why = result.unmatched[0].why
    assert why.startswith(
        "the model's Keras GRU cell 'gru/gru_cell' (in 3, h 4) was built with reset_after=True"
    )
    assert why.endswith("use keras.layers.GRU(..., reset_after=False)")
    assert next(c.name for c in result.unmatched[0].candidates) == "rnn/gru_cell/gates/kernel"


def test_gru_reset_after_source_cannot_become_tf1() -> None:
    source = [*keras_cell("gru/gru_cell", 3, 4, 3)[:2], VarSpec("gru/gru_cell/bias", (2, 12))]
    result = propose(source, tf1_gru("rnn/gru_cell", 3, 4))
    assert result.matches == []
    assert len(result.unmatched) == 4
    assert "reset_after=True" in result.unmatched[0].why


def test_peepholes_and_projection_are_refused() -> None:
    source = [
        *tf1_lstm("rnn/lstm_cell", 3, 4),
        VarSpec("rnn/lstm_cell/w_f_diag", (4,)),
        VarSpec("rnn/lstm_cell/w_i_diag", (4,)),
        VarSpec("rnn/lstm_cell/w_o_diag", (4,)),
    ]
    result = propose(source, keras_cell("lstm/lstm_cell", 3, 4, 4))
    assert result.matches == []
    assert {u.target for u in result.unmatched} == {
        "lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel", "lstm/lstm_cell/bias",
    }  # fmt: skip
    assert result.unmatched[0].why == (
        "the checkpoint's TF1 LSTM cell 'rnn/lstm_cell' (in 3, h 4) has peepholes (w_f_diag, "
        "w_i_diag, w_o_diag); keras.layers.LSTM has no weights for them, so its outputs would "
        "differ. Keep the TF1 cell (tf.compat.v1.nn.rnn_cell.LSTMCell with the same "
        "use_peepholes/num_proj), or retrain without them."
    )


def test_projection_in_tf1_template_is_refused_in_reverse() -> None:
    target = [VarSpec("rnn/lstm_cell/kernel", (3 + 2, 16)), VarSpec("rnn/lstm_cell/bias", (16,)),
              VarSpec("rnn/lstm_cell/projection/kernel", (4, 2))]  # fmt: skip
    result = propose(keras_cell("lstm/lstm_cell", 3, 4, 4), target)
    assert result.matches == []
    assert sorted(u.target for u in result.unmatched) == sorted(t.name for t in target)
    assert "a projection to 2" in result.unmatched[0].why


def test_ambiguous_targets_are_unmatched_with_candidates() -> None:
    source = tf1_lstm("a/lstm_cell", 4, 4) + tf1_lstm("b/lstm_cell", 4, 4)
    result = propose(source, keras_cell("lstm/lstm_cell", 4, 4, 4))
    assert result.matches == []
    assert len(result.unmatched) == 3
    assert {c.name for c in result.unmatched[0].candidates} == {
        "a/lstm_cell/kernel", "a/lstm_cell/bias", "b/lstm_cell/kernel", "b/lstm_cell/bias",
    }  # fmt: skip
    assert result.unmatched[0].why.endswith(
        "the order of the cells does not settle it. Name the pairing with a rule: map one kernel "
        "of each cell to the cell your code means, e.g. map: {a/lstm_cell/kernel: "
        "lstm/lstm_cell/kernel} (the converter carries the cell's other variables)"
    )


def test_dtype_difference_adds_a_cast() -> None:
    source = [
        VarSpec("rnn/lstm_cell/kernel", (5, 12), "float16"),
        VarSpec("rnn/lstm_cell/bias", (12,), "float16"),
    ]
    result = propose(source, keras_cell("lstm/lstm_cell", 2, 3, 4))
    assert by_target(result)["lstm/lstm_cell/kernel"].steps[-1] == Cast(dtype="float32")


def test_simple_rnn_and_plain_layers_are_left_alone() -> None:
    # Azizimj__POS-RNN: a Keras SimpleRNNCell inside a TF1 graph; the engine maps it by name.
    source = [
        *keras_cell("model/simple_rnn_cell", 40, 15, 1),
        VarSpec("model/fully_connected/weights", (15, 35)),
        VarSpec("model/fully_connected/biases", (35,)),
    ]
    target = [
        *keras_cell("simple_rnn/simple_rnn_cell", 40, 15, 1),
        VarSpec("dense/kernel", (15, 35)),
        VarSpec("dense/bias", (35,)),
    ]
    assert propose(source, target) == ConverterResult()


def test_every_target_gets_at_most_one_decision() -> None:
    source = [s for i in range(3) for s in tf1_gru(f"rnn/multi_rnn_cell/cell_{i}/gru_cell", 4, 4)]
    target = [s for n in ("gru", "gru_1", "gru_2") for s in keras_cell(f"{n}/gru_cell", 4, 4, 3)]
    result = propose(source, target)
    decided = [m.target for m in result.matches] + [u.target for u in result.unmatched]
    assert sorted(decided) == sorted(t.name for t in target)


def test_every_match_infers_its_target_shape() -> None:
    from ckptbridge.transforms import infer_shape

    cases = [
        (tf1_lstm("rnn/lstm_cell", 7, 5), keras_cell("lstm/lstm_cell", 7, 5, 4)),
        (keras_cell("lstm/lstm_cell", 7, 5, 4), tf1_lstm("rnn/lstm_cell", 7, 5)),
        (tf1_gru("rnn/gru_cell", 7, 5), keras_cell("gru/gru_cell", 7, 5, 3)),
        (keras_cell("gru/gru_cell", 7, 5, 3), tf1_gru("rnn/gru_cell", 7, 5)),
    ]
    for source, target in cases:
        result = propose(source, target, Options(forget_bias=0.8))
        assert len(result.matches) == len(target)
        for m in result.matches:
            assert infer_shape(m.source_shapes, m.steps) == m.target_shape


def test_import_does_not_pull_in_tensorflow() -> None:
    import subprocess
    import sys

    code = "import sys, ckptbridge.engine.converters; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
