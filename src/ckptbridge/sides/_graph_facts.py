"""Values a TF1 graph applied to its variables outside the checkpoint, read from its ``.meta``.

The forget bias of each LSTM cell, which TF1 adds to the forget gate at run time (so the
checkpoint never holds it), and its ``cell_clip`` when it clips its state. How each cell kind writes it in the ``GraphDef``:

- ``BasicLSTMCell`` / ``LSTMCell`` (``tf.nn.rnn_cell``, ``tf.contrib.rnn``): ``i, j, f, o =
  split(BiasAdd(MatMul(concat([x, h]), kernel), bias), 4)`` then ``Add(f, c)`` with ``c`` a
  scalar ``Const`` (``add/y`` for ``f + forget_bias``; ``Const_1`` for BasicLSTMCell's
  ``add(f, forget_bias_tensor)``); pre-1.0 ``_linear`` wrote ``Add(MatMul, bias)`` instead of
  ``BiasAdd``.
- ``LSTMBlockCell`` (``tf.contrib.rnn``): one ``LSTMBlockCell`` op with a ``forget_bias``
  attribute, the bias its input 7 (``x, cs_prev, h_prev, w, wci, wcf, wco, b``); gates i, ci, f, o.
- ``LSTMBlockFusedCell``: one ``BlockLSTM`` op, ``forget_bias`` attribute, bias input 8.

The value is traced to the bias variable through reads (``Identity``, ``ReadVariableOp``,
``Enter``...) and, inside ``dynamic_rnn``'s functional while loop, through the loop body's
arguments to the ``While`` op's inputs::

    forget_biases(ckpt.meta)   # {"rnn/basic_lstm_cell/bias": (GraphConstant("forget_bias", 0.8, ...),)}
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from ckptbridge.engine._spec import GraphConstant
from ckptbridge.format._graph import Graph, GraphNode, decode_graph
from ckptbridge.format._meta import VARIABLE_OPS

__all__ = ["forget_biases"]

_READS = frozenset({"Identity", "ReadVariableOp", "Enter", "RefEnter", "Switch", "RefSwitch",
                    "Snapshot", "Cast", "RefIdentity"})  # fmt: skip
_ADDS = frozenset({"Add", "AddV2"})
# fused ops that hold the forget bias as an attribute: op -> index of the bias input
_FUSED = {"LSTMBlockCell": 7, "BlockLSTM": 8}
# calling ops: attribute naming the function -> offset of its first argument among the inputs
_CALLS = {"body": 0, "cond": 0, "f": 0, "then_branch": 1, "else_branch": 1}
_LSTM_NAME = re.compile(r"lstm", re.IGNORECASE)
_MAX_HOPS = 64


class _Tracer:
    """Follow inputs across the graph and into/out of function bodies."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes = {(n.function, n.name): n for n in graph.nodes}
        self.callers: dict[str, list[tuple[GraphNode, int]]] = {}
        for node in graph.nodes:
            for attr, fn in node.calls:
                if attr in _CALLS:
                    self.callers.setdefault(fn, []).append((node, _CALLS[attr]))

    def producer(self, ref: str, function: str) -> tuple[GraphNode, int] | None:
        """The node (and output index) behind an input reference, leaving function bodies."""
        for _ in range(_MAX_HOPS):
            if ref.startswith("^"):
                return None
            name, _, rest = ref.partition(":")
            index = int(rest.rpartition(":")[2]) if rest.rpartition(":")[2].isdigit() else 0
            node = self.nodes.get((function, name))
            if node is not None:
                return node, index
            args = self.graph.functions.get(function, ())
            if not function or name not in args:
                return None
            refs = {
                (caller.inputs[offset + args.index(name)], caller.function)
                for caller, offset in self.callers.get(function, [])
                if offset + args.index(name) < len(caller.inputs)
            }
            if len(refs) != 1:
                return None
            ref, function = refs.pop()
        return None

    def variable(self, ref: str, function: str) -> str | None:
        """The variable whose value ``ref`` reads, or None (anything but plain reads in between)."""
        for _ in range(_MAX_HOPS):
            found = self.producer(ref, function)
            if found is None:
                return None
            node = found[0]
            if node.op in VARIABLE_OPS:
                return node.name
            if node.op not in _READS or not node.inputs:
                return None
            ref, function = node.inputs[0], node.function
        return None

    def constant(self, ref: str, function: str) -> GraphNode | None:
        """The one-number ``Const`` behind ``ref`` (through reads), or None."""
        for _ in range(_MAX_HOPS):
            found = self.producer(ref, function)
            if found is None:
                return None
            node = found[0]
            if node.op == "Const":
                return node if node.value is not None else None
            if node.op not in _READS or not node.inputs:
                return None
            ref, function = node.inputs[0], node.function
        return None

    def bias_of(self, ref: str, function: str) -> str | None:
        """The bias variable added to the gate pre-activations ``ref``: ``BiasAdd``'s second
        input, or the one input of an ``Add`` that is a variable read."""
        found = self.producer(ref, function)
        if found is None:
            return None
        node = found[0]
        if node.op == "BiasAdd" and len(node.inputs) >= 2:
            return self.variable(node.inputs[1], node.function)
        if node.op in _ADDS:
            found_vars = {self.variable(i, node.function) for i in node.inputs} - {None}
            return found_vars.pop() if len(found_vars) == 1 else None
        return None


