"""Detection of RNN cells from names and shapes, and pairing of cells across the two sides."""

from __future__ import annotations

from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.converters._cells import detect_cells, natural_key, split_name
from ckptbridge.engine.converters._pairing import pair_cells


def tf1_lstm(scope: str, n_in: int, h: int, pre12: bool = False) -> list[VarSpec]:
    kernel, bias = ("weights", "biases") if pre12 else ("kernel", "bias")
    return [VarSpec(f"{scope}/{kernel}", (n_in + h, 4 * h)), VarSpec(f"{scope}/{bias}", (4 * h,))]


def tf1_gru(scope: str, n_in: int, h: int) -> list[VarSpec]:
    return [
        VarSpec(f"{scope}/gates/kernel", (n_in + h, 2 * h)),
        VarSpec(f"{scope}/gates/bias", (2 * h,)),
        VarSpec(f"{scope}/candidate/kernel", (n_in + h, h)),
        VarSpec(f"{scope}/candidate/bias", (h,)),
    ]


def keras_cell(scope: str, n_in: int, h: int, gates: int, suffix: str = "") -> list[VarSpec]:
    return [
        VarSpec(f"{scope}/kernel{suffix}", (n_in, gates * h)),
        VarSpec(f"{scope}/recurrent_kernel{suffix}", (h, gates * h)),
        VarSpec(f"{scope}/bias{suffix}", (gates * h,)),
    ]


def summary(specs: list[VarSpec]) -> list[tuple[str, str, str, int, int]]:
    cells = detect_cells(specs)
    return sorted((c.kind, c.layout, c.scope, c.input_dim, c.units) for c in cells)


def test_split_name_drops_suffixes() -> None:
    assert split_name("lstm/lstm_cell/kernel:0") == ("lstm/lstm_cell", "kernel")
    assert split_name(
        "model/layer_with_weights-0/cell/recurrent_kernel/.ATTRIBUTES/VARIABLE_VALUE"
    ) == (
        "model/layer_with_weights-0/cell",
        "recurrent_kernel",
    )


def test_natural_key_orders_numbers_and_forward_first() -> None:
    scopes = [
        "rnn/cell_10",
        "rnn/cell_2",
        "b/bw/x",
        "b/fw/x",
        "bd/backward_lstm",
        "bd/forward_lstm",
    ]
    assert sorted(scopes, key=natural_key) == [
        "b/fw/x", "b/bw/x", "bd/forward_lstm", "bd/backward_lstm", "rnn/cell_2", "rnn/cell_10",
    ]  # fmt: skip


def test_detects_tf1_lstm_current_and_pre_1_2_names() -> None:
    specs = tf1_lstm("rnn/basic_lstm_cell", 80, 80, pre12=True) + tf1_lstm("enc/lstm_cell", 3, 5)
    assert summary(specs) == [
        ("lstm", "tf1", "enc/lstm_cell", 3, 5),
        ("lstm", "tf1", "rnn/basic_lstm_cell", 80, 80),
    ]


def test_detects_tf1_basic_rnn_cell() -> None:
    specs = [VarSpec("rnn/basic_rnn_cell/kernel", (7, 4)), VarSpec("rnn/basic_rnn_cell/bias", (4,))]
    assert summary(specs) == [("simple", "tf1", "rnn/basic_rnn_cell", 3, 4)]


def test_detects_tf1_gru_and_keras_cells_of_both_flavours() -> None:
    specs = (
        tf1_gru("rnn/multi_rnn_cell/cell_0/gru_cell", 39, 120)
        + keras_cell("sequential/gru/gru_cell", 39, 120, 3)
        + keras_cell("lstm/lstm_cell", 7, 2, 4, suffix=":0")
        + keras_cell("simple_rnn/simple_rnn_cell", 7, 2, 1)
    )
    assert summary(specs) == [
        ("gru", "keras", "sequential/gru/gru_cell", 39, 120),
        ("gru", "tf1", "rnn/multi_rnn_cell/cell_0/gru_cell", 39, 120),
        ("lstm", "keras", "lstm/lstm_cell", 7, 2),
        ("simple", "keras", "simple_rnn/simple_rnn_cell", 7, 2),
    ]


