"""The ops of a ``GraphDef`` (and of its function library), decoded without TensorFlow.

Only what tracing a value back to a variable needs: each node's name, op, inputs, the number a
one-element ``Const`` holds, and its number-valued attributes. Fields used (``graph.proto``,
``node_def.proto``, ``function.proto``, ``attr_value.proto``, ``tensor.proto``): GraphDef
``node=1``, ``library=2`` {FunctionDef ``function=1``: ``signature=1`` {OpDef name=1,
input_arg=2 {name=1}}, ``node_def=3``}; NodeDef name=1, op=2, input=3, attr=5 map<string,
AttrValue i=3, f=4, tensor=8, func=10 {name=1}>; TensorProto dtype=1, tensor_shape=2 {dim=2
{size=1}}, tensor_content=4, float_val=5, double_val=6, int_val=7, int64_val=10, half_val=13::

    graph = decode_graph(meta.graph_def)
    [n.name for n in graph.nodes if n.op == "AddV2"]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ckptbridge.format._proto import FIXED32, as_bytes, as_int, as_int64, iter_fields, packed_ints

# DataType enum values whose one-element constants are read (float, double, int32, half, int64)
_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_HALF, _DT_INT64 = 1, 2, 3, 19, 9


@dataclass(frozen=True)
class GraphNode:
    """One op. ``function`` is ``""`` at top level, else the name of the function that holds it.

    ``inputs`` as written: ``"node"``, ``"node:1"`` (graph), ``"node:output:2"`` or an argument
    name (function body), ``"^node"`` (control). ``value``: a one-element ``Const``'s number.
    ``numbers``: int and float attributes (``forget_bias``, ``num_split``). ``calls``: functions
    named by its attributes (a ``While``'s ``body``), as ``(attribute, function)``.
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    value: float | None = None
    numbers: tuple[tuple[str, float], ...] = ()
    calls: tuple[tuple[str, str], ...] = ()
    function: str = ""

    def number(self, attr: str) -> float | None:
        """A number-valued attribute, or None."""
        return next((v for k, v in self.numbers if k == attr), None)


@dataclass
class Graph:
    """Every op of the graph and of its functions; ``functions``: name -> input argument names."""

    nodes: list[GraphNode] = field(default_factory=list)
    functions: dict[str, tuple[str, ...]] = field(default_factory=dict)


def decode_graph(data: bytes) -> Graph:
    """Decode ``GraphDef`` bytes (raises ``ValueError`` when malformed).

    >>> decode_graph(b"").nodes
    []
    """
    graph = Graph()
    for number, _, value in iter_fields(data):
        if number == 1:
            graph.nodes.append(_node(as_bytes(value, "node"), ""))
        elif number == 2:
            for f, _, fn in iter_fields(as_bytes(value, "library")):
                if f == 1:
                    _function(as_bytes(fn, "function"), graph)
    return graph


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def _function(data: bytes, graph: Graph) -> None:
    name, args, bodies = "", [], []
    for number, _, value in iter_fields(data):
        if number == 1:
            for f, _, v in iter_fields(as_bytes(value, "signature")):
                if f == 1:
                    name = _text(v)
                elif f == 2:
                    args += [_text(a) for g, _, a in iter_fields(as_bytes(v, "arg")) if g == 1]
        elif number == 3:
            bodies.append(as_bytes(value, "node_def"))
    graph.functions[name] = tuple(args)
    graph.nodes.extend(_node(body, name) for body in bodies)


def _node(data: bytes, function: str) -> GraphNode:
    name = op = ""
    inputs: list[str] = []
    attrs: list[bytes] = []
    for number, _, value in iter_fields(data):
        if number == 1:
            name = _text(value)
        elif number == 2:
            op = _text(value)
        elif number == 3:
            inputs.append(_text(value))
        elif number == 5:
            attrs.append(as_bytes(value, "node.attr"))
    numbers: list[tuple[str, float]] = []
    calls: list[tuple[str, str]] = []
    const: float | None = None
    for entry in attrs:
        key, attr = _map_entry(entry)
        for number, wire, value in iter_fields(attr):
            if number == 3:
                numbers.append((key, float(as_int64(value, "attr.i"))))
            elif number == 4 and wire == FIXED32:
                numbers.append((key, _float32(as_int(value, "attr.f"))))
            elif number == 8 and op == "Const" and key == "value":
                const = _one_number(as_bytes(value, "attr.tensor"))
            elif number == 10:
                for f, _, v in iter_fields(as_bytes(value, "attr.func")):
                    if f == 1:
                        calls.append((key, _text(v)))
    return GraphNode(name, op, tuple(inputs), const, tuple(numbers), tuple(calls), function)


def _map_entry(data: bytes) -> tuple[str, bytes]:
    key, val = "", b""
    for number, _, value in iter_fields(data):
        if number == 1:
            key = _text(value)
        elif number == 2:
            val = as_bytes(value, "map value")
    return key, val


def _float32(bits: int) -> float:
    """A float32's value as the shortest decimal that gives back the same float32 (0.8, not
    0.800000011920929): the number as the program wrote it."""
    raw = bits.to_bytes(4, "little")
    value = float(struct.unpack("<f", raw)[0])
    for digits in range(1, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack("<f", short) == raw:
            return short
    return value


def _one_number(data: bytes) -> float | None:
    """The number a one-element TensorProto holds (None for any other tensor)."""
    dtype, size = 0, 1
    values: list[float] = []
    content = b""
    for number, wire, value in iter_fields(data):
        if number == 1:
            dtype = as_int(value, "tensor.dtype")
        elif number == 2:
            for f, _, dim in iter_fields(as_bytes(value, "tensor_shape")):
                if f == 2:
                    for g, _, v in iter_fields(as_bytes(dim, "dim")):
                        if g == 1:
                            size *= as_int64(v, "dim.size")
        elif number == 4:
            content = as_bytes(value, "tensor_content")
        elif number == 5 and dtype == _DT_FLOAT:
            values += [_float32(int.from_bytes(v, "little")) for v in _chunks(value, wire, 4)]
        elif number == 6 and dtype == _DT_DOUBLE:
            values += [struct.unpack("<d", v)[0] for v in _chunks(value, wire, 8)]
        elif number in (7, 10, 13) and dtype in (_DT_INT32, _DT_INT64, _DT_HALF):
            ints = packed_ints(value, "tensor values")
            if dtype == _DT_HALF:
                values += [struct.unpack("<e", (i & 0xFFFF).to_bytes(2, "little"))[0] for i in ints]
            else:
                values += [float(i) for i in ints]
    if size != 1:
        return None
    formats = {_DT_FLOAT: "<f", _DT_DOUBLE: "<d", _DT_HALF: "<e", _DT_INT32: "<i", _DT_INT64: "<q"}
    if content and dtype == _DT_FLOAT and len(content) == 4:
        return _float32(int.from_bytes(content, "little"))
    if content and dtype in formats and struct.calcsize(formats[dtype]) == len(content):
        return float(struct.unpack(formats[dtype], content)[0])
    return values[0] if len(values) == 1 else None


def _chunks(value: int | bytes, wire: int, width: int) -> list[bytes]:
    """A repeated fixed-width field, packed (bytes) or one unpacked number, as raw items."""
    raw = value if isinstance(value, bytes) else value.to_bytes(width, "little")
    if len(raw) % width:
        raise ValueError(f"packed values of {len(raw)} bytes are not a multiple of {width}")
    return [raw[i : i + width] for i in range(0, len(raw), width)]
