"""Live optimizers: describe a Keras 3 / tf-keras optimizer's state, compute its new values, assign.

TensorFlow and Keras are imported lazily, by the callers that hand in live objects.

- Keras 3 (``keras.optimizers.Adam`` ...): variables are named by ``variable.path``
  (``adam/sequential_dense_kernel_momentum``, ``adam/iteration``).
- tf-keras (``tf_keras.optimizers.Adam`` ...): ``<optimizer name>/<variable name>``
  (``Adam/m/dense/kernel:0``, ``Adam/iteration:0``).

Both keep one list of slots per role (``_momentums``, ``_velocities``...), indexed like the
trainable variables the optimizer was built with; slots are found through that index, not by
parsing names. An optimizer that is not built yet is built on ``model.trainable_variables``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ckptbridge._errors import MappingError
from ckptbridge.engine.optim._types import Family, Hyper, OptimizerPlan, OptimizerSide, SlotRef
from ckptbridge.sides._live import _dtype_name

__all__ = [
    "LiveOptimizer",
    "assign_optimizer",
    "check_optimizer",
    "describe_optimizer",
    "optimizer_of",
    "slot_values",
]

# Keras class name -> family; SGD is "momentum" or "sgd" by its momentum
_FAMILY: dict[str, Family] = {"Adam": "adam", "SGD": "momentum", "RMSprop": "rmsprop",
                              "Adagrad": "adagrad"}  # fmt: skip
# family -> (role, attribute holding that role's slot list) for both Keras flavours
_ROLE_ATTRS: dict[str, tuple[tuple[str, str], ...]] = {
    "adam": (("m", "_momentums"), ("v", "_velocities"), ("vhat", "_velocity_hats")),
    "momentum": (("momentum", "momentums"),),
    "rmsprop": (("velocity", "_velocities"), ("momentum", "_momentums"),
                ("average_gradient", "_average_gradients")),
    "adagrad": (("accumulator", "_accumulators"),),
    "sgd": (),
}  # fmt: skip


@dataclass(frozen=True)
class LiveOptimizer:
    """A live optimizer as the mapper sees it: its side, and its variables by name."""

    side: OptimizerSide
    variables: dict[str, Any] = field(default_factory=dict)
    label: str = ""


def optimizer_of(model: Any) -> Any:
    """``model.optimizer``, or a :class:`MappingError` that says to compile the model.

    Example: ``type(optimizer_of(model)).__name__`` -> ``'Adam'`` after
    ``model.compile(optimizer="adam", loss="mse")``.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        name = getattr(model, "name", type(model).__name__)
        raise MappingError(
            f"options.optimizer_state is set, but model {name!r} has no optimizer to restore "
            "into. Expected a compiled Keras model. Fix: call model.compile(optimizer=..., "
            "loss=...) before restoring, or set options.optimizer_state: false."
        )
    return optimizer


def _flavour(optimizer: Any) -> str:
    modules = [cls.__module__ for cls in type(optimizer).__mro__]
    if any(m.startswith("tf_keras.") and ".legacy." in m for m in modules):
        return "legacy"
    if any(m.startswith("tf_keras.") for m in modules):
        return "tf_keras"
    if any(m.startswith("keras.") for m in modules):
        return "keras"
    return "other"


def _family(optimizer: Any, flavour: str) -> Family:
    cls = type(optimizer).__name__
    family = _FAMILY.get(cls)
    if family is None or flavour in ("legacy", "other"):
        kind = f"{type(optimizer).__module__}.{cls}"
        raise MappingError(
            f"cannot restore TF1 optimizer state into a {kind}: expected a Keras 3 or tf-keras "
            "Adam, SGD, RMSprop or Adagrad (tf_keras.optimizers.legacy.* is not supported). Fix: "
            "compile with the optimizer that matches the TF1 one, e.g. keras.optimizers.Adam."
        )
    if family == "momentum" and _float(optimizer.momentum) == 0.0:
        return "sgd"
    return family


def _float(value: Any) -> float:
    return float(np.asarray(value() if callable(value) else value))


def _hyper(optimizer: Any, family: Family) -> Hyper:
    raw_lr = getattr(optimizer, "_learning_rate", None)
    schedule = (
        raw_lr is not None and not hasattr(raw_lr, "assign") and hasattr(raw_lr, "get_config")
    )
    lr = _float(optimizer.learning_rate)

    def opt(name: str) -> float | None:
        return _float(getattr(optimizer, name)) if hasattr(optimizer, name) else None

    return Hyper(
        learning_rate=lr,
        beta_1=opt("beta_1"),
        beta_2=opt("beta_2"),
        epsilon=opt("epsilon"),
        momentum=opt("momentum"),
        rho=opt("rho"),
        centered=bool(getattr(optimizer, "centered", False)),
        nesterov=bool(getattr(optimizer, "nesterov", False)),
        amsgrad=bool(getattr(optimizer, "amsgrad", False)),
        lr_is_schedule=schedule,
    )