def test_keras_gru_reset_after_is_flagged() -> None:
    specs = [*keras_cell("gru/gru_cell", 3, 4, 3)[:2], VarSpec("gru/gru_cell/bias", (2, 12))]
    (cell,) = detect_cells(specs)
    assert cell.reset_after
    assert cell.unsupported == ("reset_after=True (bias [2, 3h])",)


def test_peepholes_and_projection_are_found() -> None:
    specs = [
        VarSpec("rnn/lstm_cell/kernel", (3 + 2, 16)),
        VarSpec("rnn/lstm_cell/bias", (16,)),
        VarSpec("rnn/lstm_cell/w_f_diag", (4,)),
        VarSpec("rnn/lstm_cell/w_i_diag", (4,)),
        VarSpec("rnn/lstm_cell/w_o_diag", (4,)),
        VarSpec("rnn/lstm_cell/projection/kernel", (4, 2)),
    ]
    (cell,) = detect_cells(specs)
    assert (cell.input_dim, cell.units) == (3, 4)
    assert cell.unsupported == (
        "peepholes (w_f_diag, w_i_diag, w_o_diag)",
        "a projection to 2 ('rnn/lstm_cell/projection/kernel')",
    )
    assert len(cell.specs) == 6


def test_not_clearly_rnn_cells_are_ignored() -> None:
    specs = [
        VarSpec("dense/kernel", (8, 16)),  # a dense layer with 4h outputs
        VarSpec("dense/bias", (16,)),
        VarSpec("rnn/my_cell/kernel", (8, 16)),  # custom scope, no layer hint
        VarSpec("rnn/my_cell/bias", (16,)),
        VarSpec("rnn/lstm_cell/kernel", (8, 15)),  # shapes do not fit an LSTM
        VarSpec("rnn/lstm_cell/bias", (15,)),
        VarSpec("x/gru_cell/gates/kernel", (8, 8)),  # GRU without candidate
        VarSpec("x/gru_cell/gates/bias", (8,)),
    ]
    assert detect_cells(specs) == []


def test_layer_hint_recognises_a_renamed_cell() -> None:
    specs = [
        VarSpec("rnn/encoder/kernel", (8, 16), layer="LSTMCell"),
        VarSpec("rnn/encoder/bias", (16,), layer="LSTMCell"),
    ]
    assert summary(specs) == [("lstm", "tf1", "rnn/encoder", 4, 4)]


def _pairs(source: list[VarSpec], target: list[VarSpec]) -> list[tuple[str, str, str]]:
    pairs, _ = pair_cells(detect_cells(source), detect_cells(target))
    return [(p.source.scope, p.target.scope, p.how) for p in pairs]


def test_multi_rnn_cell_pairs_with_stacked_layers_in_natural_order() -> None:
    source = [
        s for i in (10, 2, 0, 1) for s in tf1_lstm(f"rnn/multi_rnn_cell/cell_{i}/lstm_cell", 4, 4)
    ]
    target = [
        s
        for n in ("lstm_3", "lstm", "lstm_1", "lstm_2")
        for s in keras_cell(f"{n}/lstm_cell", 4, 4, 4)
    ]
    assert [p[:2] for p in _pairs(source, target)] == [
        ("rnn/multi_rnn_cell/cell_0/lstm_cell", "lstm/lstm_cell"),
        ("rnn/multi_rnn_cell/cell_1/lstm_cell", "lstm_1/lstm_cell"),
        ("rnn/multi_rnn_cell/cell_2/lstm_cell", "lstm_2/lstm_cell"),
        ("rnn/multi_rnn_cell/cell_10/lstm_cell", "lstm_3/lstm_cell"),
    ]


def test_creation_order_beats_names_when_every_cell_has_one() -> None:
    source = [
        VarSpec("b/lstm_cell/kernel", (8, 16), order=0),
        VarSpec("b/lstm_cell/bias", (16,), order=1),
        VarSpec("a/lstm_cell/kernel", (8, 16), order=2),
        VarSpec("a/lstm_cell/bias", (16,), order=3),
    ]
    target = keras_cell("lstm/lstm_cell", 4, 4, 4) + keras_cell("lstm_1/lstm_cell", 4, 4, 4)
    assert [p[:2] for p in _pairs(source, target)] == [
        ("b/lstm_cell", "lstm/lstm_cell"),
        ("a/lstm_cell", "lstm_1/lstm_cell"),
    ]


