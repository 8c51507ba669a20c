"""Find RNN cells among plain variable descriptions, from names and shapes only.

Two layouts exist:

* ``tf1``: TF1 ``BasicRNNCell`` (``kernel`` [in+h, h] over ``concat([x, h])``, ``bias`` [h]),
  ``BasicLSTMCell`` / ``LSTMCell`` (one ``kernel`` [in+h, 4h] over ``concat([x, h])``,
  ``bias`` [4h], gates i, j, f, o; pre-1.2 names ``weights`` / ``biases``) and ``GRUCell``
  (``gates/kernel`` [in+h, 2h] in r, u order, ``candidate/kernel`` [in+h, h], biases alike).
* ``keras``: Keras ``LSTMCell`` / ``GRUCell`` / ``SimpleRNNCell`` (``kernel`` [in, G*h],
  ``recurrent_kernel`` [h, G*h], ``bias`` [G*h], or [2, 3h] for a GRU with ``reset_after=True``).

A TF1 cell is only recognised under a cell scope (``basic_lstm_cell``, ``lstm_cell``, ``gru_cell``,
optionally numbered) or when ``VarSpec.layer`` names the cell class; a Keras cell needs a
``recurrent_kernel``. Anything else is left alone.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ckptbridge.engine._names import natural_key as names_natural_key
from ckptbridge.engine._names import strip_key, undirected_scope, unnumbered_scope
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.converters._gate import CELL_LAYERS as _CELL_LAYERS
from ckptbridge.engine.converters._gate import CELL_WORDS as _CELL_WORDS
from ckptbridge.engine.converters._gate import TF1_LSTM_LAYERS as _TF1_LSTM_LAYERS
from ckptbridge.engine.converters._gate import TF1_SIMPLE_LAYERS as _TF1_SIMPLE_LAYERS
from ckptbridge.engine.converters._gate import may_hold

CellKind = Literal["lstm", "gru", "simple"]
Layout = Literal["tf1", "keras"]

_TF1_LSTM_SCOPE = re.compile(r"(basic_lstm_cell|lstm_cell)(_\d+)?")
_TF1_GRU_SCOPE = re.compile(r"gru_cell(_\d+)?")
_TF1_SIMPLE_SCOPE = re.compile(r"basic_rnn_cell(_\d+)?")
_TF1_GRU_LAYERS = frozenset({"GRUCell"})
KERNEL_LEAVES = ("kernel", "weights")
BIAS_LEAVES = ("bias", "biases")
_PEEPHOLES = ("w_f_diag", "w_i_diag", "w_o_diag")
_KERAS_KINDS: dict[int, CellKind] = {4: "lstm", 3: "gru", 1: "simple"}


@dataclass(frozen=True, eq=False)
class Cell:
    """One RNN cell found on one side: its kind, layout, sizes and variables by role.

    Roles: ``tf1`` LSTM ``kernel``, ``bias``; ``tf1`` GRU ``gates_kernel``, ``gates_bias``,
    ``candidate_kernel``, ``candidate_bias``; ``keras`` ``kernel``, ``recurrent_kernel``, ``bias``.
    ``unsupported`` describes what Keras cannot hold (peepholes, projection, ``reset_after=True``);
    ``extra`` holds the variables behind it.
    """

    kind: CellKind
    layout: Layout
    scope: str
    input_dim: int
    units: int
    roles: Mapping[str, VarSpec]
    unsupported: tuple[str, ...] = ()
    extra: tuple[VarSpec, ...] = ()
    reset_after: bool = False
    order: int | None = None
    sort_key: tuple[object, ...] = field(default=())
    counted: bool = True

    @property
    def specs(self) -> tuple[VarSpec, ...]:
        """Every variable of the cell: its roles, then the extras."""
        return (*self.roles.values(), *self.extra)

    @property
    def label(self) -> str:
        """``'TF1 LSTM cell rnn/basic_lstm_cell (in 80, h 80)'``, for reasons and errors."""
        side = "TF1" if self.layout == "tf1" else "Keras"
        return (
            f"{side} {self.kind.upper()} cell {self.scope!r} (in {self.input_dim}, h {self.units})"
        )


def split_name(name: str) -> tuple[str, str]:
    """Split a key into (scope, leaf), dropping ``:0`` and TF2's ``/.ATTRIBUTES/VARIABLE_VALUE``.

    >>> split_name("lstm/lstm_cell/kernel:0")
    ('lstm/lstm_cell', 'kernel')
    """
    scope, _, leaf = strip_key(name).rpartition("/")
    return scope, leaf.lstrip("_")


def natural_key(scope: str) -> tuple[object, ...]:
    """Sort key: numbers by value (``cell_2`` < ``cell_10``), forward before backward.

    >>> natural_key("bidirectional_rnn/fw/cell_2") < natural_key("bidirectional_rnn/bw/cell_0")
    True
    """
    parts: list[object] = []
    for comp in scope.split("/"):
        rank = 1 if comp == "bw" or comp.startswith("backward_") else 0
        parts.append((rank, names_natural_key(comp)))
    return tuple(parts)


def order_known(orders: Sequence[int | None], scopes: Sequence[str], counted: bool = True) -> bool:
    """Whether sorting by order settles which unit comes first (False: only the alphabet would).

    Creation orders settle it; without them, scopes must differ only where TensorFlow numbers
    or directs units (``cell_0``/``cell_1``, ``rnn``/``rnn_1``, ``fw``/``bw``), never by name.
    Where the numbers are not creation order (``counted`` False: Keras 3 off TensorFlow numbers
    layers when it makes them, not when a call builds them), only directions settle it.

    >>> order_known([None, None], ["encoder/rnn/lstm_cell", "decoder/rnn/lstm_cell"])
    False
    >>> order_known([None, None], ["rnn/multi_rnn_cell/cell_1", "rnn/multi_rnn_cell/cell_0"])
    True
    >>> order_known([None, None], ["lstm/lstm_cell", "lstm_1/lstm_cell"], counted=False)
    False
    """
    if len(scopes) < 2 or all(o is not None for o in orders):
        return True
    form = unnumbered_scope if counted else undirected_scope
    return len({form(scope) for scope in scopes}) == 1


def all_counted(specs: Iterable[VarSpec]) -> bool:
    """Whether the numbers in every one of ``specs``' names are creation order (``VarSpec.counted``)."""
    return all(s.counted for s in specs)


