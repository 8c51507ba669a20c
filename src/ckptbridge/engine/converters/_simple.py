"""TF1 ``BasicRNNCell`` <-> Keras ``SimpleRNN``, exactly.

TF1 computes ``tanh(concat([x, h]) @ kernel + bias)``; Keras ``tanh(x @ kernel + h @
recurrent_kernel + bias)``. So the kernel's rows split at ``in`` (back: concatenate); the bias is
the same. A Keras ``SimpleRNNCell`` used inside a TF1 graph already has the Keras layout and is
not touched here.
"""

from __future__ import annotations

from ckptbridge.engine._plan import Match, Unmatched
from ckptbridge.engine.converters._cells import Cell
from ckptbridge.engine.converters._common import make_match
from ckptbridge.rules._steps import Concat, Slice


def simple_to_keras(src: Cell, dst: Cell, how: str) -> list[Match | Unmatched]:
    """Matches for the Keras ``SimpleRNNCell`` ``dst`` from the TF1 ``BasicRNNCell`` ``src``.

    >>> from ckptbridge.engine._spec import VarSpec
    >>> from ckptbridge.engine.converters._cells import detect_cells
    >>> src, = detect_cells([VarSpec("rnn/basic_rnn_cell/kernel", (7, 4)),
    ...     VarSpec("rnn/basic_rnn_cell/bias", (4,))])
    >>> dst, = detect_cells([VarSpec("simple_rnn/simple_rnn_cell/kernel", (3, 4)),
    ...     VarSpec("simple_rnn/simple_rnn_cell/recurrent_kernel", (4, 4)),
    ...     VarSpec("simple_rnn/simple_rnn_cell/bias", (4,))])
    >>> [m.steps for m in simple_to_keras(src, dst, "by order")][1]
    (Slice(op='slice', axis=0, start=3, stop=None, step=None),)
    """
    n_in = src.input_dim
    reason = (
        f"converter simple_rnn: TF1 BasicRNNCell -> Keras SimpleRNN; kernel split at row {n_in}; "
        f"{src.scope} -> {dst.scope}, {how}"
    )
    kernel = src.roles["kernel"]
    return [
        make_match(dst.roles["kernel"], [kernel], [Slice(axis=0, start=0, stop=n_in)], reason),
        make_match(dst.roles["recurrent_kernel"], [kernel], [Slice(axis=0, start=n_in)], reason),
        make_match(dst.roles["bias"], [src.roles["bias"]], [], reason),
    ]


def simple_to_tf1(src: Cell, dst: Cell, how: str) -> list[Match | Unmatched]:
    """Matches for the TF1 ``BasicRNNCell`` ``dst`` (a template) from the Keras cell ``src``.

    >>> from ckptbridge.engine._spec import VarSpec
    >>> from ckptbridge.engine.converters._cells import detect_cells
    >>> dst, = detect_cells([VarSpec("rnn/basic_rnn_cell/kernel", (7, 4)),
    ...     VarSpec("rnn/basic_rnn_cell/bias", (4,))])
    >>> src, = detect_cells([VarSpec("simple_rnn/simple_rnn_cell/kernel", (3, 4)),
    ...     VarSpec("simple_rnn/simple_rnn_cell/recurrent_kernel", (4, 4)),
    ...     VarSpec("simple_rnn/simple_rnn_cell/bias", (4,))])
    >>> simple_to_tf1(src, dst, "by order")[0].steps
    (Concat(op='concat', axis=0),)
    """
    reason = (
        "converter simple_rnn: Keras SimpleRNN -> TF1 BasicRNNCell; kernel = concat(kernel, "
        f"recurrent_kernel) rows; {src.scope} -> {dst.scope}, {how}"
    )
    kernels = [src.roles["kernel"], src.roles["recurrent_kernel"]]
    return [
        make_match(dst.roles["kernel"], kernels, [Concat(axis=0)], reason),
        make_match(dst.roles["bias"], [src.roles["bias"]], [], reason),
    ]
