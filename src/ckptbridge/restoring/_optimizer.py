"""The optimizer part of ``restore`` (``options.optimizer_state: true``): plan, read and check it
before the restore assigns anything, assign it with the weights.

Example: ``prepared = prepare_restore(model, live.variables, ckpt, plan, strict=True)`` (raises
before anything is assigned), then ``assign_values(live, weight_values)`` and
``assign_optimizer(prepared.live, prepared.values)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ckptbridge._errors import MappingError
from ckptbridge._optional import not_found_error_class
from ckptbridge.engine._plan import MappingPlan
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.optim._map import map_counters, map_slots
from ckptbridge.engine.optim._types import OptimizerPlan
from ckptbridge.engine.optim._vocab import tf1_side
from ckptbridge.sides._checkpoint import checkpoint_specs
from ckptbridge.sides._optimizer import (
    LiveOptimizer,
    check_optimizer,
    describe_optimizer,
    optimizer_of,
    slot_values,
)
from ckptbridge.sides._tf2_optimizer import tf2_side

if TYPE_CHECKING:
    from ckptbridge.format import Checkpoint

__all__ = ["PreparedOptimizer", "prepare_restore"]


@dataclass(frozen=True)
class PreparedOptimizer:
    """Everything the optimizer restore will assign, computed and checked."""

    live: LiveOptimizer
    plan: OptimizerPlan
    values: dict[str, np.ndarray[Any, Any]]


def _entry_specs(ckpt: Checkpoint) -> dict[str, VarSpec]:
    return {
        key: VarSpec(key, tuple(int(d) for d in e.shape), str(e.dtype))
        for key, e in ckpt.entries.items()
    }


def _no_state(label: str, model: str, tf2: bool) -> MappingError:
    expected = (
        "an optimizer object in its object graph (written by tf.train.Checkpoint(model=..., "
        "optimizer=model.optimizer), under any attribute name)"
        if tf2
        else "slots such as '<variable>/Adam', '<variable>/Momentum', '<variable>/RMSProp', "
        "'<variable>/Adagrad' or a 'global_step'"
    )
    return MappingError(
        f"options.optimizer_state is set, but {label!r} holds no optimizer state for model "
        f"{model!r}: expected {expected}. Fix: set options.optimizer_state: false to restore "
        "the weights only."
    )


def _raise_missing(plan: OptimizerPlan, label: str) -> None:
    rows = [f"  {u.target} {tuple(u.shape)}: {u.why}" for u in plan.missing[:20]]
    more = f"\n  ... and {len(plan.missing) - 20} more" if len(plan.missing) > 20 else ""
    message = (
        f"{len(plan.missing)} variable(s) of {plan.target_kind} have no {plan.source_kind} state "
        f"in {label!r}; nothing was assigned:\n" + "\n".join(rows) + more + "\nFix: map their "
        "weights (the slots follow them), or restore with strict=False to leave them as they are."
    )
    error = not_found_error_class()
    raise error(message, missing=tuple(u.target for u in plan.missing))  # type: ignore[call-arg]


def prepare_restore(
    model: Any, weights: dict[str, Any], ckpt: Checkpoint, plan: MappingPlan, *, strict: bool
) -> PreparedOptimizer:
    """Map ``ckpt``'s optimizer state (TF1 slots, or a TF2 checkpoint's optimizer object) onto
    ``model.optimizer``, following the weight ``plan``.

    ``weights``: the model's variables by the names ``plan`` uses. Raises (before anything is
    assigned) when the model has no optimizer, the kinds differ, or, with ``strict``, an optimizer
    variable has no source.

    Example: ``prepare_restore(model, live.variables, ckpt, plan, strict=True).plan.slots[0].target``
    -> ``'adam/sequential_dense_kernel_momentum'`` for a Sequential model compiled with Adam.
    """
    label = str(ckpt.prefix)
    optimizer = optimizer_of(model)
    live_opt = describe_optimizer(optimizer, weights, list(model.trainable_variables))
    tf2 = ckpt.kind == "tf2"
    if tf2:
        specs = {s.name: s for s in checkpoint_specs(ckpt)}
        source = tf2_side(plan.auxiliary, specs, ckpt.object_graph, label=label)
    else:
        source = tf1_side(plan.auxiliary, _entry_specs(ckpt), label=label)
    if source is None:
        raise _no_state(label, str(getattr(model, "name", type(model).__name__)), tf2)
    opt_plan = map_slots(plan.matches, source, live_opt.side)
    scalars = {n: float(np.asarray(ckpt.read(n))) for n in source.counters.values()}
    opt_plan.counters = map_counters(source, live_opt.side, scalars)
    if not opt_plan.counters:
        opt_plan.notes.append(
            f"{live_opt.side.counters['iterations']} not restored: the checkpoint has no step "
            "counter (global_step or beta powers)"
        )
    if strict and opt_plan.missing:
        _raise_missing(opt_plan, label)
    values = slot_values(opt_plan, ckpt.read)
    check_optimizer(live_opt, values)
    return PreparedOptimizer(live_opt, opt_plan, values)
