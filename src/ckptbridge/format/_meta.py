"""Facts from a ``.meta`` file (``MetaGraphDef``), decoded without TensorFlow.

Fields used (``meta_graph.proto``, ``graph.proto``, ``node_def.proto``, ``attr_value.proto``,
``variable.proto``): MetaGraphDef ``meta_info_def=1`` {tensorflow_version=5}, ``graph_def=2``
{node=1: NodeDef name=1, op=2, attr=5 map<string, AttrValue type=6, shape=7>}, ``collection_def=4``
map<string, CollectionDef node_list=1, bytes_list=2 {value=1}>; VariableDef ``variable_name=1``,
``save_slice_info_def=4`` {full_name=1, full_shape=2, var_offset=3, var_shape=4}, ``trainable=7``::

    info = MetaInfo.decode(Path("model.ckpt.meta").read_bytes())
    [v.name for v in info.variables if v.trainable]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ckptbridge.format._dtypes import dtype_label
from ckptbridge.format._proto import (
    BYTES,
    PACKABLE,
    VARINT,
    as_bytes,
    as_int,
    as_int64,
    known_fields,
    packed_ints,
)

VARIABLE_OPS = frozenset({"Variable", "VariableV2", "VarHandleOp"})
# bytes_list collections that hold VariableDef protos
_VARIABLE_COLLECTIONS = ("variables", "_variables", "_vars", "global_step")

SaveSlice = tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class MetaVariable:
    """A variable node of the graph, in creation order (``order``)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    trainable: bool
    order: int
    save_slice: SaveSlice | None = None


@dataclass
class MetaInfo:
    """What a ``.meta`` file says about the variables of the graph that wrote the checkpoint."""

    tf_version: str | None = None
    variables: list[MetaVariable] = field(default_factory=list)
    collections: dict[str, list[str]] = field(default_factory=dict)
    graph_def: bytes = field(default=b"", repr=False)  # for format._graph.decode_graph

    @classmethod
    def decode(cls, data: bytes) -> MetaInfo:
        """Decode ``MetaGraphDef`` bytes (raises ``ValueError`` when malformed).

        Example::

            MetaInfo.decode(b"").variables   # []
        """
        info = cls()
        nodes: list[tuple[str, str, dict[str, bytes]]] = []
        var_defs: dict[str, tuple[bool, SaveSlice | None]] = {}
        for number, value in known_fields(data, {1: BYTES, 2: BYTES, 4: BYTES}):
            if number == 1:
                info.tf_version = _meta_version(as_bytes(value, "meta_info_def"))
            elif number == 2:
                info.graph_def = as_bytes(value, "graph_def")
                nodes.extend(_graph_nodes(info.graph_def))
            elif number == 4:
                name, entries = _collection(as_bytes(value, "collection_def"), var_defs)
                if entries is not None:
                    info.collections[name] = entries
        trainable = set(info.collections.get("trainable_variables", []))
        for name, op, attrs in nodes:
            if op not in VARIABLE_OPS:
                continue
            flag, save_slice = var_defs.get(name, (False, None))
            info.variables.append(
                MetaVariable(
                    name=name, dtype=_attr_dtype(attrs.get("dtype")), shape=_attr_shape(attrs.get("shape")),
                    trainable=flag or name in trainable, order=len(info.variables), save_slice=save_slice,
                )
            )  # fmt: skip
        return info


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def _meta_version(data: bytes) -> str | None:
    for number, value in known_fields(data, {5: BYTES}):
        if number == 5:
            return _text(value) or None
    return None


def _graph_nodes(data: bytes) -> list[tuple[str, str, dict[str, bytes]]]:
    out = []
    for _, value in known_fields(data, {1: BYTES}):
        name = op = ""
        attrs: dict[str, bytes] = {}
        for sub, sub_value in known_fields(as_bytes(value, "node"), {1: BYTES, 2: BYTES, 5: BYTES}):
            if sub == 1:
                name = _text(sub_value)
            elif sub == 2:
                op = _text(sub_value)
            elif sub == 5 and op in VARIABLE_OPS | {""}:
                key, attr = _map_entry(as_bytes(sub_value, "node.attr"))
                attrs[key] = attr
        out.append((name, op, attrs))
    return out


def _map_entry(data: bytes) -> tuple[str, bytes]:
    key, val = "", b""
    for number, value in known_fields(data, {1: BYTES, 2: BYTES}):
        if number == 1:
            key = _text(value)
        elif number == 2:
            val = as_bytes(value, "map value")
    return key, val


def _attr_dtype(attr: bytes | None) -> str:
    for number, value in known_fields(attr or b"", {6: VARINT}):
        if number == 6:
            return dtype_label(as_int(value, "attr.type"), "unknown")
    return "unknown"


def _attr_shape(attr: bytes | None) -> tuple[int, ...]:
    dims: list[int] = []
    for _, value in known_fields(attr or b"", {7: BYTES}):
        for _, sub_value in known_fields(as_bytes(value, "attr.shape"), {2: BYTES}):
            size = 0
            for _, v in known_fields(as_bytes(sub_value, "dim"), {1: VARINT}):
                size = as_int64(v, "dim.size")
            dims.append(size)
    return tuple(dims)


def _collection(
    data: bytes, var_defs: dict[str, tuple[bool, SaveSlice | None]]
) -> tuple[str, list[str] | None]:
    name, body = _map_entry(data)
    for number, value in known_fields(body, {1: BYTES, 2: BYTES}):
        values = [
            as_bytes(v, "collection value")
            for _, v in known_fields(as_bytes(value, "list"), {1: BYTES})
        ]
        if number == 1:
            return name, [_text(v).split(":")[0] for v in values]
        if number == 2 and name.endswith(_VARIABLE_COLLECTIONS):
            names = []
            for raw in values:
                var_name, flag, save_slice = _variable_def(raw)
                names.append(var_name)
                old = var_defs.get(var_name, (False, None))
                var_defs[var_name] = (old[0] or flag, save_slice or old[1])
            return name, names
    return name, None


def _variable_def(data: bytes) -> tuple[str, bool, SaveSlice | None]:
    name, trainable, save_slice = "", False, None
    for number, value in known_fields(data, {1: BYTES, 4: BYTES, 7: VARINT}):
        if number == 1:
            name = _text(value).split(":")[0]
        elif number == 7:
            trainable = bool(as_int(value, "trainable"))
        elif number == 4:
            save_slice = _save_slice(as_bytes(value, "save_slice_info_def"))
    return name, trainable, save_slice


def _save_slice(data: bytes) -> SaveSlice:
    full_name = ""
    lists: dict[int, list[int]] = {2: [], 3: [], 4: []}
    for number, value in known_fields(data, {1: BYTES, 2: PACKABLE, 3: PACKABLE, 4: PACKABLE}):
        if number == 1:
            full_name = _text(value)
        elif number in lists:
            lists[number].extend(packed_ints(value, "save_slice_info_def"))
    return full_name, tuple(lists[2]), tuple(lists[3]), tuple(lists[4])
