"""The engine's hook: propose matches for RNN cells and attention blocks before name and
structure matching."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ckptbridge._errors import RulesError
from ckptbridge.engine._plan import Match, Unmatched
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.converters._attention import propose_attention
from ckptbridge.engine.converters._cells import Cell, detect_cells
from ckptbridge.engine.converters._common import refuse
from ckptbridge.engine.converters._gru import gru_to_keras, gru_to_tf1
from ckptbridge.engine.converters._lstm import lstm_to_keras, lstm_to_tf1
from ckptbridge.engine.converters._pairing import Pair, pair_cells
from ckptbridge.engine.converters._simple import simple_to_keras, simple_to_tf1
from ckptbridge.rules._model import Options


@dataclass
class ConverterResult:
    """What the converters decided: targets they matched, and targets they refuse (with why).

    Targets in neither list are left to the engine. A source may feed several targets.
    """

    matches: list[Match] = field(default_factory=list)
    unmatched: list[Unmatched] = field(default_factory=list)


def propose(
    source: Sequence[VarSpec], target: Sequence[VarSpec], options: Options | None = None
) -> ConverterResult:
    """Match RNN cells and attention blocks across the TF1/Keras divide, in either direction.

    Pure: no TF, no I/O. Attention (``converters._attention``): TF1 ``[H, H]`` query/key/value/
    output dense kernels <-> Keras ``MultiHeadAttention``'s ``EinsumDense`` kernels, pure reshapes.

    TF1 cells (``BasicLSTMCell``, ``LSTMCell``, ``GRUCell``, ``BasicRNNCell``, in ``MultiRNNCell``
    or ``bidirectional_rnn``) on one side are paired with Keras ``LSTM`` / ``GRU`` / ``SimpleRNN``
    cells on the other (a Keras cell on both sides is left to name matching);
    each match carries the steps (slice, concat, gate reordering, forget bias) that make the
    outputs identical. ``options.forget_bias_per_key``: regexes fullmatched against the TF1
    cell's scope (``rnn/basic_lstm_cell``) or any of its keys (``rnn/basic_lstm_cell/kernel``),
    whichever side the TF1 cell is on; the first that matches wins, else ``options.forget_bias``.

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
    pairs, ambiguous = pair_cells(detect_cells(source), detect_cells(target))
    result = ConverterResult()
    for amb in ambiguous:
        result.unmatched.extend(refuse(amb.target, amb.why, amb.candidates))
    for pair in pairs:
        for item in _convert(pair, options, patterns):
            if isinstance(item, Match):
                result.matches.append(item)
            else:
                result.unmatched.append(item)
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
    pair: Pair, options: Options, patterns: list[tuple[re.Pattern[str], str, float]]
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
    value, origin = _forget_bias(tf1, options, patterns)
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


def _forget_bias(
    tf1: Cell, options: Options, patterns: list[tuple[re.Pattern[str], str, float]]
) -> tuple[float, str]:
    keys = [tf1.scope, *(spec.name for spec in tf1.roles.values())]
    for rx, pattern, value in patterns:
        if any(rx.fullmatch(key) for key in keys):
            return value, f"options.forget_bias_per_key[{pattern!r}]"
    return options.forget_bias, "options.forget_bias"
