"""Live models as the engine sees them: describe their variables as VarSpecs, and assign values.

Three kinds of model are understood:

- Keras 3 (``keras.Model`` / ``keras.layers.Layer``): names are ``variable.path``
  (``sequential/dense/kernel``); the object-graph paths (``_functional/_operations/1/_kernel``)
  are aliases, so a TF2 checkpoint of a similar model matches by path.
- tf-keras (``tf_keras.Model``): names are ``variable.name`` (``dense/kernel:0``).
- ``tf.Module``: names are ``variable.name``; the attribute paths (``layer1/w``) are aliases.

Keras 3 models need no TensorFlow on any backend: object paths and (off TensorFlow) creation
order come from Keras's own structure (:mod:`ckptbridge.sides._keras`), values are assigned with
``variable.assign``. On TensorFlow, creation order comes from the variables' unique ids (a global
counter in eager mode), never from ``model.weights``, whose order differs in branched models.
tf-keras models and ``tf.Module`` need TensorFlow (:func:`ckptbridge._optional.import_tensorflow`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any, Literal

from ckptbridge._errors import MappingError
from ckptbridge._optional import import_tensorflow
from ckptbridge.engine._spec import VarSpec
from ckptbridge.sides import _keras

__all__ = [
    "LiveModel",
    "ModelKind",
    "assign_values",
    "check_values",
    "describe_model",
    "is_live_model",
]

ModelKind = Literal["keras", "tf_keras", "module"]

_CKPT_ROOT = "model"  # the attribute name users give the model in tf.train.Checkpoint(model=...)
_MAX_PATHS = 4  # aliases kept per variable; the shortest paths come first (breadth first)


@dataclass(frozen=True)
class LiveModel:
    """A model's restorable variables: ``specs`` for the engine, ``variables`` by spec name."""

    kind: ModelKind
    label: str
    specs: tuple[VarSpec, ...]
    variables: dict[str, Any]
    on_tensorflow: bool = True  # variables are tf.Variables (TF's bulk read can feed them)


def _kind_of(obj: object) -> ModelKind | None:
    modules = [cls.__module__ for cls in type(obj).__mro__]
    if any(m.startswith("keras.") for m in modules) and any(m.endswith(".layer") for m in modules):
        return "keras"
    if any(m.startswith("tf_keras.") for m in modules):
        return "tf_keras"
    if any(m.startswith("tensorflow.") and m.endswith("module.module") for m in modules):
        return "module"
    return None


def is_live_model(obj: object) -> bool:
    """True for a Keras 3 layer/model, a tf-keras model or a ``tf.Module``; False for paths.

    >>> is_live_model("old/model.ckpt-1000")
    False
    """
    if isinstance(obj, (str, bytes, os.PathLike)):
        return False
    return _kind_of(obj) is not None


def _creation_order(variable: Any, fallback: int) -> int:
    """The global uid TensorFlow put at the end of ``_unique_id`` (``dense/kernel_123``)."""
    handle = getattr(variable, "_value", None)
    if handle is None or not hasattr(handle, "_unique_id"):
        handle = variable
    uid = str(getattr(handle, "_unique_id", ""))
    tail = uid.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else fallback


def _dtype_name(variable: Any) -> str:
    dtype = variable.dtype
    return str(getattr(dtype, "name", dtype))


def _object_paths(root: Any, wanted: set[int]) -> dict[int, list[str]]:
    """Object-graph paths (as ``tf.train.Checkpoint`` would write them) of the wanted objects."""
    tf = import_tensorflow("a tf-keras or tf.Module model")
    found: dict[int, list[str]] = {}
    seen = {id(root)}
    queue: list[tuple[Any, str]] = [(root, "")]
    for obj, path in queue:  # breadth first: the queue grows while it is read
        try:
            children = tf.train.TrackableView(obj).children(obj)
        except Exception:  # an exotic trackable only costs its aliases
            continue
        for name, child in children.items():
            child_path = f"{path}/{name}" if path else name
            if id(child) in wanted:
                found.setdefault(id(child), []).append(child_path)
            if id(child) not in seen:
                seen.add(id(child))
                queue.append((child, child_path))
    return found