def test_bidirectional_pairs_forward_with_forward() -> None:
    source = [
        s
        for d in ("bw", "fw")
        for i in (0, 1)
        for s in tf1_lstm(
            f"bidirectional_rnn/{d}/multi_rnn_cell/cell_{i}/lstm_cell", 50 if i == 0 else 64, 64
        )
    ]
    target = [
        s
        for d in ("backward_rnn", "forward_rnn")
        for c, n_in in (("lstm_cell", 50), ("lstm_cell_1", 64))
        for s in keras_cell(f"bidirectional/{d}/stacked_rnn_cells/{c}", n_in, 64, 4)
    ]
    assert [p[:2] for p in _pairs(source, target)] == [
        ("bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell", "bidirectional/forward_rnn/stacked_rnn_cells/lstm_cell"),
        ("bidirectional_rnn/fw/multi_rnn_cell/cell_1/lstm_cell", "bidirectional/forward_rnn/stacked_rnn_cells/lstm_cell_1"),
        ("bidirectional_rnn/bw/multi_rnn_cell/cell_0/lstm_cell", "bidirectional/backward_rnn/stacked_rnn_cells/lstm_cell"),
        ("bidirectional_rnn/bw/multi_rnn_cell/cell_1/lstm_cell", "bidirectional/backward_rnn/stacked_rnn_cells/lstm_cell_1"),
    ]  # fmt: skip


def test_shapes_pair_when_order_does_not_fit() -> None:
    source = tf1_lstm("rnn/lstm_cell", 3, 8) + tf1_gru("rnn/gru_cell", 3, 8)
    target = keras_cell("x/lstm_cell", 9, 8, 4) + keras_cell("y/lstm_cell", 3, 8, 4)
    assert _pairs(source, target) == [
        ("rnn/lstm_cell", "y/lstm_cell", "by shape (the only cell with this in and h)")
    ]


def test_equal_candidates_are_ambiguous_not_guessed() -> None:
    source = tf1_lstm("a/lstm_cell", 4, 4) + tf1_lstm("b/lstm_cell", 4, 4)
    target = keras_cell("lstm/lstm_cell", 4, 4, 4)
    pairs, ambiguous = pair_cells(detect_cells(source), detect_cells(target))
    assert pairs == []
    assert [a.target.scope for a in ambiguous] == ["lstm/lstm_cell"]
    assert ambiguous[0].why.startswith("2 source cells fit Keras LSTM cell 'lstm/lstm_cell'")


def test_one_cell_for_two_targets_is_ambiguous_outside_multi_rnn_cell() -> None:
    source = tf1_lstm("rnn/lstm_cell", 4, 4)
    target = keras_cell("lstm/lstm_cell", 4, 4, 4) + keras_cell("lstm_1/lstm_cell", 4, 4, 4)
    pairs, ambiguous = pair_cells(detect_cells(source), detect_cells(target))
    assert pairs == []
    assert len(ambiguous) == 2


def test_shared_multi_rnn_cell_feeds_every_layer() -> None:
    source = tf1_lstm("rnn/multi_rnn_cell/cell_0/basic_lstm_cell", 128, 128)
    target = keras_cell("lstm/lstm_cell", 128, 128, 4) + keras_cell("lstm_1/lstm_cell", 128, 128, 4)
    hows = {p[2] for p in _pairs(source, target)}
    assert hows == {
        "one TF1 cell reused by all 2 layers (MultiRNNCell([cell] * 2) keeps only cell_0)"
    }


def test_same_layout_on_both_sides_is_left_to_the_engine() -> None:
    cells = keras_cell("model/simple_rnn_cell", 40, 15, 1) + keras_cell("lstm/lstm_cell", 4, 4, 4)
    assert _pairs(cells, cells) == []
    tf1 = tf1_lstm("rnn/lstm_cell", 4, 4)
    assert _pairs(tf1, tf1) == []
