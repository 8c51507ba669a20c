"""The reverse: a Keras model's weights and optimizer state as a TF1 checkpoint.

The template (a TF1 checkpoint or ``.meta``) gives the TF1 names; the weights are mapped onto it
by the same engine as a restore (model variables -> template keys), and every weight's slots follow
it: Keras ``m``/``v`` -> ``/Adam``/``/Adam_1``, ``beta1_power = beta_1**(iterations+1)``,
``global_step = iterations``; Keras SGD's ``m`` -> ``/Momentum = m / -learning_rate``; RMSprop
``velocity``/``momentum`` (/``average_gradient``) -> ``/RMSProp``/``/RMSProp_1`` (/``_2``);
Adagrad ``accumulator`` -> ``/Adagrad``. A TF1 ``Saver`` with the matching optimizer restores it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ckptbridge._errors import MappingError
from ckptbridge.engine._plan import Auxiliary, MappingPlan
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.optim._map import check_compatible, map_counters, map_slots
from ckptbridge.engine.optim._types import OptimizerPlan, OptimizerSide
from ckptbridge.engine.optim._vocab import tf1_side, tf1_target_side

if TYPE_CHECKING:
    from ckptbridge.rules import Rules

__all__ = ["TF1Export", "save_tf1_checkpoint", "tf1_optimizer_plan"]


@dataclass(frozen=True)
class TF1Export:
    """What :func:`save_tf1_checkpoint` wrote: the prefix, the weight plan, the optimizer plan."""

    prefix: str
    weights: MappingPlan
    optimizer: OptimizerPlan


def tf1_optimizer_plan(
    weights: MappingPlan, source: OptimizerSide, iterations: float
) -> OptimizerPlan:
    """The TF1 optimizer entries for a weight plan (model variables -> TF1 keys) and a Keras side.

    Only TF1 weights whose sources all have slots get slots; names come from the template's own
    slot entries (``weights.target_auxiliary``) when it has them, else TF1's defaults. Counters:
    those the template has, or all of TF1's defaults when it has none.

    Example: ``[c.target for c in tf1_optimizer_plan(plan, live_opt.side, iterations=3).counters]``
    -> ``['beta1_power', 'beta2_power', 'global_step']`` for Adam and a template without counters.
    """
    with_slots = {s.weight for s in source.slots}
    trained = [
        VarSpec(m.target, m.target_shape, m.target_dtype)
        for m in weights.matches
        if m.sources and all(s in with_slots for s in m.sources)
    ]
    existing = [a for a in weights.target_auxiliary if a.kind != "ema_shadow"]
    template = tf1_side(existing, {}, label=weights.target_label)
    if template is not None and template.slots:
        check_compatible(source, template)
    target = tf1_target_side(trained, source.family, centered=source.hyper.centered,
                             existing=existing)  # fmt: skip
    counters = _template_counters(existing, target.counters)
    target = OptimizerSide(target.family, "tf1", target.slots, counters, target.hyper, target.kind)
    plan = map_slots(weights.matches, source, target)
    plan.counters = map_counters(source, target, {source.counters["iterations"]: iterations})
    return plan


def _template_counters(existing: list[Auxiliary], defaults: dict[str, str]) -> dict[str, str]:
    kinds = {a.kind for a in existing}
    if not kinds & {"optimizer_slot", "optimizer_power", "global_step"}:
        return defaults  # a weights-only template: write TF1's default counters
    present = {a.name for a in existing}
    return {k: n for k, n in defaults.items() if n in present}


def _numpy(variable: Any) -> np.ndarray[Any, Any]:
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)


def save_tf1_checkpoint(
    model: Any,
    prefix: str | os.PathLike[str],
    *,
    template: str | os.PathLike[str],
    rules: Rules | None = None,
) -> TF1Export:
    """Write ``model``'s weights and ``model.optimizer``'s state as a TF1 checkpoint at ``prefix``.

    ``template``: a TF1 checkpoint or ``.meta`` with the names to write (the TF1 graph's). Raises
    :class:`MappingError` before writing when a template weight has no source.

    Example: ``save_tf1_checkpoint(model, "tf1/model.ckpt-3", template="old/model.ckpt-0")``.
    """
    from ckptbridge.engine import derive, format_not_found
    from ckptbridge.format import BundleWriter
    from ckptbridge.sides import describe_target
    from ckptbridge.sides._live import describe_model
    from ckptbridge.sides._optimizer import describe_optimizer, optimizer_of, slot_values
    from ckptbridge.transforms import apply_steps

    live = describe_model(model)
    side = describe_target(template)
    weights = derive(list(live.specs), list(side.specs), rules,
                     source_label=f"model {live.label!r}", target_label=side.label)  # fmt: skip
    if not weights.complete:
        raise MappingError(format_not_found(weights))
    live_opt = describe_optimizer(optimizer_of(model), live.variables,
                                  list(model.trainable_variables))  # fmt: skip
    it_name = live_opt.side.counters["iterations"]
    opt_plan = tf1_optimizer_plan(
        weights, live_opt.side, float(_numpy(live_opt.variables[it_name]))
    )
    if opt_plan.missing:
        rows = "\n".join(f"  {u.target}: {u.why}" for u in opt_plan.missing[:20])
        raise MappingError(f"{len(opt_plan.missing)} TF1 optimizer entr(ies) of {side.label!r} "
                           f"have no source in {live_opt.label}:\n{rows}\nFix: map their weights "
                           "in the rules.")  # fmt: skip
    values = slot_values(opt_plan, lambda n: _numpy(live_opt.variables[n]))
    with BundleWriter(prefix) as writer:
        for m in weights.matches:
            arrays = [_numpy(live.variables[s]) for s in m.sources]
            writer.add(m.target, apply_steps(arrays, list(m.steps)) if m.steps else arrays[0])
        for name, value in values.items():
            writer.add(name, value)
    return TF1Export(str(prefix), weights, opt_plan)