def _ensure_built(optimizer: Any, trainable: list[Any], flavour: str) -> None:
    built = (
        getattr(optimizer, "built", False)
        if flavour == "keras"
        else getattr(optimizer, "_built", False)
    )
    if not built:
        optimizer.build(trainable)


def _index(optimizer: Any, variable: Any, flavour: str) -> int:
    if flavour == "keras":
        return int(optimizer._get_variable_index(variable))
    return int(optimizer._index_dict[optimizer._var_key(variable)])


def _name(optimizer: Any, variable: Any, flavour: str) -> str:
    if flavour == "keras":
        return str(variable.path)
    return f"{optimizer.name}/{variable.name}"


def describe_optimizer(
    optimizer: Any, weights: dict[str, Any], trainable: list[Any]
) -> LiveOptimizer:
    """Describe ``optimizer``'s slots (per model weight) and counter, building it if needed.

    ``weights``: the model's variables by the names the weight plan uses; ``trainable``: the
    variables the optimizer trains (``model.trainable_variables``).

    Example: ``describe_optimizer(model.optimizer, live.variables, model.trainable_variables)``
    for a model compiled with Adam: its ``side.counters`` are
    ``{'iterations': 'adam/iteration', 'learning_rate': 'adam/learning_rate'}``.
    """
    flavour = _flavour(optimizer)
    family = _family(optimizer, flavour)
    _ensure_built(optimizer, trainable, flavour)
    names = {id(v): n for n, v in weights.items()}
    slots: list[SlotRef] = []
    handles: dict[str, Any] = {}
    roles = () if family == "sgd" else _ROLE_ATTRS[family]
    for variable in trainable:
        weight = names.get(id(variable))
        if weight is None:
            continue
        i = _index(optimizer, variable, flavour)
        for role, attr in roles:
            lst = getattr(optimizer, attr, None) or []
            if i < len(lst):
                v = lst[i]
                name = _name(optimizer, v, flavour)
                shape = tuple(int(d) for d in v.shape)
                slots.append(SlotRef(name, weight, role, shape, _dtype_name(v)))
                handles[name] = v
    iterations = optimizer.iterations
    it_name = _name(optimizer, iterations, flavour)
    handles[it_name] = iterations
    counters = {"iterations": it_name}
    lr = getattr(optimizer, "_learning_rate", None)
    if lr is not None and hasattr(lr, "assign") and hasattr(lr, "shape"):
        counters["learning_rate"] = _name(optimizer, lr, flavour)
        handles[counters["learning_rate"]] = lr
    kind = f"{'keras' if flavour == 'keras' else 'tf_keras'}.optimizers.{type(optimizer).__name__}"
    side = OptimizerSide(family, "keras", tuple(slots), counters, _hyper(optimizer, family), kind)
    return LiveOptimizer(side, handles, kind)


def slot_values(plan: OptimizerPlan, read: Any) -> dict[str, np.ndarray[Any, Any]]:
    """Compute every target slot and counter of ``plan``; ``read(name)`` returns a source array.

    Example: ``values = slot_values(opt_plan, ckpt.read)``.
    """
    from ckptbridge.transforms import apply_steps, resolve_dtype

    values: dict[str, np.ndarray[Any, Any]] = {}
    for m in plan.slots:
        dtype = resolve_dtype(m.target_dtype)
        if not m.sources:
            values[m.target] = np.zeros(m.target_shape, dtype)
            continue
        arrays = [np.asarray(read(s)) for s in m.sources]
        value = apply_steps(arrays, list(m.steps)) if m.steps else arrays[0]
        if m.scale != 1.0:
            value = value.astype(np.float64) * m.scale
        values[m.target] = np.asarray(value).astype(dtype)
    for c in plan.counters:
        values[c.target] = np.asarray(c.value, resolve_dtype(c.dtype))
    return values


def check_optimizer(live_opt: LiveOptimizer, values: dict[str, np.ndarray[Any, Any]]) -> None:
    """Check every value against its optimizer variable's shape; raise before anything is assigned.

    Example: ``check_optimizer(live_opt, slot_values(opt_plan, ckpt.read))``.
    """
    problems = []
    for name, value in values.items():
        variable = live_opt.variables.get(name)
        if variable is None:
            problems.append(f"  {name}: not a variable of {live_opt.label}")
        elif tuple(value.shape) != tuple(int(d) for d in variable.shape):
            problems.append(f"  {name}: expected shape {tuple(variable.shape)}, received "
                            f"{tuple(value.shape)}")  # fmt: skip
    if problems:
        raise MappingError(
            f"{len(problems)} optimizer value(s) do not fit {live_opt.label}; nothing was "
            "assigned:\n" + "\n".join(problems[:20]) + "\nFix: check the weight transforms in "
            "the rules; slots follow their weight's steps."
        )


def assign_optimizer(live_opt: LiveOptimizer, values: dict[str, np.ndarray[Any, Any]]) -> None:
    """Assign checked values (see :func:`check_optimizer`) to the optimizer's variables.

    Example: ``assign_optimizer(live_opt, values)``.
    """
    for name, value in values.items():
        variable = live_opt.variables[name]
        variable.assign(value.astype(_dtype_name(variable)))