def detect_cells(specs: Sequence[VarSpec]) -> list[Cell]:
    """Every RNN cell among ``specs`` (both layouts), in no particular order.

    >>> cells = detect_cells([VarSpec("rnn/lstm_cell/kernel", (12, 16)),
    ...                       VarSpec("rnn/lstm_cell/bias", (16,))])
    >>> (cells[0].kind, cells[0].layout, cells[0].input_dim, cells[0].units)
    ('lstm', 'tf1', 8, 4)
    """
    if not may_hold(specs, _CELL_WORDS, _CELL_LAYERS):
        return []  # no key can be a cell's: skip splitting every name
    by_scope: dict[str, dict[str, VarSpec]] = defaultdict(dict)
    for spec in specs:
        scope, leaf = split_name(spec.name)
        by_scope[scope][leaf] = spec
    cells: list[Cell] = []
    for scope, leaves in by_scope.items():
        cell = (
            _keras_cell(scope, leaves)
            or _tf1_lstm(scope, leaves, by_scope)
            or _tf1_simple(scope, leaves)
        )
        if cell is not None:
            cells.append(cell)
    cells.extend(_tf1_grus(by_scope))
    return cells


def pick_one(leaves: Mapping[str, VarSpec], names: Iterable[str]) -> VarSpec | None:
    """The one leaf spelled as any of ``names`` (``kernel`` or ``weights``); None if none or two."""
    found = [leaves[n] for n in names if n in leaves]
    return found[0] if len(found) == 1 else None


def _layer_hint(leaves: Mapping[str, VarSpec], kinds: frozenset[str]) -> bool:
    return any(spec.layer in kinds for spec in leaves.values())


def first_order(specs: Iterable[VarSpec]) -> int | None:
    """The earliest creation order among ``specs``; None unless every one has an order."""
    orders = [s.order for s in specs]
    return None if any(o is None for o in orders) else min(o for o in orders if o is not None)