def _keras_backend() -> str:
    import keras

    return str(keras.backend.backend())


def _orders(model: Any, kind: ModelKind, variables: list[Any]) -> list[int | None]:
    """Each variable's creation rank, or all None when the backend and Keras recorded none."""
    if kind == "keras" and _keras_backend() != "tensorflow":
        ranks = _keras.creation_order(model)
        if ranks is None:
            return [None] * len(variables)
        if any(id(v) not in ranks for v in variables):
            return [None] * len(variables)
        return [ranks[id(v)] for v in variables]
    return [_creation_order(v, i) for i, v in enumerate(variables)]


def _owning_layers(model: Any) -> dict[int, str]:
    """id(variable) -> class name of the layer or cell that owns it directly."""
    owners: dict[int, str] = {}
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is None:
        return owners
    for layer in flatten(include_self=True, recursive=True):
        own = [
            *getattr(layer, "_trainable_variables", getattr(layer, "_trainable_weights", [])),
            *getattr(
                layer, "_non_trainable_variables", getattr(layer, "_non_trainable_weights", [])
            ),
        ]
        for v in own:
            owners.setdefault(id(v), type(layer).__name__)
    return owners


def _require_built(model: Any, kind: ModelKind) -> None:
    if kind == "module" or getattr(model, "built", True):
        return
    name = getattr(model, "name", type(model).__name__)
    raise MappingError(
        f"model {name!r} is not built: its variables do not exist yet, so there is nothing to "
        "restore into. Call it on an input once (model(x)) or call model.build(input_shape) "
        "first, then restore."
    )


def _model_variables(model: Any, kind: ModelKind) -> list[Any]:
    if kind == "module":
        return list(model.variables)
    return list(model.weights)  # Keras 3: excludes seed-generator state and optimizer variables


def _base_name(variable: Any, kind: ModelKind) -> str:
    return str(variable.path) if kind == "keras" else str(variable.name)


def describe_model(model: Any) -> LiveModel:
    """Describe every restorable variable of ``model`` as a :class:`VarSpec`, in creation order.

    Example: ``[s.name for s in describe_model(model).specs]`` ->
    ``['sequential/dense/kernel', 'sequential/dense/bias']`` for
    ``model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])``.
    """
    kind = _kind_of(model)
    if kind is None:
        raise MappingError(
            f"cannot restore into a {type(model).__name__}: expected a Keras 3 model or layer, a "
            "tf-keras model or a tf.Module. Pass the model object (not its name or a path)."
        )
    _require_built(model, kind)
    variables = _model_variables(model, kind)
    wanted = {id(v) for v in variables} | {id(getattr(v, "_value", v)) for v in variables}
    if kind == "keras":
        paths = _keras.object_paths(model, wanted, _MAX_PATHS)
    else:
        paths = _object_paths(model, wanted)
    owners = _owning_layers(model)
    ranks = _orders(model, kind, variables)
    known = all(r is not None for r in ranks)
    ordered = sorted(enumerate(variables), key=lambda iv: (ranks[iv[0]] or 0, iv[0]))
    if not known:  # keep Keras's listing, but say the order is unknown
        ordered = list(enumerate(variables))
    specs: list[VarSpec] = []
    handles: dict[str, Any] = {}
    for position, (_, v) in enumerate(ordered):
        order = position if known else None
        obj_paths = paths.get(id(v)) or paths.get(id(getattr(v, "_value", v))) or []
        name = _base_name(v, kind)
        if name in handles:  # e.g. two unnamed tf.Module variables, both 'Variable:0'
            name = (
                obj_paths[0] if obj_paths and obj_paths[0] not in handles else f"{name}#{position}"
            )
        aliases = [p for p in obj_paths[:_MAX_PATHS] if p != name]
        aliases += [f"{_CKPT_ROOT}/{p}" for p in obj_paths[:_MAX_PATHS]]
        if kind == "module" and name != str(v.name):
            aliases.insert(0, str(v.name))
        specs.append(
            VarSpec(
                name=name,
                shape=tuple(int(d) for d in v.shape),
                dtype=_dtype_name(v),
                order=order,
                aliases=tuple(dict.fromkeys(aliases)),
                layer=owners.get(id(v)),
                trainable=bool(getattr(v, "trainable", True)),
                counted=known or kind != "keras",
            )
        )
        handles[name] = v
    label = str(getattr(model, "name", None) or type(model).__name__)
    on_tf = kind != "keras" or _keras_backend() == "tensorflow"
    return LiveModel(kind, label, tuple(specs), handles, on_tensorflow=on_tf)


