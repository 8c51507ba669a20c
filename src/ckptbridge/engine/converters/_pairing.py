"""Pair the cells of one side with the cells of the other: by order, confirmed by shapes.

Rules, for each cell kind (LSTM, GRU, simple RNN), with source and target cells sorted by creation order
(``VarSpec.order`` when every cell has one, else the natural order of their scopes, forward
before backward):

0. a ``map`` rule that pairs a variable of one cell with a variable of the other (``map:
   {encoder/rnn/lstm_cell/kernel: lstm_1/lstm_cell/kernel}``) pairs the two cells (:class:`Pin`);
1. same number of cells, the order known on both sides (creation orders, or scopes that differ only
   by TensorFlow's numbering or fw/bw, never just alphabetically; where the numbers in a side's
   names are not creation order, ``VarSpec.counted`` False, only by fw/bw), and every positional
   pair agrees on (in, h): pair by order;
2. one source cell ``.../multi_rnn_cell/cell_0`` and several targets that all fit it: the cell
   object was reused by every layer (``MultiRNNCell([cell] * n)``), so it feeds them all;
3. otherwise a target and a source that fit only each other are paired by shape; among cells
   that fit several, a target and a source whose scopes share the words that set each apart from
   its rivals (``encoder`` in ``encoder/rnn/lstm_cell`` and ``model/encoder/lstm_cell``; numbers
   count only where they are creation order) are paired by name; any other target that several
   sources fit (or that shares its only source with another target) is ambiguous, and is
   reported (with at most three candidates and the rule that settles it), never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ckptbridge.engine._names import unnumbered_scope
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.converters._cells import Cell, detect_cells, order_known


@dataclass(frozen=True, eq=False)
class Pair:
    """``source`` cell feeds ``target`` cell; ``how`` says which pairing rule decided it."""

    source: Cell
    target: Cell
    how: str


@dataclass(frozen=True, eq=False)
class Ambiguous:
    """``target`` fits several source cells (``candidates``) equally well."""

    target: Cell
    candidates: tuple[Cell, ...]
    why: str


@dataclass(frozen=True)
class Pin:
    """A ``map`` rule naming a pairing: the cell holding ``source`` feeds the cell holding ``target``.

    ``rule`` is how the plan cites it (``"map[encoder/rnn/lstm_cell/kernel]"``).
    """

    source: str
    target: str
    rule: str


def cell_pins(
    sources: Sequence[VarSpec], targets: Sequence[VarSpec], pairs: Mapping[str, str]
) -> list[Pin]:
    """The ``map`` pairs (source key -> target name, as resolved) that name a pairing of RNN cells.

    A pair counts when its source is a variable of a cell on one side and its target a variable
    of a cell of the same kind and the other layout (TF1 / Keras) whose shape differs, so that
    the pair alone could not be restored: the converter carries the cells' other variables.

    >>> src = [VarSpec("enc/rnn/lstm_cell/kernel", (12, 16)), VarSpec("enc/rnn/lstm_cell/bias", (16,))]
    >>> dst = [VarSpec(f"lstm/lstm_cell/{leaf}", shape) for leaf, shape in
    ...        (("kernel", (8, 16)), ("recurrent_kernel", (4, 16)), ("bias", (16,)))]
    >>> cell_pins(src, dst, {"enc/rnn/lstm_cell/kernel": "lstm/lstm_cell/kernel"})[0].rule
    'map[enc/rnn/lstm_cell/kernel]'
    """
    if not pairs:
        return []
    src_cells, dst_cells = _by_variable(detect_cells(sources)), _by_variable(detect_cells(targets))
    pins = []
    for src_key, tgt_name in pairs.items():
        s, t = src_cells.get(src_key), dst_cells.get(tgt_name)
        if s is None or t is None or s[0].kind != t[0].kind or s[0].layout == t[0].layout:
            continue
        if s[1].shape != t[1].shape:
            pins.append(Pin(src_key, tgt_name, f"map[{src_key}]"))
    return pins


def _by_variable(cells: Sequence[Cell]) -> dict[str, tuple[Cell, VarSpec]]:
    return {spec.name: (c, spec) for c in cells for spec in c.roles.values()}


def pair_cells(
    sources: Sequence[Cell], targets: Sequence[Cell], pins: Sequence[Pin] = ()
) -> tuple[list[Pair], list[Ambiguous]]:
    """Pair cells of opposite layouts and equal kind; return the pairs and the ambiguous targets.

    >>> from ckptbridge.engine._spec import VarSpec
    >>> from ckptbridge.engine.converters._cells import detect_cells
    >>> src = detect_cells([VarSpec("rnn/lstm_cell/kernel", (12, 16)), VarSpec("rnn/lstm_cell/bias", (16,))])
    >>> dst = detect_cells([VarSpec("lstm/lstm_cell/kernel", (8, 16)),
    ...     VarSpec("lstm/lstm_cell/recurrent_kernel", (4, 16)), VarSpec("lstm/lstm_cell/bias", (16,))])
    >>> [p.how for p in pair_cells(src, dst)[0]]
    ['by order (cell 1 of 1)']
    """
    pairs, ambiguous, sources, targets = _pinned(sources, targets, pins)
    for kind in ("lstm", "gru", "simple"):
        for layout in ("tf1", "keras"):
            src = _sorted([c for c in sources if c.kind == kind and c.layout == layout])
            dst = _sorted([c for c in targets if c.kind == kind and c.layout != layout])
            if src and dst:
                p, a = _pair_kind(src, dst)
                pairs.extend(p)
                ambiguous.extend(a)
    return pairs, ambiguous


def _pinned(
    sources: Sequence[Cell], targets: Sequence[Cell], pins: Sequence[Pin]
) -> tuple[list[Pair], list[Ambiguous], list[Cell], list[Cell]]:
    """Pairs the ``map`` rules name (or refusals: cells that do not fit, or rules that name
    several source cells for one target cell), and the cells left to the other rules."""
    src_of, dst_of = _by_variable(sources), _by_variable(targets)
    named: dict[int, tuple[Cell, list[tuple[Cell, Pin]]]] = {}
    for pin in pins:
        held_s, held_t = src_of.get(pin.source), dst_of.get(pin.target)
        if held_s is not None and held_t is not None:
            named.setdefault(id(held_t[0]), (held_t[0], []))[1].append((held_s[0], pin))
    pairs: list[Pair] = []
    refused: list[Ambiguous] = []
    taken: set[int] = set()
    for t, found in named.values():
        cells = list({id(s): s for s, _ in found}.values())
        taken.update({id(t), *(id(s) for s in cells)})
        s, pin = found[0]
        if len(cells) > 1:
            rules = " and ".join(f"rule {p.rule}" for _, p in found)
            why = (
                f"{rules} pair it with different cells ({_scopes(cells)}); keep the one your "
                "code means"
            )
            refused.append(Ambiguous(t, tuple(cells[:_SHOWN]), why))
        elif fits(s, t):
            pairs.append(Pair(s, t, f"named by rule {pin.rule}"))
        else:
            why = (
                f"rule {pin.rule} pairs it with {s.label}, which does not fit (input width and "
                "units must be equal); map a variable of a cell that fits, or fix the model"
            )
            refused.append(Ambiguous(t, (s,), why))
    rest_src = [c for c in sources if id(c) not in taken]
    return pairs, refused, rest_src, [c for c in targets if id(c) not in taken]


def fits(source: Cell, target: Cell) -> bool:
    """Same kind, same input width and same number of units."""
    return (
        source.kind == target.kind
        and source.input_dim == target.input_dim
        and source.units == target.units
    )


def _sorted(cells: list[Cell]) -> list[Cell]:
    if cells and all(c.order is not None for c in cells):
        return sorted(cells, key=lambda c: (c.order, c.sort_key))
    return sorted(cells, key=lambda c: c.sort_key)


def _pair_kind(src: list[Cell], dst: list[Cell]) -> tuple[list[Pair], list[Ambiguous]]:
    n = len(dst)
    if (
        len(src) == n
        and _order_known(src)
        and _order_known(dst)
        and all(fits(s, t) for s, t in zip(src, dst, strict=True))
    ):
        return [
            Pair(s, t, f"by order (cell {i + 1} of {n})")
            for i, (s, t) in enumerate(zip(src, dst, strict=True))
        ], []
    if _shared_cell(src, dst):
        how = (
            f"one TF1 cell reused by all {n} layers (MultiRNNCell([cell] * {n}) keeps only cell_0)"
        )
        return [Pair(src[0], t, how) for t in dst], []
    return _pair_by_shape(src, dst)


def _order_known(cells: list[Cell]) -> bool:
    return order_known(
        [c.order for c in cells], [c.scope for c in cells], all(c.counted for c in cells)
    )


def _shared_cell(src: list[Cell], dst: list[Cell]) -> bool:
    if len(src) != 1 or len(dst) < 2 or src[0].layout != "tf1":
        return False
    if not src[0].scope.rpartition("/")[0].endswith("multi_rnn_cell/cell_0"):
        return False
    return all(fits(src[0], t) for t in dst)


def _pair_by_shape(src: list[Cell], dst: list[Cell]) -> tuple[list[Pair], list[Ambiguous]]:
    by_sig_src: dict[tuple[int, int], list[Cell]] = defaultdict(list)
    by_sig_dst: dict[tuple[int, int], list[Cell]] = defaultdict(list)
    for s in src:
        by_sig_src[(s.input_dim, s.units)].append(s)
    for t in dst:
        by_sig_dst[(t.input_dim, t.units)].append(t)
    named: dict[int, tuple[Cell, str]] = {}
    for sig, rivals in by_sig_dst.items():
        named.update(_pair_by_name(by_sig_src.get(sig, []), rivals))
    pairs: list[Pair] = []
    ambiguous: list[Ambiguous] = []
    for t in dst:
        cands = by_sig_src.get((t.input_dim, t.units), [])
        rivals = by_sig_dst[(t.input_dim, t.units)]
        if not cands:
            continue
        if len(cands) == 1 and len(rivals) == 1:
            pairs.append(Pair(cands[0], t, "by shape (the only cell with this in and h)"))
            continue
        if id(t) in named:
            source, word = named[id(t)]
            pairs.append(Pair(source, t, f"by name ({word!r} in both scopes, no rival has it)"))
            continue
        taken = {id(s) for s, _ in named.values()}
        left = [s for s in cands if id(s) not in taken] or cands
        ambiguous.append(Ambiguous(t, tuple(left[:_SHOWN]), _tie(t, left, rivals)))
    return pairs, ambiguous


def _pair_by_name(src: list[Cell], dst: list[Cell]) -> dict[int, tuple[Cell, str]]:
    """Among cells of one shape, ``id(target) -> (source, the word)`` where the words that set a
    target apart from its rivals and a source apart from the other candidates name each other
    alone (the best overlap, both ways, and no tie)."""
    if len(src) < 2 and len(dst) < 2:
        return {}
    src_words, dst_words = _distinct_words(src), _distinct_words(dst)

    def best(words: set[str], others: list[set[str]]) -> int | None:
        scores = [len(words & o) for o in others]
        top = max(scores, default=0)
        return scores.index(top) if top and scores.count(top) == 1 else None

    out: dict[int, tuple[Cell, str]] = {}
    for j, t in enumerate(dst):
        i = best(dst_words[j], src_words)
        if i is not None and best(src_words[i], dst_words) == j:
            out[id(t)] = (src[i], sorted(dst_words[j] & src_words[i])[0])
    return out


def _distinct_words(cells: list[Cell]) -> list[set[str]]:
    """Each cell's scope words that not every cell of ``cells`` has."""
    words = [_words(c) for c in cells]
    common = set.intersection(*words) if words else set()
    return [w - common for w in words]


