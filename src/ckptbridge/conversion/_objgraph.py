"""Prune a TF2 object graph (``TrackableObjectGraph``) of entries a conversion leaves out.

Wire layout (``trackable_object_graph.proto``): the graph is ``repeated TrackableObject nodes = 1``;
a node has ``children = 1`` (``node_id = 1``, ``local_name = 2``), ``attributes = 2``
(``name = 1``, ``full_name = 2``, ``checkpoint_key = 3``), ``slot_variables = 3``
(``original_variable_node_id = 1``, ``slot_name = 2``, ``slot_variable_node_id = 3``),
``registered_saver = 4`` and ``has_checkpoint_values = 5`` (a ``BoolValue``).

Pruning keeps node ids stable: attributes whose checkpoint key is dropped are removed, slot
references to emptied nodes are removed, and ``has_checkpoint_values`` is recomputed the way
TensorFlow's saver computes it, so TensorFlow does not wait for values that are not there.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from ckptbridge._errors import CorruptCheckpointError
from ckptbridge.format._proto import (
    BYTES,
    VARINT,
    FieldValue,
    ProtoError,
    field_bytes,
    field_varint,
    iter_fields,
)

Field = tuple[int, int, FieldValue]


def prune_object_graph(data: bytes, dropped_keys: AbstractSet[str]) -> bytes:
    """Return the encoded graph without the attributes whose checkpoint key is in ``dropped_keys``.

    Example: ``prune_object_graph(graph_bytes, {"optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE"})``.
    """
    try:
        nodes = [list(iter_fields(_bytes(v))) for n, _, v in iter_fields(data) if n == 1]
        emptied: set[int] = set()
        for node_id, fields in enumerate(nodes):
            attrs = [f for f in fields if f[0] == 2]
            kept = [f for f in attrs if _checkpoint_key(f) not in dropped_keys]
            if attrs and not kept:
                emptied.add(node_id)
            nodes[node_id] = [f for f in fields if f[0] != 2 or f in kept]
        for node_id, fields in enumerate(nodes):
            nodes[node_id] = [f for f in fields if f[0] != 3 or _slot_node(f) not in emptied]
        has_values = _has_values(nodes)
    except ProtoError as exc:
        raise CorruptCheckpointError(
            f"the template's _CHECKPOINTABLE_OBJECT_GRAPH does not decode: {exc}"
        ) from None
    out = bytearray()
    for node_id, fields in enumerate(nodes):
        body = b"".join(_encode(f) for f in fields if f[0] != 5)
        body += field_bytes(5, field_varint(1, 1) if has_values[node_id] else b"")
        out += field_bytes(1, body)
    return bytes(out)


def _bytes(value: FieldValue) -> bytes:
    if not isinstance(value, bytes):
        raise ProtoError("expected a sub-message, found a number")
    return value


def _checkpoint_key(attr: Field) -> str:
    for n, _, v in iter_fields(_bytes(attr[2])):
        if n == 3:
            return _bytes(v).decode("utf-8", "replace")
    return ""


def _slot_node(slot: Field) -> int:
    for n, _, v in iter_fields(_bytes(slot[2])):
        if n == 3 and isinstance(v, int):
            return v
    return -1


def _children(fields: list[Field]) -> list[int]:
    ids = []
    for f in fields:
        if f[0] == 1:
            for n, _, v in iter_fields(_bytes(f[2])):
                if n == 1 and isinstance(v, int):
                    ids.append(v)
    return ids


def _has_values(nodes: list[list[Field]]) -> list[bool]:
    """A node has values when it, or anything below it, holds attributes, slots or a saver."""
    direct = [any(f[0] in (2, 3, 4) for f in fields) for fields in nodes]
    parents: dict[int, set[int]] = {}
    for node_id, fields in enumerate(nodes):
        for child in _children(fields):
            parents.setdefault(child, set()).add(node_id)
    result = list(direct)
    todo = [i for i, d in enumerate(direct) if d]
    while todo:
        node = todo.pop()
        for parent in parents.get(node, ()):
            if not result[parent]:
                result[parent] = True
                todo.append(parent)
    return result


def _encode(f: Field) -> bytes:
    number, wire, value = f
    if wire == BYTES:
        return field_bytes(number, _bytes(value))
    if wire == VARINT and isinstance(value, int):
        return field_varint(number, value)
    raise ProtoError(f"unexpected wire type {wire} for field {number}")  # pragma: no cover


__all__ = ["prune_object_graph"]