def check_values(live: LiveModel, values: dict[str, Any]) -> None:
    """Check every value (array or tensor) against its variable's shape and dtype; raise before
    anything is assigned.

    Example: ``check_values(live, {"sequential/dense/bias": np.zeros(2, np.float32)})``.
    """
    problems: list[str] = []
    specs = {s.name: s for s in live.specs}
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None:
            problems.append(f"  {name}: not a variable of model {live.label!r}")
        elif tuple(value.shape) != spec.shape:
            problems.append(f"  {name}: expected shape {spec.shape}, received {tuple(value.shape)}")
        elif _dtype_name(value) != spec.dtype:
            problems.append(f"  {name}: expected dtype {spec.dtype}, received {_dtype_name(value)}")
    if problems:
        raise MappingError(
            f"{len(problems)} value(s) do not fit model {live.label!r}; nothing was assigned:\n"
            + "\n".join(problems[:20])
            + "\nFix: add a transform (reshape/transpose/cast) for these targets in the rules."
        )


def assign_values(live: LiveModel, values: dict[str, Any]) -> None:
    """Assign checked values to the model's variables (call :func:`check_values` first).

    Example: ``assign_values(live, {"sequential/dense/bias": np.ones(2, np.float32)})``.
    """
    on_numpy = live.kind == "keras" and _keras_backend() == "numpy"
    for name, value in values.items():
        variable = live.variables[name]
        if on_numpy and _copy_into_own_array(variable, value):
            continue
        handle = getattr(variable, "_value", None) if live.kind == "keras" else None
        if handle is not None and hasattr(handle, "assign") and hasattr(handle, "_unique_id"):
            handle.assign(value)  # Keras 3 on TensorFlow: the backing tf.Variable, value checked
        else:
            variable.assign(value)  # any backend: Keras converts the NumPy value
        del handle  # the next variable's array must be held by its variable alone (see above)


def _copy_into_own_array(variable: Any, value: Any) -> bool:
    """Keras 3 on NumPy: copy ``value`` into the variable's own array, where ``assign`` would
    store a fresh copy, when nobody could tell the difference: the array is held by the variable
    alone, writable, contiguous, of the same shape and dtype, outside a stateless scope (where
    ``assign`` only records the update). False: the caller assigns.

    ``assign`` allocates each new array (``np.array(value)``), faulted in page by page: 0.19 s of
    a 0.24 s VGG-16 restore; the variable's own pages are already there.
    """
    import sys

    import numpy as np

    try:
        from keras.src.backend.common.stateless_scope import in_stateless_scope
    except ImportError:  # another Keras layout: assign as usual
        return False
    own = getattr(variable, "__dict__", {}).get("_value")  # not through a property
    if type(own) is not np.ndarray or in_stateless_scope():
        return False
    if sys.getrefcount(own) > _held_by_one_dict():  # before own.flags (which refers to own)
        return False  # someone holds variable.value: assign leaves their array as it was
    if not (own.flags.owndata and own.flags.writeable and own.flags.c_contiguous):
        return False
    if own.shape != tuple(value.shape) or own.dtype != value.dtype:
        return False
    np.copyto(own, value, casting="no")
    return True


@functools.cache  # the same for every variable: measured once per interpreter
def _held_by_one_dict() -> int:
    """What ``sys.getrefcount`` says, in :func:`_copy_into_own_array`'s position, of an array that
    one attribute dictionary and one local variable hold (interpreters count these differently)."""
    import sys

    import numpy as np

    holder = {"_value": np.empty(0)}
    own = holder["_value"]
    return sys.getrefcount(own)
