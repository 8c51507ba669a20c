"""TF1 ``BasicLSTMCell`` / ``LSTMCell`` <-> Keras ``LSTM``, exactly.

TF1 computes ``concat([x, h]) @ kernel + bias`` split into gates i, j, f, o and adds
``forget_bias`` to f at run time; Keras computes ``x @ kernel + h @ recurrent_kernel + bias`` split
into i, f, c, o (c is TF1's j) and adds nothing. So: split the kernel's rows at ``in``, swap the
two middle gate blocks, and fold ``forget_bias`` into the f block of the bias (back: concatenate,
swap, subtract).
"""

from __future__ import annotations

from ckptbridge.engine._plan import Match, Unmatched
from ckptbridge.engine.converters._cells import Cell
from ckptbridge.engine.converters._common import fmt, make_match, refuse
from ckptbridge.rules._steps import Add, Concat, PermuteBlocks, Slice, Step

# Keras i, f, c, o <- TF1 i, j, f, o (blocks 0, 2, 1, 3); the permutation is its own inverse.
_SWAP = PermuteBlocks(axis=-1, parts=4, order=(0, 2, 1, 3))


def lstm_to_keras(
    src: Cell, dst: Cell, forget_bias: float, bias_from: str, how: str
) -> list[Match | Unmatched]:
    """Matches for the Keras LSTM cell ``dst`` from the TF1 cell ``src`` (or refusals).

    >>> from ckptbridge.engine._spec import VarSpec
    >>> from ckptbridge.engine.converters._cells import detect_cells
    >>> src, = detect_cells([VarSpec("rnn/lstm_cell/kernel", (12, 16)), VarSpec("rnn/lstm_cell/bias", (16,))])
    >>> dst, = detect_cells([VarSpec("lstm/lstm_cell/kernel", (8, 16)),
    ...     VarSpec("lstm/lstm_cell/recurrent_kernel", (4, 16)), VarSpec("lstm/lstm_cell/bias", (16,))])
    >>> [m.target for m in lstm_to_keras(src, dst, 1.0, "options.forget_bias", "by order")]
    ['lstm/lstm_cell/kernel', 'lstm/lstm_cell/recurrent_kernel', 'lstm/lstm_cell/bias']
    """
    if src.unsupported:
        return list(refuse(dst, _cannot_hold(src), [src]))
    n_in, h = src.input_dim, src.units
    kernel, bias = src.roles["kernel"], src.roles["bias"]
    reason = (
        f"converter lstm: TF1 gates i,j,f,o -> Keras i,f,c,o; kernel split at row {n_in}; "
        f"forget_bias {fmt(forget_bias)} folded into bias ({bias_from}); "
        f"{src.scope} -> {dst.scope}, {how}"
    )
    bias_steps: list[Step] = [_SWAP]
    if forget_bias:
        bias_steps.append(Add(value=forget_bias, axis=0, start=h, stop=2 * h))
    return [
        make_match(
            dst.roles["kernel"], [kernel], [Slice(axis=0, start=0, stop=n_in), _SWAP], reason
        ),
        make_match(
            dst.roles["recurrent_kernel"], [kernel], [Slice(axis=0, start=n_in), _SWAP], reason
        ),
        make_match(dst.roles["bias"], [bias], bias_steps, reason),
    ]


def lstm_to_tf1(
    src: Cell, dst: Cell, forget_bias: float, bias_from: str, how: str
) -> list[Match | Unmatched]:
    """Matches for the TF1 LSTM cell ``dst`` (a template) from the Keras cell ``src``.

    >>> from ckptbridge.engine._spec import VarSpec
    >>> from ckptbridge.engine.converters._cells import detect_cells
    >>> dst, = detect_cells([VarSpec("rnn/lstm_cell/kernel", (12, 16)), VarSpec("rnn/lstm_cell/bias", (16,))])
    >>> src, = detect_cells([VarSpec("lstm/lstm_cell/kernel", (8, 16)),
    ...     VarSpec("lstm/lstm_cell/recurrent_kernel", (4, 16)), VarSpec("lstm/lstm_cell/bias", (16,))])
    >>> [m.sources for m in lstm_to_tf1(src, dst, 1.0, "options.forget_bias", "by order")][0]
    ('lstm/lstm_cell/kernel', 'lstm/lstm_cell/recurrent_kernel')
    """
    if dst.unsupported:
        why = (
            f"the target {dst.label} has {' and '.join(dst.unsupported)}, which a Keras LSTM "
            f"({src.scope!r}) has no weights for. Use a template without them "
            f"(tf.compat.v1.nn.rnn_cell.LSTMCell(use_peepholes=False, num_proj=None))."
        )
        return list(refuse(dst, why, [src]))
    h = src.units
    reason = (
        f"converter lstm: Keras i,f,c,o -> TF1 gates i,j,f,o; kernel = concat(kernel, "
        f"recurrent_kernel) rows; forget_bias {fmt(forget_bias)} subtracted from bias "
        f"({bias_from}); {src.scope} -> {dst.scope}, {how}"
    )
    kernel_srcs = [src.roles["kernel"], src.roles["recurrent_kernel"]]
    bias_steps: list[Step] = []
    if forget_bias:
        bias_steps.append(Add(value=-forget_bias, axis=0, start=h, stop=2 * h))
    bias_steps.append(_SWAP)
    return [
        make_match(dst.roles["kernel"], kernel_srcs, [Concat(axis=0), _SWAP], reason),
        make_match(dst.roles["bias"], [src.roles["bias"]], bias_steps, reason),
    ]


def _cannot_hold(src: Cell) -> str:
    found = " and ".join(src.unsupported)
    return (
        f"the checkpoint's {src.label} has {found}; keras.layers.LSTM has no weights for "
        "them, so its outputs would differ. Keep the TF1 cell (tf.compat.v1.nn.rnn_cell."
        "LSTMCell with the same use_peepholes/num_proj), or retrain without them."
    )
