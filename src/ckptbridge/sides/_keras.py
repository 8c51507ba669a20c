"""Keras 3 models read from Keras's own structure: the same on JAX, PyTorch, NumPy and TensorFlow.

Two things the engine needs from a live Keras 3 model are computed here without TensorFlow:

- **Object-graph paths** (:func:`object_paths`): the paths ``tf.train.Checkpoint(model=m)`` writes
  for each variable (``_functional/_operations/1/_kernel``), so that a TF2 checkpoint maps the same
  way on every backend. On the TensorFlow backend a Keras layer tracks, in the order the attributes
  were assigned, every attribute holding a layer, a variable, an optimizer, or a plain ``list`` /
  ``dict`` / tuple (TensorFlow wraps those; Keras's own ``TrackedList`` is not tracked); a list's
  children are named by index, a dict's by key. The walk below applies those rules to the
  attributes themselves, so it needs no TensorFlow; a test checks it against
  ``tf.train.TrackableView`` for Sequential, branched functional, subclassed, nested and RNN
  models and for a built optimizer.
- **Creation order** (:func:`creation_order`) where the backend keeps no creation counter (TensorFlow
  does: ``sides._live`` reads it there). Keras records when a layer was first called in a
  functional graph: every symbolic output gets the next number of one global counter
  (``keras_tensor_17``), and a layer builds its variables in that first call. Layers are ordered
  by that number; sub-layers of Keras's own layers (an LSTM's cell, a Bidirectional's two
  directions, attention projections) by the order Keras builds them. Where nothing recorded the
  order (a subclassed model's layers, called eagerly; a user layer with both variables and
  variable-owning sub-layers), the order is unknown (``None``) and the engine reports ties
  instead of pairing by a guess.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

__all__ = ["creation_order", "object_paths"]

# TensorFlow's own bookkeeping attributes on a Keras object (TF backend only); never children.
_TF_PRIVATE = "_self_"
# TensorFlow's wrappers of plain containers (what a list attribute becomes on the TF backend).
_TF_WRAPPERS = {"ListWrapper", "_DictWrapper", "_TupleWrapper"}
# A Keras layer's tracker stores, which Keras keeps out of TensorFlow's object graph.
_LAYER_STORES = frozenset(
    {"_trainable_variables", "_non_trainable_variables", "_layers", "_metrics", "_seed_generators"}
)
_COUNTER = re.compile(r"^keras_tensor(?:_(\d+))?$")


def _keras_types() -> tuple[type, ...]:
    import keras

    return (keras.layers.Layer, keras.Variable, keras.optimizers.Optimizer)


def _is_tf_wrapper(value: object) -> bool:
    cls = type(value)
    return cls.__name__ in _TF_WRAPPERS and cls.__module__.startswith("tensorflow.")


def _is_plain_container(value: object) -> bool:
    """A container TensorFlow tracks as a layer attribute: exactly list/dict, or a tuple."""
    cls = type(value)
    return cls in (list, dict, OrderedDict) or isinstance(value, tuple) or _is_tf_wrapper(value)


def _is_container(value: object) -> bool:
    """Any container, Keras's ``TrackedList``/``TrackedDict`` included (tracked in optimizers)."""
    return isinstance(value, (list, dict, tuple)) or _is_tf_wrapper(value)


_TORCH_SLOTS = ("_modules", "_parameters", "_buffers")


def _attributes(obj: object) -> list[tuple[str, Any]]:
    """An object's attributes in assignment order. On PyTorch, a layer is a ``torch.nn.Module``
    that keeps its sub-layers in ``_modules``: they count as attributes (after the others; the
    interleaving is lost, which only changes the order of equally short paths)."""
    attrs = vars(obj)
    modules = attrs.get("_modules")
    if not isinstance(modules, dict) or not any(
        c.__module__.startswith("torch.nn") for c in type(obj).__mro__
    ):
        return list(attrs.items())
    plain = [(k, v) for k, v in attrs.items() if k not in _TORCH_SLOTS]
    return plain + [(k, v) for k, v in modules.items() if k != "_torch_params"]