def _keras_cell(scope: str, leaves: Mapping[str, VarSpec]) -> Cell | None:
    kernel, rec, bias = leaves.get("kernel"), leaves.get("recurrent_kernel"), leaves.get("bias")
    if kernel is None or rec is None or bias is None:
        return None
    if len(kernel.shape) != 2 or len(rec.shape) != 2 or kernel.shape[1] != rec.shape[1]:
        return None
    units, cols = rec.shape
    if units == 0 or cols % units:
        return None
    kind = _KERAS_KINDS.get(cols // units)
    if kind is None:
        return None
    reset_after = kind == "gru" and bias.shape == (2, cols)
    if bias.shape != (cols,) and not reset_after:
        return None
    roles = {"kernel": kernel, "recurrent_kernel": rec, "bias": bias}
    unsupported = ("reset_after=True (bias [2, 3h])",) if reset_after else ()
    return Cell(
        kind,
        "keras",
        scope,
        kernel.shape[0],
        units,
        roles,
        unsupported,
        reset_after=reset_after,
        order=first_order(roles.values()),
        sort_key=natural_key(scope),
        counted=all_counted(roles.values()),
    )


def _tf1_lstm(
    scope: str, leaves: Mapping[str, VarSpec], by_scope: Mapping[str, Mapping[str, VarSpec]]
) -> Cell | None:
    last = scope.rpartition("/")[2]
    if "recurrent_kernel" in leaves:
        return None
    if not (_TF1_LSTM_SCOPE.fullmatch(last) or _layer_hint(leaves, _TF1_LSTM_LAYERS)):
        return None
    kernel, bias = pick_one(leaves, KERNEL_LEAVES), pick_one(leaves, BIAS_LEAVES)
    if kernel is None or bias is None or len(kernel.shape) != 2 or len(bias.shape) != 1:
        return None
    cols = bias.shape[0]
    if cols % 4 or kernel.shape[1] != cols:
        return None
    units = cols // 4
    unsupported: list[str] = []
    extra = [leaves[p] for p in _PEEPHOLES if p in leaves]
    if extra:
        unsupported.append("peepholes (" + ", ".join(split_name(s.name)[1] for s in extra) + ")")
    recurrent_width = units
    proj = pick_one(by_scope.get(f"{scope}/projection", {}), KERNEL_LEAVES)
    if proj is not None and len(proj.shape) == 2:
        unsupported.append(f"a projection to {proj.shape[1]} ({proj.name!r})")
        extra.append(proj)
        recurrent_width = proj.shape[1]
    input_dim = kernel.shape[0] - recurrent_width
    if input_dim < 1:
        return None
    roles = {"kernel": kernel, "bias": bias}
    return Cell(
        "lstm",
        "tf1",
        scope,
        input_dim,
        units,
        roles,
        tuple(unsupported),
        tuple(extra),
        order=first_order([kernel, bias, *extra]),
        sort_key=natural_key(scope),
        counted=all_counted([kernel, bias, *extra]),
    )


def _tf1_grus(by_scope: Mapping[str, Mapping[str, VarSpec]]) -> list[Cell]:
    cells: list[Cell] = []
    for scope, leaves in by_scope.items():
        parent, _, last = scope.rpartition("/")
        if last != "gates" or not parent:
            continue
        cand_leaves = by_scope.get(f"{parent}/candidate", {})
        hinted = _layer_hint({**leaves, **cand_leaves}, _TF1_GRU_LAYERS)
        if not (_TF1_GRU_SCOPE.fullmatch(parent.rpartition("/")[2]) or hinted):
            continue
        cell = _tf1_gru(parent, leaves, cand_leaves)
        if cell is not None:
            cells.append(cell)
    return cells


def _tf1_gru(scope: str, gates: Mapping[str, VarSpec], cand: Mapping[str, VarSpec]) -> Cell | None:
    roles = {
        "gates_kernel": pick_one(gates, KERNEL_LEAVES),
        "gates_bias": pick_one(gates, BIAS_LEAVES),
        "candidate_kernel": pick_one(cand, KERNEL_LEAVES),
        "candidate_bias": pick_one(cand, BIAS_LEAVES),
    }
    found = {k: v for k, v in roles.items() if v is not None}
    if len(found) != 4:
        return None
    gk, gb, ck, cb = (found[k] for k in roles)
    if len(ck.shape) != 2 or len(gk.shape) != 2:
        return None
    units = ck.shape[1]
    rows = ck.shape[0]
    if gk.shape != (rows, 2 * units) or gb.shape != (2 * units,) or cb.shape != (units,):
        return None
    if rows - units < 1:
        return None
    return Cell(
        "gru",
        "tf1",
        scope,
        rows - units,
        units,
        found,
        order=first_order(found.values()),
        sort_key=natural_key(scope),
        counted=all_counted(found.values()),
    )


def _tf1_simple(scope: str, leaves: Mapping[str, VarSpec]) -> Cell | None:
    last = scope.rpartition("/")[2]
    if "recurrent_kernel" in leaves:
        return None
    if not (_TF1_SIMPLE_SCOPE.fullmatch(last) or _layer_hint(leaves, _TF1_SIMPLE_LAYERS)):
        return None
    kernel, bias = pick_one(leaves, KERNEL_LEAVES), pick_one(leaves, BIAS_LEAVES)
    if kernel is None or bias is None or len(kernel.shape) != 2 or len(bias.shape) != 1:
        return None
    units = bias.shape[0]
    if kernel.shape[1] != units or kernel.shape[0] - units < 1:
        return None
    roles = {"kernel": kernel, "bias": bias}
    return Cell(
        "simple",
        "tf1",
        scope,
        kernel.shape[0] - units,
        units,
        roles,
        order=first_order(roles.values()),
        sort_key=natural_key(scope),
        counted=all_counted(roles.values()),
    )
