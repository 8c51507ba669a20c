"""Optimizer objects and their slots in a TF2 object graph, whatever attribute tracks them.

A node is an optimizer when it records ``slot_variables`` (tf-keras legacy ``OptimizerV2``,
``tf.compat.v1.train`` optimizers under ``tf.train.Checkpoint``), when it tracks ``_iterations``
beside ``_variables`` (Keras 3, tf-keras), or when it is an unbuilt ``OptimizerV2`` (an ``iter``
child among hyperparameters). Every variable that cannot be reached from the root without passing
through an optimizer is optimizer state; a model weight the optimizer also tracks
(``opt/_trainable_variables/0``) stays a weight. Slots are tied to their weight:

- ``slot_variables`` name the original variable and the slot (``m``, ``v``, ``momentum``...);
- Keras 3 keeps one list per role (``_momentums/i``, ``_velocities/i``) indexed like
  ``_trainable_variables/i``; tf-keras has no such list but names each slot
  ``<Optimizer>/<role>/<weight's full name>``.

::

    facts = optimizer_facts(graph)   # checkpoint key -> OptimizerFact
    side = tf2_side(plan.auxiliary, specs, graph)   # for options.optimizer_state
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ckptbridge.engine._plan import Auxiliary
from ckptbridge.engine._spec import VarSpec
from ckptbridge.format._objgraph import VARIABLE_VALUE, ObjectGraph

if TYPE_CHECKING:
    from ckptbridge.engine.optim._types import Family, OptimizerSide, SlotRef

__all__ = ["OptimizerFact", "optimizer_facts", "tf2_side"]

_COUNTERS = frozenset({"_iterations", "iter", "iterations"})
_LEARNING_RATES = frozenset({"_learning_rate", "learning_rate", "lr"})
_HYPER = frozenset({"iter", "beta_1", "beta_2", "decay", "learning_rate", "lr", "epsilon", "rho",
                    "momentum", "_iterations", "_learning_rate"})  # fmt: skip
_NOT_SLOT_LISTS = frozenset({"_variables", "_trainable_variables", "_trainable_variables_indices",
                             "_index_dict", "_iterations", "_learning_rate"})  # fmt: skip


@dataclass(frozen=True)
class OptimizerFact:
    """One optimizer variable: ``kind`` (an engine auxiliary kind), ``of`` (the checkpoint key of
    the weight a slot belongs to), ``slot`` (``m``, ``_momentums``...: the slot's name per weight),
    ``optimizer`` (the optimizer's first object path) and ``local`` (its own attribute name)."""

    key: str
    kind: str
    optimizer: str
    of: str | None = None
    slot: str | None = None
    local: str = ""


def _is_optimizer(graph: ObjectGraph, node_id: int) -> bool:
    node = graph.nodes[node_id]
    if node.slot_variables:
        return True
    if not node.children:  # a variable's node, mostly: no names to test
        return False
    names = {name for _, name in node.children}
    if "_iterations" in names and "_variables" in names:
        return True
    return "iter" in names and names <= _HYPER and bool(names)


def _reachable_without(graph: ObjectGraph, blocked: set[int]) -> set[int]:
    seen = {0}
    queue = deque([0])
    while queue:
        for child, _ in graph.nodes[queue.popleft()].children:
            if child not in seen and child not in blocked:
                seen.add(child)
                queue.append(child)
    return seen


def _key(graph: ObjectGraph, node_id: int) -> str | None:
    return next(
        (k for a, _, k in graph.nodes[node_id].attributes if a == VARIABLE_VALUE and k), None
    )


def _full_name(graph: ObjectGraph, node_id: int) -> str:
    return next((f for a, f, _ in graph.nodes[node_id].attributes if a == VARIABLE_VALUE), "")


def optimizer_facts(graph: ObjectGraph) -> dict[str, OptimizerFact]:
    """Checkpoint key -> :class:`OptimizerFact` for every optimizer variable of ``graph``.

    >>> optimizer_facts(ObjectGraph.from_variables(["model/dense/kernel"]))
    {}
    """
    optimizers = [i for i in range(len(graph.nodes)) if _is_optimizer(graph, i)]
    if not optimizers:
        return {}
    free = _reachable_without(graph, set(optimizers))
    paths = graph.paths()
    by_full_name = {
        _full_name(graph, i): i for i in free if _key(graph, i) and _full_name(graph, i)
    }
    facts: dict[str, OptimizerFact] = {}
    for opt in optimizers:
        label = paths[opt][0] if paths[opt] else f"node {opt}"
        node = graph.nodes[opt]
        for original, slot, slot_node in node.slot_variables:
            key, of = _key(graph, slot_node), _key(graph, original)
            if key and slot_node not in free:
                facts[key] = OptimizerFact(key, "optimizer_slot", label, of, slot, slot)
        children = {name: child for child, name in node.children}
        weights = _list(graph, children.get("_trainable_variables"))
        for child, name in node.children:
            key = _key(graph, child)
            if key and child not in free:
                kind = "learning_rate" if name in _LEARNING_RATES else "optimizer_other"
                facts.setdefault(key, OptimizerFact(key, kind, label, local=name))
            if name in _NOT_SLOT_LISTS or key:
                continue
            for i, slot_node in enumerate(_list(graph, child)):
                slot_key = _key(graph, slot_node)
                if not slot_key or slot_node in free:
                    continue
                owner = weights[i] if i < len(weights) else _by_name(graph, slot_node, by_full_name)
                of = _key(graph, owner) if owner is not None else None
                facts[slot_key] = OptimizerFact(slot_key, "optimizer_slot", label, of, name, name)
        for child in _list(graph, children.get("_variables")):
            key = _key(graph, child)
            if key and child not in free:
                facts.setdefault(key, OptimizerFact(key, "optimizer_other", label))
    return facts


def _list(graph: ObjectGraph, node_id: int | None) -> list[int]:
    """The elements of a tracked list (children named ``0``, ``1``...), in index order."""
    if node_id is None:
        return []
    children = graph.nodes[node_id].children
    if not children or not all(name.isdigit() for _, name in children):
        return []
    return [child for child, _ in sorted(children, key=lambda c: int(c[1]))]


def _by_name(graph: ObjectGraph, slot_node: int, by_full_name: dict[str, int]) -> int | None:
    """tf-keras slots are named ``<Optimizer>/<role>/<weight's full name>``."""
    parts = _full_name(graph, slot_node).split("/")
    return by_full_name.get("/".join(parts[2:])) if len(parts) > 2 else None


# the slot attribute (Keras 3 / tf-keras list, or OptimizerV2 slot name) -> role, per family
_ROLES: dict[str, dict[str, str]] = {
    "adam": {"_momentums": "m", "_velocities": "v", "_velocity_hats": "vhat", "m": "m", "v": "v",
             "vhat": "vhat"},
    "momentum": {"momentums": "momentum", "momentum": "momentum"},
    "rmsprop": {"_velocities": "velocity", "_momentums": "momentum",
                "_average_gradients": "average_gradient", "rms": "velocity", "momentum": "momentum",
                "mg": "average_gradient"},
    "adagrad": {"_accumulators": "accumulator", "accumulator": "accumulator"},
    "sgd": {},
}  # fmt: skip
_NAMED: dict[str, Family] = {"adam": "adam", "sgd": "momentum", "rmsprop": "rmsprop",
                             "adagrad": "adagrad"}  # fmt: skip


def _family(graph: ObjectGraph, facts: dict[str, OptimizerFact]) -> tuple[Family, str] | None:
    """The optimizer family: its variables' names (``adam/iteration``, ``RMSprop/velocity/...``),
    else the slot attributes it tracks; with the class name as written, for messages."""
    names = {
        full.split("/")[0]
        for node in graph.nodes
        for a, full, key in node.attributes
        if a == VARIABLE_VALUE and key in facts and "/" in full
    }
    known = sorted(n for n in names if n.lower() in _NAMED)
    slots = {f.slot for f in facts.values() if f.slot}
    if len(known) == 1:
        family = _NAMED[known[0].lower()]
        label = known[0]
    elif slots & {"_accumulators", "accumulator"}:
        family, label = "adagrad", "Adagrad"
    elif slots & {"_average_gradients", "mg", "rms"}:
        family, label = "rmsprop", "RMSprop"
    elif slots & {"momentums"}:
        family, label = "momentum", "SGD"
    elif slots & {"_velocities", "m", "v"}:
        family, label = "adam", "Adam"
    else:
        return None
    if family == "momentum" and not slots:
        family = "sgd"
    return family, label


def tf2_side(
    auxiliary: Sequence[Auxiliary], specs: Mapping[str, VarSpec], graph: ObjectGraph | None,
    *, label: str = "checkpoint",
) -> OptimizerSide | None:  # fmt: skip
    """The optimizer state of a TF2 checkpoint, as the optimizer mapper sees it; None without one.

    ``auxiliary``: the plan's auxiliary entries (their ``of`` and ``slot`` set by
    :func:`optimizer_facts`); ``specs``: the checkpoint's specs by name (shapes, dtypes).

    >>> tf2_side([], {}, None) is None
    True
    """
    if graph is None:
        return None
    facts = optimizer_facts(graph)
    found = _family(graph, facts) if facts else None
    if found is None:
        return None
    from ckptbridge.engine.optim._types import Hyper, OptimizerSide, SlotRef  # optimizers only

    family, name = found
    roles = _ROLES[family]
    slots: list[SlotRef] = []
    counters: dict[str, str] = {}
    for aux in auxiliary:
        fact = facts.get(aux.name)
        if fact is None:
            continue
        if aux.kind == "optimizer_slot" and aux.of and aux.slot in roles:
            spec = specs.get(aux.name)
            shape, dtype = (spec.shape, spec.dtype) if spec else ((), "float32")
            slots.append(SlotRef(aux.name, aux.of, roles[aux.slot], shape, dtype))
        elif fact.local in _COUNTERS:
            counters.setdefault("iterations", aux.name)
        elif aux.kind == "learning_rate":
            counters.setdefault("learning_rate", aux.name)
    role_set = {s.role for s in slots}
    hyper = Hyper(centered="average_gradient" in role_set, amsgrad="vhat" in role_set)
    kind = f"TF2 {name}" + (" (centered)" if hyper.centered else "")
    return OptimizerSide(family, "keras", tuple(slots), counters, hyper, kind)