def _children(obj: object, tracked: tuple[type, ...]) -> Iterable[tuple[str, Any]]:
    """The (name, child) pairs TensorFlow's object graph gives ``obj``, in its order."""
    layer_type, _variable_type, optimizer_type = tracked
    if isinstance(obj, layer_type):
        # Keras untracks its own bookkeeping lists on TensorFlow, and a list a layer holds
        # becomes a Keras TrackedList, which TensorFlow does not track either.
        for name, value in _attributes(obj):
            if name.startswith(_TF_PRIVATE) or name in _LAYER_STORES:
                continue
            if isinstance(value, tracked) or _is_plain_container(value):
                yield name, value
    elif isinstance(obj, optimizer_type):
        for name, value in _attributes(obj):
            if not name.startswith(_TF_PRIVATE) and (
                isinstance(value, tracked) or _is_container(value)
            ):
                yield name, value
    elif _is_container(obj):
        if hasattr(obj, "items"):
            items: Iterable[tuple[Any, Any]] = obj.items()
        else:
            items = enumerate(obj)  # type: ignore[arg-type]
        for key, value in items:
            if isinstance(value, tracked) or _is_container(value):
                yield str(key), value


def object_paths(root: object, wanted: set[int], limit: int = 4) -> dict[int, list[str]]:
    """Object-graph paths of the ``wanted`` objects (by ``id``) under ``root``, shortest first.

    Breadth first, like TensorFlow's checkpoint writer: the first path of a variable is the key
    a TF2 checkpoint of the same model stores it under (plus ``/.ATTRIBUTES/VARIABLE_VALUE``).

    Example: for ``m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])``,
    ``object_paths(m, {id(m.layers[0].kernel)})[id(m.layers[0].kernel)]`` ->
    ``['_functional/_operations/1/_kernel']``.
    """
    tracked = _keras_types()
    found: dict[int, list[str]] = {}
    seen = {id(root)}
    queue: deque[tuple[object, str]] = deque([(root, "")])
    while queue:
        obj, path = queue.popleft()
        for name, child in _children(obj, tracked):
            child_path = f"{path}/{name}" if path else name
            if id(child) in wanted and len(found.setdefault(id(child), [])) < limit:
                found[id(child)].append(child_path)
            if id(child) not in seen:
                seen.add(id(child))
                queue.append((child, child_path))
    return found


def _own_variables(layer: Any) -> list[Any]:
    return [*layer._trainable_variables, *layer._non_trainable_variables]


def _first_call(layer: Any) -> int | None:
    """The global counter of the first symbolic output ``layer`` produced, if it was ever called."""
    numbers = []
    for node in getattr(layer, "_inbound_nodes", ()):
        for tensor in getattr(node, "outputs", ()):
            m = _COUNTER.match(str(getattr(tensor, "name", "")))
            if m:
                numbers.append(int(m.group(1) or 0))
    return min(numbers) if numbers else None


def _build_stamp(layer: Any) -> int | None:
    """When ``layer`` was built, as far as Keras recorded it: its first call, or earlier when a
    layer it holds was called before (a nested model built at its own construction)."""
    stamps = [_first_call(layer)] + [_build_stamp(s) for s in _sublayers(layer)]
    known = [s for s in stamps if s is not None]
    return min(known) if known else None


def _is_keras_own(layer: object) -> bool:
    return type(layer).__module__.startswith("keras.")


def _sublayers(layer: Any) -> list[Any]:
    return list(getattr(layer, "_layers", ()))


def _holds_variables(layer: Any) -> bool:
    return bool(getattr(layer, "weights", ()))


def _order_within(layer: Any, out: list[Any]) -> bool:
    """Append ``layer``'s variables in creation order; False when that order is not known.

    Its own variables come first (a layer creates them in ``build`` before it builds what it
    holds); sub-layers follow by first call when Keras recorded one, else in the order the
    layer holds them, which is build order for Keras's own layers only.
    """
    own = _own_variables(layer)
    subs = [s for s in _sublayers(layer) if _holds_variables(s)]
    if not subs:
        out.extend(own)
        return True
    stamps = [_build_stamp(s) for s in subs]
    if all(s is not None for s in stamps):
        subs = [s for _, _, s in sorted(zip(stamps, range(len(subs)), subs, strict=True))]
    elif len(subs) > 1 and not _is_keras_own(layer):
        return False  # a user's layer built its sub-layers in its own call order: not recorded
    if own and not _is_keras_own(layer):
        return False  # own variables and sub-layers: which came first is not recorded
    out.extend(own)
    return all(_order_within(s, out) for s in subs)


def creation_order(model: Any) -> dict[int, int] | None:
    """``id(variable) -> rank`` in creation order as Keras recorded it, or None when unknown.

    Example: ``creation_order(model)`` -> ``{id(dense.kernel): 0, id(dense.bias): 1}`` for a
    model whose one layer is the Dense layer ``dense``.
    """
    ordered: list[Any] = []
    if not _order_within(model, ordered):
        return None
    ranks: dict[int, int] = {}
    for v in ordered:
        ranks.setdefault(id(v), len(ranks))
    return ranks
