"""The TF2 object graph (``TrackableObjectGraph``) stored under ``_CHECKPOINTABLE_OBJECT_GRAPH``.

Proto (``trackable_object_graph.proto``): ``nodes=1`` of ``TrackableObject`` with
``children=1`` {node_id=1, local_name=2}, ``attributes=2`` {name=1, full_name=2, checkpoint_key=3},
``slot_variables=3`` {original_variable_node_id=1, slot_name=2, slot_variable_node_id=3}; other
fields (registered saver, has_checkpoint_values) are kept verbatim when re-encoding::

    graph = ObjectGraph.from_variables(["model/dense/kernel"])
    graph.variables()[0].key   # 'model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE'
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from ckptbridge._errors import CorruptCheckpointError
from ckptbridge.format._gc import collector_paused
from ckptbridge.format._proto import (
    BYTES,
    VARINT,
    ProtoError,
    as_bytes,
    as_int32,
    encode_field,
    field_bytes,
    field_varint,
    iter_fields,
    known_fields,
    read_varint,
)

VARIABLE_VALUE = "VARIABLE_VALUE"
MAX_PATHS_PER_NODE = 32
MAX_PATH_CHARS = 1 << 26  # all paths together; real graphs need a few kB


def escape_local_name(name: str) -> str:
    """Escape one local name the way TensorFlow builds checkpoint keys ("." -> "..", "/" -> ".S").

    Example::

        >>> escape_local_name("a.b/c")
        'a..b.Sc'
    """
    return name.replace(".", "..").replace("/", ".S")


def variable_key(path: str, attribute: str = VARIABLE_VALUE) -> str:
    """Return the checkpoint key of an attribute of the object at ``path`` ("/"-joined names).

    Example::

        >>> variable_key("model/dense/kernel")
        'model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE'
    """
    parts = [escape_local_name(p) for p in path.split("/")] if path else []
    return "/".join([*parts, ".ATTRIBUTES", attribute])


@dataclass(frozen=True)
class ObjVariable:
    """A variable of the object graph: its checkpoint key and every path that reaches it."""

    key: str
    paths: tuple[str, ...]
    node_id: int
    slot_of: str | None = None
    slot_name: str | None = None
    optimizer_path: str | None = None
    full_name: str = ""  # the variable's own name when it was saved (SerializedTensor.full_name)


@dataclass
class ObjNode:
    """One ``TrackableObject``."""

    children: list[tuple[int, str]] = field(default_factory=list)
    attributes: list[tuple[str, str, str]] = field(default_factory=list)  # name, full_name, key
    slot_variables: list[tuple[int, str, int]] = field(default_factory=list)  # original, slot, node
    extra: bytes = b""


def _fields(data: bytes) -> tuple[dict[int, int], dict[int, str]]:
    numbers: dict[int, int] = {}
    texts: dict[int, str] = {}
    for number, wire, value in iter_fields(data):  # a field in the wrong wire type is unknown
        if wire == BYTES and isinstance(value, bytes):
            texts[number] = value.decode("utf-8", "replace")
        elif wire == VARINT and isinstance(value, int):
            numbers[number] = as_int32(value)
    return numbers, texts


def _decode_node(data: bytes) -> ObjNode:
    node = ObjNode()
    extra = b""
    for number, wire, value in iter_fields(data):
        if wire != BYTES:
            extra += encode_field(number, wire, value)
        elif number == 1:
            ints, texts = _fields(as_bytes(value, "children"))
            node.children.append((ints.get(1, 0), texts.get(2, "")))
        elif number == 2:
            _, texts = _fields(as_bytes(value, "attributes"))
            node.attributes.append((texts.get(1, ""), texts.get(2, ""), texts.get(3, "")))
        elif number == 3:
            ints, texts = _fields(as_bytes(value, "slot_variables"))
            node.slot_variables.append((ints.get(1, 0), texts.get(2, ""), ints.get(3, 0)))
        else:
            extra += encode_field(number, wire, value)
    node.extra = extra
    return node


def _decode_fast(data: bytes) -> list[ObjNode] | None:
    """The nodes of a graph laid out as TensorFlow writes it, or None for any other layout.

    Top level: only ``nodes`` fields. Each node goes through :func:`_fast_node`, or through
    :func:`_decode_node` when its layout is unusual; either gives the same :class:`ObjNode`.
    """
    nodes: list[ObjNode] = []
    append = nodes.append
    pos, end = 0, len(data)
    try:
        while True:  # not `while pos < end`: CPython 3.11 would not specialize this one call
            if pos >= end:
                break
            if data[pos] != 0x0A:  # another top-level field (skipped as unknown by the decoder)
                return None
            size = data[pos + 1]
            pos += 2
            if size >= 0x80:
                size, pos = read_varint(data, pos - 1)
            stop = pos + size
            if stop > end:
                return None
            try:
                node = None
                if data[pos] == 0x12 and data.startswith(_VARIABLE_VALUE, pos + 2):
                    node = _variable_node(data, pos, stop)  # most nodes: one call, few steps
                if node is None:
                    node = _fast_node(data, pos, stop)
            except (IndexError, ProtoError):
                node = None
            append(_decode_node(data[pos:stop]) if node is None else node)
            pos = stop
    except (IndexError, ProtoError):
        return None
    return nodes


def _fast_node(buf: bytes, pos: int, end: int) -> ObjNode | None:
    """Decode the node in ``buf[pos:end]`` when it uses only the fields and encodings TensorFlow
    writes (one- or two-byte lengths, node ids below 2**28, other fields as messages with one-byte
    tags and lengths, kept verbatim: then their bytes equal :func:`encode_field`'s), else None.

    Reads past the end of ``buf`` raise ``IndexError``, encodings it does not take (a node id of
    more than four bytes, a string of 16 kB or more) ``ProtoError``; other overruns return None.
    """
    children: list[tuple[int, str]] = []
    attributes: list[tuple[str, str, str]] = []
    slots: list[tuple[int, str, int]] = []
    extra = b""
    while True:  # specialized within a call (a graph's first nodes can hold 10,000s of fields)
        if pos >= end:
            break
        tag = buf[pos]
        size = buf[pos + 1]
        pos += 2
        if size >= 0x80:
            low = buf[pos]
            if low >= 0x80 or tag not in _NODE_TAGS:  # others are re-encoded by the exact decoder
                return None
            size = size & 0x7F | low << 7
            pos += 1
        stop = pos + size
        if tag == 0x0A:  # children {node_id=1, local_name=2}
            node_id, name = 0, ""
            while pos < stop:
                sub = buf[pos]
                if sub == 0x08:
                    node_id = buf[pos + 1]
                    pos += 2
                    if node_id >= 0x80:
                        node_id, pos = _id(buf, pos, node_id)
                elif sub == 0x12:
                    length = buf[pos + 1]
                    if length < 0x80:
                        pos += 2 + length
                        name = buf[pos - length : pos].decode("utf-8", "replace")
                    else:
                        pos, name = _text(buf, pos + 1)
                else:
                    return None
            children.append((node_id, name))
        elif tag == 0x12:  # attributes {name=1, full_name=2, checkpoint_key=3}
            if buf.startswith(_VARIABLE_VALUE, pos):  # name first, as TensorFlow writes it
                texts = [VARIABLE_VALUE, "", ""]
                pos += len(_VARIABLE_VALUE)
            else:
                texts = ["", "", ""]
            while pos < stop:
                sub = buf[pos]
                if sub == 0x0A or sub == 0x12 or sub == 0x1A:
                    length = buf[pos + 1]
                    if length < 0x80:
                        pos += 2 + length
                        texts[(sub >> 3) - 1] = buf[pos - length : pos].decode("utf-8", "replace")
                    else:
                        pos, texts[(sub >> 3) - 1] = _text(buf, pos + 1)
                else:
                    return None
            attributes.append((texts[0], texts[1], texts[2]))
        elif tag == 0x1A:  # slot_variables {original=1, slot_name=2, slot_variable=3}
            original, slot_name, slot_node = 0, "", 0
            while pos < stop:
                sub = buf[pos]
                if sub == 0x08 or sub == 0x18:
                    value = buf[pos + 1]
                    pos += 2
                    if value >= 0x80:
                        value, pos = _id(buf, pos, value)
                    if sub == 0x08:
                        original = value
                    else:
                        slot_node = value
                elif sub == 0x12:
                    pos, slot_name = _text(buf, pos + 1)
                else:
                    return None
            slots.append((original, slot_name, slot_node))
        elif tag & 7 == 2 and 0x08 <= tag < 0x80:  # another message (one-byte tag): verbatim
            extra += buf[pos - 2 : stop]
            pos = stop
        else:
            return None
        if pos != stop:  # a field ran past its message
            return None
    if pos != end:
        return None
    return ObjNode(children, attributes, slots, extra)


def _variable_node(buf: bytes, pos: int, end: int) -> ObjNode | None:
    """The node in ``buf[pos:end]`` when it is a variable's as TensorFlow writes it: one
    attribute (``VARIABLE_VALUE``, full name, checkpoint key; one-byte lengths), then nothing or
    ``has_checkpoint_values`` true; else None (:func:`_fast_node` takes it). The same
    :class:`ObjNode` as :func:`_fast_node` gives, in a third of the steps."""
    stop = pos + 2 + buf[pos + 1]
    at = pos + 2 + len(_VARIABLE_VALUE)
    size = buf[at + 1]
    if buf[pos + 1] >= 0x80 or buf[at] != 0x12 or size >= 0x80:
        return None
    at += 2 + size
    full_name = buf[at - size : at].decode("utf-8", "replace")
    size = buf[at + 1]
    if buf[at] != 0x1A or size >= 0x80:
        return None
    at += 2 + size
    if at != stop:
        return None
    key = buf[at - size : at].decode("utf-8", "replace")
    if stop == end:
        extra = b""
    elif stop + 4 == end and buf.startswith(_HAS_VALUES, stop):
        extra = _HAS_VALUES
    else:
        return None
    return ObjNode([], [(VARIABLE_VALUE, full_name, key)], [], extra)


_HAS_VALUES = b"*\x02\x08\x01"  # has_checkpoint_values {value: true}, kept verbatim in extra
_NODE_TAGS = frozenset((0x0A, 0x12, 0x1A))
_VARIABLE_VALUE = b"\n\x0e" + VARIABLE_VALUE.encode()


def _id(buf: bytes, pos: int, first: int) -> tuple[int, int]:
    """A varint of two to four bytes whose first byte ``first`` was read (values < 2**28)."""
    value = first & 0x7F
    for shift in (7, 14, 21):
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise ProtoError("node id of more than four bytes")  # the exact decoder takes over


def _text(buf: bytes, pos: int) -> tuple[int, str]:
    """A string field whose length (one or two bytes) starts at ``pos``: (end, text)."""
    size = buf[pos]
    pos += 1
    if size >= 0x80:
        if buf[pos] >= 0x80:
            raise ProtoError("string of 16 kB or more")  # the exact decoder takes over
        size = size & 0x7F | buf[pos] << 7
        pos += 1
    stop = pos + size
    return stop, buf[pos:stop].decode("utf-8", "replace")


def _encode_node(node: ObjNode) -> bytes:
    out = b""
    for node_id, name in node.children:
        out += field_bytes(1, field_varint(1, node_id) + field_bytes(2, name.encode()))
    for name, full_name, key in node.attributes:
        body = field_bytes(1, name.encode()) + field_bytes(2, full_name.encode())
        out += field_bytes(2, body + field_bytes(3, key.encode()))
    for original, slot_name, slot_node in node.slot_variables:
        body = field_varint(1, original) + field_bytes(2, slot_name.encode())
        out += field_bytes(3, body + field_varint(3, slot_node))
    return out + node.extra


class ObjectGraph:
    """A decoded ``TrackableObjectGraph``: ``nodes[0]`` is the root."""

    def __init__(self, nodes: list[ObjNode]) -> None:
        refs = [c for node in nodes for c, _ in node.children]
        refs += [n for node in nodes for o, _, s in node.slot_variables for n in (o, s)]
        if refs and min(refs) >= 0 and max(refs) < len(nodes):
            self.nodes = nodes
            return
        for index, node in enumerate(nodes):  # name the first node with a reference outside
            refs = [c for c, _ in node.children]
            refs += [n for o, _, s in node.slot_variables for n in (o, s)]
            if any(not 0 <= ref < len(nodes) for ref in refs):
                raise ProtoError(f"node {index} refers to a node outside 0..{len(nodes) - 1}")
        self.nodes = nodes

    @classmethod
    def decode(cls, data: bytes) -> ObjectGraph:
        """Decode serialized ``TrackableObjectGraph`` bytes (raises ``ValueError`` when malformed).

        The layout TensorFlow writes takes a fast path (:func:`_decode_fast`); anything else goes
        through the exact decoder (:meth:`decode_exact`), so the result is the same.

        Example::

            graph = ObjectGraph.decode(checkpoint.read("_CHECKPOINTABLE_OBJECT_GRAPH").item())
        """
        with collector_paused():
            nodes = _decode_fast(data)
            if nodes is None:
                return cls.decode_exact(data)
            if not nodes:
                raise ProtoError("the object graph has no nodes")
            return cls(nodes)

    @classmethod
    def decode_exact(cls, data: bytes) -> ObjectGraph:
        """:meth:`decode` through the general wire-format decoder only (the reference for tests).

        Example::

            assert ObjectGraph.decode_exact(data).nodes == ObjectGraph.decode(data).nodes
        """
        nodes = [_decode_node(as_bytes(v, "nodes")) for _, v in known_fields(data, {1: BYTES})]
        if not nodes:
            raise ProtoError("the object graph has no nodes")
        return cls(nodes)

    def encode(self) -> bytes:
        """Serialize to ``TrackableObjectGraph`` bytes (what TensorFlow stores as a string scalar)."""
        return b"".join(field_bytes(1, _encode_node(node)) for node in self.nodes)

    def paths(self) -> list[list[str]]:
        """Every path from the root to each node, shortest first (bounded per node; cycles safe)."""
        with collector_paused():
            return self._paths()

    def _paths(self) -> list[list[str]]:
        nodes = self.nodes
        found: list[list[str]] = [[] for _ in nodes]
        found[0].append("")
        queue: deque[tuple[int, str]] = deque([(0, "")])
        popleft, push = queue.popleft, queue.append
        budget = MAX_PATH_CHARS
        while queue:
            node_id, path = popleft()
            prefix = path + "/" if path else ""
            for child, name in nodes[node_id].children:
                reached = found[child]
                if len(reached) < MAX_PATHS_PER_NODE and child != 0:
                    child_path = prefix + name
                    budget -= len(child_path)
                    if budget < 0:
                        raise CorruptCheckpointError(
                            f"the object graph is too deep: its paths from the root exceed "
                            f"{MAX_PATH_CHARS} characters (node {child} is {child_path.count('/') + 1} "
                            "levels down). The graph is damaged or was not written by TensorFlow; "
                            "read the tensors by key instead."
                        )
                    reached.append(child_path)
                    push((child, child_path))
        return found

    def variables(self) -> list[ObjVariable]:
        """Every ``VARIABLE_VALUE`` attribute with a checkpoint key, in node order, slots linked.

        Example::

            for var in graph.variables():
                print(var.key, var.paths[:1], var.slot_of)
        """
        with collector_paused():
            return self._variables()

    def _variables(self) -> list[ObjVariable]:
        paths = self.paths()
        keys: dict[int, str] = {}
        slots: dict[int, tuple[int, str, int]] = {}
        for node_id, node in enumerate(self.nodes):
            for a, _, k in node.attributes:
                if a == VARIABLE_VALUE and k:
                    keys[node_id] = k
            for original, slot_name, slot_node in node.slot_variables:
                slots[slot_node] = (original, slot_name, node_id)
        out: list[ObjVariable] = []
        append = out.append
        for node_id, node in enumerate(self.nodes):
            for name, full_name, key in node.attributes:
                if name != VARIABLE_VALUE or not key:
                    continue
                slot = slots.get(node_id)
                if slot is None:
                    var = ObjVariable(
                        key, tuple(paths[node_id]), node_id, None, None, None, full_name
                    )
                else:
                    original, slot_name, opt_id = slot
                    opt_paths = paths[opt_id]
                    var = ObjVariable(
                        key, tuple(paths[node_id]), node_id, keys.get(original), slot_name,
                        opt_paths[0] if opt_paths else None, full_name,
                    )  # fmt: skip
                append(var)
        return out

    def renamed(self, rename: Mapping[str, str] | Callable[[str], str]) -> ObjectGraph:
        """Return a copy whose attribute checkpoint keys are renamed (unlisted keys are kept).

        Example::

            graph.renamed({"old/.ATTRIBUTES/VARIABLE_VALUE": "new/.ATTRIBUTES/VARIABLE_VALUE"})
        """
        func = rename if callable(rename) else (lambda key: rename.get(key, key))
        nodes = [
            replace(n, children=list(n.children), slot_variables=list(n.slot_variables),
                    attributes=[(a, f, func(k) if k else k) for a, f, k in n.attributes])
            for n in self.nodes
        ]  # fmt: skip
        return ObjectGraph(nodes)

    @classmethod
    def from_variables(cls, variables: Mapping[str, str] | Iterable[str]) -> ObjectGraph:
        """Build a graph holding one variable per "/"-joined path (optionally path -> full name).

        Keys follow TensorFlow's scheme, see :func:`variable_key`.

        Example::

            ObjectGraph.from_variables({"model/dense/kernel": "dense/kernel"})
        """
        full_names = (
            dict(variables) if isinstance(variables, Mapping) else {v: v for v in variables}
        )
        nodes = [ObjNode()]
        index: dict[str, int] = {"": 0}
        for path, full_name in full_names.items():
            parent = ""
            for name in path.split("/"):
                here = f"{parent}/{name}" if parent else name
                if here not in index:
                    index[here] = len(nodes)
                    nodes.append(ObjNode())
                    nodes[index[parent]].children.append((index[here], name))
                parent = here
            nodes[index[path]].attributes.append((VARIABLE_VALUE, full_name, variable_key(path)))
        return cls(nodes)