def _forget_gate_adds(tracer: _Tracer) -> Iterator[tuple[str, GraphConstant]]:
    for node in tracer.graph.nodes:
        if node.op in _FUSED and node.number("forget_bias") is not None:
            index = _FUSED[node.op]
            if index < len(node.inputs):
                var = tracer.variable(node.inputs[index], node.function)
                value = node.number("forget_bias")
                if var is not None and value is not None:
                    yield var, GraphConstant("forget_bias", value, f"{node.name} (forget_bias)")
                bound = node.number("cell_clip")  # -1 (or 0): no clipping
                if var is not None and bound is not None and bound > 0:
                    yield var, GraphConstant("cell_clip", bound, f"{node.name} (cell_clip)")
            continue
        if node.op not in _ADDS or len(node.inputs) != 2:
            continue
        for gate, other in ((0, 1), (1, 0)):
            found = tracer.producer(node.inputs[gate], node.function)
            if found is None:
                continue
            split, index = found
            if index != 2 or split.number("num_split") != 4 or split.op not in ("Split", "SplitV"):
                continue
            const = tracer.constant(node.inputs[other], node.function)
            value_input = split.inputs[1] if split.op == "Split" else split.inputs[0]
            var = tracer.bias_of(value_input, split.function)
            if const is not None and const.value is not None and var is not None:
                yield var, GraphConstant("forget_bias", const.value, const.name)
                clip = _cell_clip(tracer, node)
                if clip is not None:
                    yield var, clip
            break


def _cell_clip(tracer: _Tracer, add: GraphNode) -> GraphConstant | None:
    """``LSTMCell(cell_clip=C)``: ``clip_by_value(c, -C, C)`` beside the forget gate's ``add``
    (same cell scope, same loop body), ``C`` the ``Minimum``'s constant."""
    scope = add.name.rpartition("/")[0]
    clip = tracer.nodes.get((add.function, f"{scope}/clip_by_value" if scope else "clip_by_value"))
    if clip is None or clip.op not in ("Maximum", "ClipByValue"):
        return None
    low = tracer.nodes.get((add.function, f"{clip.name}/Minimum"))
    const = tracer.constant(low.inputs[1], low.function) if low and len(low.inputs) > 1 else None
    value = const.value if const is not None and const.value is not None else float("nan")
    return GraphConstant("cell_clip", value, clip.name)


def forget_biases(meta: Any) -> dict[str, tuple[GraphConstant, ...]]:
    """Bias variable name -> the forget bias(es) its LSTM cell adds, from a ``MetaInfo``.

    One value per cell in a consistent graph; a cell whose graph adds several different values
    lists them all (the engine then refuses to guess). A cell that clips its state
    (``LSTMCell(cell_clip=C)``) also lists ``GraphConstant("cell_clip", C, ...)``, which no
    Keras LSTM reproduces. Empty without LSTM-like variables.

    >>> from ckptbridge.format import MetaInfo
    >>> forget_biases(MetaInfo())
    {}
    """
    if not meta.graph_def or not any(_LSTM_NAME.search(v.name) for v in meta.variables):
        return {}
    found: dict[str, dict[tuple[str, float], GraphConstant]] = {}
    for var, fact in _forget_gate_adds(_Tracer(decode_graph(meta.graph_def))):
        found.setdefault(var, {}).setdefault((fact.name, fact.value), fact)
    return {var: tuple(values.values()) for var, values in found.items()}
