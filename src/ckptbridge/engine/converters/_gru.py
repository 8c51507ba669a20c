"""TF1 ``GRUCell`` <-> Keras ``GRU(reset_after=False)``, exactly.

TF1 keeps ``gates/kernel`` [in+h, 2h] (r, u) and ``candidate/kernel`` [in+h, h] over
``concat([x, h])``; Keras keeps ``kernel`` [in, 3h] and ``recurrent_kernel`` [h, 3h] in z, r, h
order (z is TF1's u) and applies the reset gate before the recurrent matmul only when
``reset_after=False``. So: concatenate gates and candidate column-wise, split rows at ``in``, swap
the first two blocks (back: concatenate rows, take columns, swap).
"""

from __future__ import annotations

from ckptbridge.engine._plan import Match, Unmatched
from ckptbridge.engine.converters._cells import Cell
from ckptbridge.engine.converters._common import make_match, refuse
from ckptbridge.rules._steps import Concat, PermuteBlocks, Slice

_SWAP3 = PermuteBlocks(axis=-1, parts=3, order=(1, 0, 2))  # Keras z, r, h <- TF1 r, u, c
_SWAP2 = PermuteBlocks(axis=-1, parts=2, order=(1, 0))  # TF1 r, u <- Keras z, r


def gru_to_keras(src: Cell, dst: Cell, how: str) -> list[Match | Unmatched]:
    """Matches for the Keras GRU cell ``dst`` from the TF1 ``GRUCell`` ``src`` (or refusals).

    >>> from ckptbridge.engine._spec import VarSpec
    >>> from ckptbridge.engine.converters._cells import detect_cells
    >>> src, = detect_cells([VarSpec("rnn/gru_cell/gates/kernel", (12, 8)),
    ...     VarSpec("rnn/gru_cell/gates/bias", (8,)), VarSpec("rnn/gru_cell/candidate/kernel", (12, 4)),
    ...     VarSpec("rnn/gru_cell/candidate/bias", (4,))])
    >>> dst, = detect_cells([VarSpec("gru/gru_cell/kernel", (8, 12)),
    ...     VarSpec("gru/gru_cell/recurrent_kernel", (4, 12)), VarSpec("gru/gru_cell/bias", (12,))])
    >>> [m.sources for m in gru_to_keras(src, dst, "by order")][2]
    ('rnn/gru_cell/gates/bias', 'rnn/gru_cell/candidate/bias')
    """
    if dst.reset_after:
        why = (
            f"the model's {dst.label} was built with reset_after=True (bias "
            f"{list(dst.roles['bias'].shape)}), but the checkpoint's {src.label} applies the "
            "reset gate before the recurrent matmul, which only reset_after=False reproduces: "
            "use keras.layers.GRU(..., reset_after=False)"
        )
        return list(refuse(dst, why, [src]))
    n_in = src.input_dim
    reason = (
        f"converter gru: TF1 gates r,u + candidate -> Keras z,r,h (reset_after=False); "
        f"kernel split at row {n_in}; {src.scope} -> {dst.scope}, {how}"
    )
    kernels = [src.roles["gates_kernel"], src.roles["candidate_kernel"]]
    biases = [src.roles["gates_bias"], src.roles["candidate_bias"]]
    return [
        make_match(
            dst.roles["kernel"],
            kernels,
            [Concat(axis=1), Slice(axis=0, start=0, stop=n_in), _SWAP3],
            reason,
        ),
        make_match(
            dst.roles["recurrent_kernel"],
            kernels,
            [Concat(axis=1), Slice(axis=0, start=n_in), _SWAP3],
            reason,
        ),
        make_match(dst.roles["bias"], biases, [Concat(axis=0), _SWAP3], reason),
    ]


def gru_to_tf1(src: Cell, dst: Cell, how: str) -> list[Match | Unmatched]:
    """Matches for the TF1 ``GRUCell`` ``dst`` (a template) from the Keras GRU cell ``src``.

    >>> from ckptbridge.engine._spec import VarSpec
    >>> from ckptbridge.engine.converters._cells import detect_cells
    >>> dst, = detect_cells([VarSpec("rnn/gru_cell/gates/kernel", (12, 8)),
    ...     VarSpec("rnn/gru_cell/gates/bias", (8,)), VarSpec("rnn/gru_cell/candidate/kernel", (12, 4)),
    ...     VarSpec("rnn/gru_cell/candidate/bias", (4,))])
    >>> src, = detect_cells([VarSpec("gru/gru_cell/kernel", (8, 12)),
    ...     VarSpec("gru/gru_cell/recurrent_kernel", (4, 12)), VarSpec("gru/gru_cell/bias", (12,))])
    >>> len(gru_to_tf1(src, dst, "by order"))
    4
    """
    if src.reset_after:
        why = (
            f"the source {src.label} was built with reset_after=True, which a TF1 GRUCell "
            f"({dst.scope!r}) cannot compute: it resets before the recurrent matmul. Train "
            "the Keras model with keras.layers.GRU(..., reset_after=False) to convert it."
        )
        return list(refuse(dst, why, [src]))
    h = src.units
    reason = (
        f"converter gru: Keras z,r,h -> TF1 gates r,u + candidate; kernel = concat(kernel, "
        f"recurrent_kernel) rows; {src.scope} -> {dst.scope}, {how}"
    )
    kernels = [src.roles["kernel"], src.roles["recurrent_kernel"]]
    bias = [src.roles["bias"]]
    roles = dst.roles
    return [
        make_match(
            roles["gates_kernel"],
            kernels,
            [Concat(axis=0), Slice(axis=1, start=0, stop=2 * h), _SWAP2],
            reason,
        ),
        make_match(roles["gates_bias"], bias, [Slice(axis=0, start=0, stop=2 * h), _SWAP2], reason),
        make_match(
            roles["candidate_kernel"],
            kernels,
            [Concat(axis=0), Slice(axis=1, start=2 * h, stop=3 * h)],
            reason,
        ),
        make_match(roles["candidate_bias"], bias, [Slice(axis=0, start=2 * h, stop=3 * h)], reason),
    ]
