"""The engine's hook: propose matches for RNN cells and attention blocks before name and
structure matching."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ckptbridge._errors import RulesError
from ckptbridge.engine._plan import Match, Unmatched
from ckptbridge.engine._spec import GraphConstant, VarSpec
from ckptbridge.engine.converters._attention import propose_attention
from ckptbridge.engine.converters._cells import Cell, detect_cells
from ckptbridge.engine.converters._common import fmt, refuse
from ckptbridge.engine.converters._gru import gru_to_keras, gru_to_tf1
from ckptbridge.engine.converters._lstm import lstm_to_keras, lstm_to_tf1
from ckptbridge.engine.converters._pairing import Pair, Pin, pair_cells
from ckptbridge.engine.converters._simple import simple_to_keras, simple_to_tf1
from ckptbridge.rules._options import Options


@dataclass
class ConverterResult:
    """What the converters decided: targets they matched, and targets they refuse (with why).

    Targets in neither list are left to the engine. A source may feed several targets.
    """

    matches: list[Match] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def propose(
    source: Sequence[VarSpec],
    target: Sequence[VarSpec],
    options: Options | None = None,
    pins: Sequence[Pin] = (),
) -> ConverterResult:
    """Match RNN cells and attention blocks across the TF1/Keras divide, in either direction.

    Pure: no TF, no I/O. Attention (``converters._attention``): TF1 ``[H, H]`` query/key/value/
    output dense kernels <-> Keras ``MultiHeadAttention``'s ``EinsumDense`` kernels, pure reshapes.

    TF1 cells (``BasicLSTMCell``, ``LSTMCell``, ``GRUCell``, ``BasicRNNCell``, in ``MultiRNNCell``
    or ``bidirectional_rnn``) on one side are paired with Keras ``LSTM`` / ``GRU`` / ``SimpleRNN``
    cells on the other (a Keras cell on both sides is left to name matching);
    each match carries the steps (slice, concat, gate reordering, forget bias) that make the
    outputs identical. The forget bias of a TF1 LSTM cell, first that applies:
    ``options.forget_bias_per_key`` (regexes fullmatched against the TF1 cell's scope
    ``rnn/basic_lstm_cell`` or any of its keys ``rnn/basic_lstm_cell/kernel``, whichever side the
    TF1 cell is on; the first that matches wins), ``options.forget_bias`` when the rules set it,
    the value the cell's graph adds (``VarSpec.constants`` of its bias, read from the ``.meta``),
    else TensorFlow's default 1.0, assumed and said so in ``ConverterResult.notes``. A graph that
    adds several values to one cell is a refusal, not a guess. ``pins`` (:func:`cell_pins`, from
    the rules' ``map``) name pairings of cells that order, shape and names cannot settle.

    >>> src = [VarSpec("rnn/basic_lstm_cell/weights", (160, 320)),
    ...        VarSpec("rnn/basic_lstm_cell/biases", (320,))]
    >>> dst = [VarSpec("lstm/lstm_cell/kernel", (80, 320)),
    ...        VarSpec("lstm/lstm_cell/recurrent_kernel", (80, 320)),
    ...        VarSpec("lstm/lstm_cell/bias", (320,))]
    >>> result = propose(src, dst, Options(forget_bias=0.8))
    >>> result.matches[0].reason.split(" (")[0]
    'converter lstm: TF1 gates i,j,f,o -> Keras i,f,c,o; kernel split at row 80; forget_bias 0.8 folded into bias'
    """
    options = options or Options()
    patterns = _compile(options.forget_bias_per_key)
    pairs, ambiguous = pair_cells(detect_cells(source), detect_cells(target), pins)
    result = ConverterResult()
    for amb in ambiguous:
        result.unmatched.extend(refuse(amb.target, amb.why, amb.candidates))
    assumed: list[str] = []
    for pair in pairs:
        for item in _convert(pair, options, patterns, result.notes, assumed):
            if isinstance(item, Match):
                result.matches.append(item)
            else:
                result.unmatched.append(item)
    if assumed:
        result.notes.append(_assumed_note(assumed))
    _add_attention(result, source, target)
    return result


def _add_attention(
    result: ConverterResult, source: Sequence[VarSpec], target: Sequence[VarSpec]
) -> None:
    """Attention blocks (``converters._attention``): targets no RNN converter decided."""
    decided = {m.target for m in result.matches} | {u.target for u in result.unmatched}
    matches, refused = propose_attention(source, target)
    result.matches.extend(m for m in matches if m.target not in decided)
    result.unmatched.extend(u for u in refused if u.target not in decided)


def _convert(
    pair: Pair,
    options: Options,
    patterns: list[tuple[re.Pattern[str], str, float]],
    notes: list[str],
    assumed: list[str],
) -> list[Match | Unmatched]:
    src, dst = pair.source, pair.target
    tf1 = src if src.layout == "tf1" else dst
    if src.kind == "simple":
        return (
            simple_to_keras(src, dst, pair.how)
            if src.layout == "tf1"
            else simple_to_tf1(src, dst, pair.how)
        )
    if src.kind == "gru":
        return (
            gru_to_keras(src, dst, pair.how)
            if src.layout == "tf1"
            else gru_to_tf1(src, dst, pair.how)
        )
    clip = [c for c in tf1.roles["bias"].constants if c.name == "cell_clip"]
    if clip:
        return list(refuse(dst, _clip_refusal(tf1, clip[0]), [src]))
    decided = _forget_bias(tf1, options, patterns)
    if isinstance(decided, str):
        return list(refuse(dst, decided, [src]))
    value, origin, note = decided
    if note:
        notes.append(note)
    if origin == _ASSUMED:
        assumed.append(tf1.scope)
    if src.layout == "tf1":
        return lstm_to_keras(src, dst, value, origin, pair.how)
    return lstm_to_tf1(src, dst, value, origin, pair.how)


def _compile(per_key: dict[str, float]) -> list[tuple[re.Pattern[str], str, float]]:
    compiled = []
    for pattern, value in per_key.items():
        try:
            compiled.append((re.compile(pattern), pattern, value))
        except re.error as exc:
            raise RulesError(
                f"options.forget_bias_per_key: {pattern!r} is not a valid regular expression "
                f"({exc}); expected a pattern that fullmatches a TF1 cell scope such as "
                "'rnn/basic_lstm_cell' or one of its keys. Fix or escape the pattern."
            ) from exc
    return compiled


_ASSUMED = "TensorFlow's default, assumed: no .meta recorded it"


def _clip_refusal(tf1: Cell, clip: GraphConstant) -> str:
    """``LSTMCell(cell_clip=C)`` clips the cell state, which keras.layers.LSTM never does."""
    bound = f" to [-{fmt(clip.value)}, {fmt(clip.value)}]" if clip.value == clip.value else ""
    return (
        f"the checkpoint's {tf1.label} clips its cell state{bound} ({clip.node} in its .meta: "
        "LSTMCell(cell_clip=...)); keras.layers.LSTM has no cell clipping, so its outputs would "
        "differ. Keep the TF1 cell (tf.compat.v1.nn.rnn_cell.LSTMCell with the same cell_clip), "
        "or retrain without it."
    )


def _forget_bias(
    tf1: Cell, options: Options, patterns: list[tuple[re.Pattern[str], str, float]]
) -> tuple[float, str, str | None] | str:
    """(value, where it comes from, a note or None), or why the cell is refused."""
    graph = [c for c in tf1.roles["bias"].constants if c.name == "forget_bias"]
    keys = [tf1.scope, *(spec.name for spec in tf1.roles.values())]
    chosen: tuple[float, str] | None = None
    for rx, pattern, value in patterns:
        if any(rx.fullmatch(key) for key in keys):
            chosen = value, f"options.forget_bias_per_key[{pattern!r}]"
            break
    if chosen is None and options.forget_bias is not None:
        chosen = options.forget_bias, "options.forget_bias"
    if chosen is not None:
        differs = [c for c in graph if c.value != chosen[0]]
        note = (
            f"{tf1.label}: forget_bias {fmt(chosen[0])} from {chosen[1]}, although its .meta "
            f"graph adds {fmt(differs[0].value)} ({differs[0].node}); the rules win"
            if differs
            else None
        )
        return chosen[0], chosen[1], note
    if len(graph) > 1:
        found = ", ".join(f"{fmt(c.value)} ({c.node})" for c in graph)
        return (
            f"the .meta graph adds different forget biases to {tf1.label}: {found}; which one "
            f"its outputs used is unknown. Set it: options: {{forget_bias_per_key: "
            f"{{{tf1.scope}: VALUE}}}}"
        )
    if graph:
        return graph[0].value, f".meta: {graph[0].node}", None
    return 1.0, _ASSUMED, None


def _assumed_note(scopes: list[str]) -> str:
    shown = ", ".join(repr(s) for s in scopes[:5]) + (
        f" and {len(scopes) - 5} more" if len(scopes) > 5 else ""
    )
    cells = "cell" if len(scopes) == 1 else "cells"
    return (
        f"forget_bias 1.0 assumed (TensorFlow's default) for TF1 LSTM {cells} {shown}: no .meta "
        "graph beside the checkpoint records the value added to the forget gate. If the TF1 code "
        "passed another forget_bias, set options.forget_bias (or options.forget_bias_per_key: "
        f"{{{scopes[0]}: VALUE}}); outputs differ otherwise"
    )