def _words(cell: Cell) -> set[str]:
    """The words of a cell's scope as a name can match them: directions made alike (``fw`` is
    ``forward_lstm``), numbers dropped where they are not creation order."""
    out: set[str] = set()
    for part in cell.scope.split("/"):
        for prefix, word in (("fw", "<fw>"), ("bw", "<bw>"), ("forward_", "<fw>"),
                             ("backward_", "<bw>")):  # fmt: skip
            if part == prefix or (prefix.endswith("_") and part.startswith(prefix)):
                out.add(word)
                part = part[len(prefix) :]
                break
        out.add(part if cell.counted else unnumbered_scope(part))
    out.discard("")
    return out


def _tie(t: Cell, cands: list[Cell], rivals: list[Cell]) -> str:
    """Why ``t`` stays unmatched, and the rule that settles it."""
    if len(cands) > 1:
        why = f"{len(cands)} source cells fit {t.label} equally well: {_scopes(cands)}"
    else:
        why = (
            f"source cell {cands[0].scope!r} fits {len(rivals)} target cells equally well: "
            f"{_scopes(rivals)}"
        )
    uncounted = sorted({c.scope for c in (*cands, *rivals) if not c.counted and c.order is None})
    if uncounted:
        why += (
            f"; their order is unknown: the numbers in {_texts(uncounted)} are not creation order "
            "(Keras 3 off TensorFlow numbers layers when they are made, not when a call builds "
            "them, and recorded no order for this model)"
        )
    else:
        why += "; the order of the cells does not settle it"
    example = f"{_first_var(cands[0])}: {_first_var(t)}"
    return (
        f"{why}. Name the pairing with a rule: map one kernel of each cell to the cell your code "
        f"means, e.g. map: {{{example}}} (the converter carries the cell's other variables)"
    )


def _first_var(cell: Cell) -> str:
    return next(iter(cell.roles.values())).name


def _texts(scopes: Sequence[str]) -> str:
    text = ", ".join(repr(s) for s in scopes[:_SHOWN])
    more = len(scopes) - _SHOWN
    return f"{text} and {more} more" if more > 0 else text


_SHOWN = 3


def _scopes(cells: Sequence[Cell]) -> str:
    text = ", ".join(repr(c.scope) for c in cells[:_SHOWN])
    more = len(cells) - _SHOWN
    return f"{text} and {more} more" if more > 0 else text
