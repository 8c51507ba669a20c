"""Pair the cells of one side with the cells of the other: by order, confirmed by shapes.

Rules, for each cell kind (LSTM, GRU, simple RNN), with source and target cells sorted by creation order
(``VarSpec.order`` when every cell has one, else the natural order of their scopes, forward
before backward):

1. same number of cells, the order known on both sides (creation orders, or scopes that differ only
   by TensorFlow's numbering or fw/bw, never just alphabetically), and every positional pair agrees
   on (in, h): pair by order;
2. one source cell ``.../multi_rnn_cell/cell_0`` and several targets that all fit it: the cell
   object was reused by every layer (``MultiRNNCell([cell] * n)``), so it feeds them all;
3. otherwise a target and a source that fit only each other are paired by shape; a target that
   several sources fit (or that shares its only source with another target) is ambiguous, and
   is reported (with at most three candidates), never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from ckptbridge.engine.converters._cells import Cell, order_known


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


def pair_cells(
    sources: Sequence[Cell], targets: Sequence[Cell]
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
    pairs: list[Pair] = []
    ambiguous: list[Ambiguous] = []
    for kind in ("lstm", "gru", "simple"):
        for layout in ("tf1", "keras"):
            src = _sorted([c for c in sources if c.kind == kind and c.layout == layout])
            dst = _sorted([c for c in targets if c.kind == kind and c.layout != layout])
            if src and dst:
                p, a = _pair_kind(src, dst)
                pairs.extend(p)
                ambiguous.extend(a)
    return pairs, ambiguous


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
    return order_known([c.order for c in cells], [c.scope for c in cells])


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
        if len(cands) > 1:
            why = f"{len(cands)} source cells fit {t.label} equally well: {_scopes(cands)}"
        else:
            why = (
                f"source cell {cands[0].scope!r} fits {len(rivals)} target cells equally well: "
                f"{_scopes(rivals)}"
            )
        why += (
            "; the order of the cells does not settle it. Name the pairing with rules "
            "(map or transforms)."
        )
        ambiguous.append(Ambiguous(t, tuple(cands[:_SHOWN]), why))
    return pairs, ambiguous


_SHOWN = 3


def _scopes(cells: Sequence[Cell]) -> str:
    text = ", ".join(repr(c.scope) for c in cells[:_SHOWN])
    more = len(cells) - _SHOWN
    return f"{text} and {more} more" if more > 0 else text
