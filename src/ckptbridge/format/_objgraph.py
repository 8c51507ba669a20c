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
        for index, node in enumerate(nodes):
            refs = [c for c, _ in node.children]
            refs += [n for o, _, s in node.slot_variables for n in (o, s)]
            if any(not 0 <= ref < len(nodes) for ref in refs):
                raise ProtoError(f"node {index} refers to a node outside 0..{len(nodes) - 1}")
        self.nodes = nodes

    @classmethod
    def decode(cls, data: bytes) -> ObjectGraph:
        """Decode serialized ``TrackableObjectGraph`` bytes (raises ``ValueError`` when malformed).

        Example::

            graph = ObjectGraph.decode(checkpoint.read("_CHECKPOINTABLE_OBJECT_GRAPH").item())
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
        found: list[list[str]] = [[] for _ in self.nodes]
        found[0].append("")
        queue: deque[tuple[int, str]] = deque([(0, "")])
        budget = MAX_PATH_CHARS
        while queue:
            node_id, path = queue.popleft()
            for child, name in self.nodes[node_id].children:
                if len(found[child]) < MAX_PATHS_PER_NODE and child != 0:
                    child_path = f"{path}/{name}" if path else name
                    budget -= len(child_path)
                    if budget < 0:
                        raise CorruptCheckpointError(
                            f"the object graph is too deep: its paths from the root exceed "
                            f"{MAX_PATH_CHARS} characters (node {child} is {child_path.count('/') + 1} "
                            "levels down). The graph is damaged or was not written by TensorFlow; "
                            "read the tensors by key instead."
                        )
                    found[child].append(child_path)
                    queue.append((child, child_path))
        return found

    def variables(self) -> list[ObjVariable]:
        """Every ``VARIABLE_VALUE`` attribute with a checkpoint key, in node order, slots linked.

        Example::

            for var in graph.variables():
                print(var.key, var.paths[:1], var.slot_of)
        """
        paths = self.paths()
        keys = {
            i: k
            for i, n in enumerate(self.nodes)
            for a, _, k in n.attributes
            if a == VARIABLE_VALUE and k
        }
        slots: dict[int, tuple[int, str, int]] = {}
        for opt_id, node in enumerate(self.nodes):
            for original, slot_name, slot_node in node.slot_variables:
                slots[slot_node] = (original, slot_name, opt_id)
        out: list[ObjVariable] = []
        for node_id, node in enumerate(self.nodes):
            for name, full_name, key in node.attributes:
                if name != VARIABLE_VALUE or not key:
                    continue
                var = ObjVariable(key, tuple(paths[node_id]), node_id, full_name=full_name)
                if node_id in slots:
                    original, slot_name, opt_id = slots[node_id]
                    opt_paths = paths[opt_id]
                    var = replace(
                        var, slot_of=keys.get(original), slot_name=slot_name,
                        optimizer_path=opt_paths[0] if opt_paths else None,
                    )  # fmt: skip
                out.append(var)
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
