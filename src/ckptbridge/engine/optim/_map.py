"""Map one side's optimizer state onto the other's, following the weight mapping already derived.

Pure. A slot follows its weight: the target slot of weight ``W`` reads the same-role slot of every
source weight ``W`` was matched from, through the same transform steps (a slot is elementwise per
weight, so a transpose, reshape, split or gate permutation applies to it as it does to the weight),
except ``add`` steps (an LSTM forget-bias fold shifts the weight, not its gradient statistics).

Step counter (decided here, documented in every counter's reason):

- TF1 ``AdamOptimizer`` starts ``beta1_power`` at ``beta1`` and multiplies it by ``beta1`` after each
  step, so after ``n`` steps ``beta1_power = beta1**(n+1)``; Keras uses ``beta_1**(iterations+1)``.
  Hence ``iterations = log(beta1_power)/log(beta_1) - 1``, the counter Adam's math reads. It is
  taken from ``beta1_power`` (``beta2_power`` when ``beta1_power`` has underflowed, after ~840
  steps with 0.9), must be within a quarter step of an integer (else ``beta_1`` differs from the
  TF1 run: an error), and wins over ``global_step``, which TF1 code may count differently (a note
  says so when they differ). When both powers have underflowed, ``global_step`` is used.
- Other optimizers: ``iterations = global_step`` (their math does not read it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ckptbridge._errors import MappingError
from ckptbridge.engine._plan import Match, Unmatched
from ckptbridge.engine.optim._types import (
    CounterValue,
    OptimizerPlan,
    OptimizerSide,
    SlotMatch,
    SlotRef,
)
from ckptbridge.rules._steps import Add

__all__ = ["check_compatible", "map_counters", "map_slots", "steps_done"]

_FLOAT32_NORMAL = 1.1754944e-38  # below this a float32 power has lost precision (subnormal)


def check_compatible(source: OptimizerSide, target: OptimizerSide) -> None:
    """Raise :class:`MappingError` when ``target``'s optimizer cannot take ``source``'s state.

    >>> check_compatible(OptimizerSide("adam", "tf1"), OptimizerSide("adam", "keras"))
    """
    if source.family != target.family and not (
        {source.family, target.family} == {"sgd", "momentum"} and not source.slots
    ):
        raise MappingError(_family_message(source, target))
    if target.hyper.amsgrad or source.hyper.amsgrad:
        raise MappingError(
            f"cannot map {source.kind} state to {target.kind}: amsgrad keeps a 'vhat' slot that "
            "TF1 AdamOptimizer does not have. Fix: use Adam(amsgrad=False)."
        )
    if source.family == "rmsprop" and source.hyper.centered != target.hyper.centered:
        have = "centered" if source.hyper.centered else "not centered"
        raise MappingError(
            f"cannot map {source.kind} state to {target.kind}: the source RMSProp is {have}, the "
            f"target is not the same. Fix: use RMSprop(centered={source.hyper.centered})."
        )


def _family_message(source: OptimizerSide, target: OptimizerSide) -> str:
    what = (f"cannot restore {source.kind or source.family} optimizer state into "
            f"{target.kind or target.family}: the slots mean different things. ")  # fmt: skip
    if target.convention == "keras":
        return what + (
            f"Expected a {_keras_name(source.family)} optimizer. Fix: compile the model with "
            f"optimizer={_keras_name(source.family)}(...) using the TF1 run's hyperparameters, "
            "or set options.optimizer_state: false to restore the weights only."
        )
    return what + (
        f"Expected a TF1 template whose graph uses the same optimizer. Fix: pass a template "
        f"saved from a graph with tf.compat.v1.train.{_tf1_name(source.family)}, or compile the "
        f"model with {_keras_name(target.family)}."
    )


def _tf1_name(family: str) -> str:
    return {"adam": "AdamOptimizer", "momentum": "MomentumOptimizer", "sgd":
            "GradientDescentOptimizer", "rmsprop": "RMSPropOptimizer",
            "adagrad": "AdagradOptimizer"}[family]  # fmt: skip


def _keras_name(family: str) -> str:
    return {"adam": "keras.optimizers.Adam", "momentum": "keras.optimizers.SGD(momentum=...)",
            "rmsprop": "keras.optimizers.RMSprop", "adagrad": "keras.optimizers.Adagrad",
            "sgd": "keras.optimizers.SGD"}[family]  # fmt: skip


def _scale(source: OptimizerSide, target: OptimizerSide, role: str) -> tuple[float, str]:
    if source.family != "momentum" or role != "momentum" or source.convention == target.convention:
        return 1.0, ""
    keras = target if target.convention == "keras" else source
    lr = keras.hyper.learning_rate
    if lr is None or lr == 0 or keras.hyper.lr_is_schedule:
        raise MappingError(
            f"cannot convert {source.kind} momentum slots for {target.kind}: Keras SGD keeps "
            "-learning_rate * the TF1 accumulator, so a constant learning rate is needed, but the "
            f"Keras optimizer has {'a schedule' if keras.hyper.lr_is_schedule else lr!r}. Fix: "
            "compile with SGD(learning_rate=<the TF1 run's rate>, momentum=...)."
        )
    if target.convention == "keras":
        return -lr, f" x (-learning_rate={-lr:g}): Keras SGD keeps -lr * TF1's accumulator"
    return -1.0 / lr, f" x (-1/learning_rate={-1.0 / lr:g}): TF1 keeps Keras SGD's m / -lr"


def map_slots(
    weights: Sequence[Match], source: OptimizerSide, target: OptimizerSide
) -> OptimizerPlan:
    """Map ``source``'s slots onto ``target``'s through the weight ``matches`` (target <- sources).

    >>> w = [Match("dense/kernel", ("fc/weights",), target_shape=(2, 2))]
    >>> src = OptimizerSide("adam", "tf1", (SlotRef("fc/weights/Adam", "fc/weights", "m", (2, 2)),
    ...                                     SlotRef("fc/weights/Adam_1", "fc/weights", "v", (2, 2))))
    >>> dst = OptimizerSide("adam", "keras", (SlotRef("adam/dense_kernel_momentum", "dense/kernel", "m", (2, 2)),
    ...                                       SlotRef("adam/dense_kernel_velocity", "dense/kernel", "v", (2, 2))))
    >>> [(m.target, m.sources) for m in map_slots(w, src, dst).slots]
    [('adam/dense_kernel_momentum', ('fc/weights/Adam',)), ('adam/dense_kernel_velocity', ('fc/weights/Adam_1',))]
    """
    check_compatible(source, target)
    plan = OptimizerPlan(source.kind, target.kind)
    by_target = {m.target: m for m in weights}
    index = source.slot_index()
    source_roles = {s.role for s in source.slots}
    for slot in target.slots:
        match = by_target.get(slot.weight)
        if match is None:
            plan.missing.append(Unmatched(slot.name, slot.shape, f"its weight {slot.weight!r} "
                                          "is not restored from this checkpoint"))  # fmt: skip
            continue
        if slot.role not in source_roles and _unread(slot, target):
            plan.slots.append(_zeros(slot, target))
            continue
        found = [index.get((s, slot.role)) for s in match.sources]
        absent = [s for s, ref in zip(match.sources, found, strict=True) if ref is None]
        if absent:
            plan.missing.append(_no_slot(slot, absent, source))
            continue
        plan.slots.append(_slot_match(slot, match, [r for r in found if r], source, target))
    used = plan.used_sources
    plan.unused = [s.name for s in source.slots if s.name not in used]
    plan.notes += _notes(source, target, plan)
    return plan


def _unread(slot: SlotRef, side: OptimizerSide) -> bool:
    """A slot the side's own math never reads (TF1 RMSProp momentum with momentum 0)."""
    return side.family == "rmsprop" and slot.role == "momentum" and side.convention == "tf1"


def _zeros(slot: SlotRef, target: OptimizerSide) -> SlotMatch:
    return SlotMatch(slot.name, (), (), 0.0, f"zeros: the source has no {slot.role!r} slot "
                     "(momentum 0); correct only if the TF1 graph uses momentum=0",
                     slot.shape, (), slot.dtype)  # fmt: skip


def _no_slot(slot: SlotRef, absent: list[str], source: OptimizerSide) -> Unmatched:
    return Unmatched(
        slot.name,
        slot.shape,
        f"no {source.kind} {slot.role!r} slot for {', '.join(map(repr, absent))} (was it "
        "trainable in the source run, or are its slots ignored by the rules?)",
    )


def _slot_match(
    slot: SlotRef, match: Match, refs: list[SlotRef], source: OptimizerSide, target: OptimizerSide
) -> SlotMatch:
    steps = tuple(s for s in match.steps if not isinstance(s, Add))
    scale, why = _scale(source, target, slot.role)
    dropped = (
        " (the weight's add step is not applied to its slot)"
        if len(steps) < len(match.steps)
        else ""
    )
    reason = (
        f"{slot.role} slot of {match.target!r} follows its weight ({match.reason}){dropped}{why}"
    )
    return SlotMatch(slot.name, tuple(r.name for r in refs), steps, scale, reason, slot.shape,
                     tuple(r.shape for r in refs), slot.dtype)  # fmt: skip


def _notes(source: OptimizerSide, target: OptimizerSide, plan: OptimizerPlan) -> list[str]:
    if source.convention == "keras" and target.convention == "keras":
        notes = [
            "hyperparameters other than the learning rate (betas, epsilon, momentum, rho) are not "
            f"stored in TF2 checkpoints: {target.kind} must use the saved run's values"
        ]
    else:
        notes = [
            "hyperparameters (learning rate, betas, epsilon, momentum, rho) are not stored in TF1 "
            f"checkpoints: {target.kind if target.convention == 'keras' else source.kind} must use "
            "the TF1 run's values"
        ]
    if source.family == "adagrad":
        notes.append(
            "Keras Adagrad divides by sqrt(accumulator + epsilon), TF1 Adagrad by sqrt(accumulator):"
            " identical only with epsilon=0; otherwise each step differs by a relative "
            "epsilon / (2 * accumulator) at most (5e-7 for epsilon 1e-7 and the initial 0.1)"
        )
    if plan.unused and source.family == "rmsprop":
        notes.append("RMSProp momentum slots are not read: the target uses momentum=0")
    return notes


def steps_done(side: OptimizerSide, values: Mapping[str, float], beta_1: float | None,
               beta_2: float | None) -> tuple[int | None, tuple[str, ...], str]:  # fmt: skip
    """Training steps the ``side`` has done: ``(steps, names read, how)``; steps None: unknown.

    ``values``: the counters' scalar values by name. ``beta_1``/``beta_2``: the Adam betas (Keras
    config) used to read TF1 ``beta1_power``/``beta2_power``; each usable power must agree.

    >>> side = OptimizerSide("adam", "tf1", counters={"beta1_power": "beta1_power"})
    >>> steps_done(side, {"beta1_power": 0.9 ** 4}, 0.9, 0.999)[0]
    3
    """
    step_name = side.counters.get("iterations") or side.counters.get("global_step")
    step = round(values[step_name]) if step_name and step_name in values else None
    counted = (step_name,) if step is not None and step_name else ()
    if side.convention == "keras" or side.family != "adam":
        how = f"{step_name} = {step}" if step is not None else "no step counter in the source"
        return step, counted, how
    found = _from_powers(side, values, beta_1, beta_2)
    if found is None:
        how = f"{step_name} = {step} (beta powers underflowed or absent)" if counted else ""
        return step, counted, how
    steps, read = found
    how = f"log({read[0]})/log({beta_1 if read[0].startswith('beta1') else beta_2:g}) - 1 = {steps}"
    if step is not None and step != steps:
        how += f" (Adam's own counter; {step_name} = {step} differs and is not used)"
        counted = ()
    return steps, (*read, *counted), how


def _from_powers(side: OptimizerSide, values: Mapping[str, float], beta_1: float | None,
                 beta_2: float | None) -> tuple[int, tuple[str, ...]] | None:  # fmt: skip
    """Steps from every usable (normal float32) beta power; they must agree with each other."""
    found: list[tuple[str, int]] = []
    for which, beta in (("beta1_power", beta_1), ("beta2_power", beta_2)):
        name = side.counters.get(which)
        if name is None or name not in values or beta is None:
            continue
        power = float(values[name])
        if power >= _FLOAT32_NORMAL:
            found.append((name, _power_steps(name, which, power, beta)))
    if not found:
        return None
    if len({n for _, n in found}) > 1:
        (n1, s1), (n2, s2) = found
        raise MappingError(
            f"{n1} gives {s1} steps but {n2} gives {s2}: expected both from the same run with the "
            "optimizer's beta_1 and beta_2. Fix: compile with Adam(beta_1=..., beta_2=...) set to "
            "the TF1 values."
        )
    return found[0][1], tuple(n for n, _ in found)


def _power_steps(name: str, which: str, power: float, beta: float) -> int:
    exact = math.log(power) / math.log(beta) - 1.0
    steps = round(exact)
    if steps < 0 or abs(exact - steps) > 0.25:
        raise MappingError(
            f"{name} = {power:.9g} is not a power of the optimizer's beta_{which[4]} "
            f"({beta:g}): it would be {exact + 1:.3f} steps. Expected the Keras optimizer to use "
            "the TF1 run's beta_1 and beta_2. Fix: compile with Adam(beta_1=..., beta_2=...) set "
            "to the TF1 values."
        )
    return steps


def map_counters(
    source: OptimizerSide, target: OptimizerSide, values: Mapping[str, float]
) -> list[CounterValue]:
    """The target's counters from the source's (``values``: source counter values by name).

    >>> src = OptimizerSide("momentum", "tf1", counters={"global_step": "global_step"})
    >>> dst = OptimizerSide("momentum", "keras", counters={"iterations": "sgd/iteration"})
    >>> [(c.target, c.value) for c in map_counters(src, dst, {"global_step": 7})]
    [('sgd/iteration', 7.0)]
    """
    keras = target if target.convention == "keras" else source
    b1, b2 = keras.hyper.beta_1, keras.hyper.beta_2
    steps, read, how = steps_done(source, values, b1, b2)
    if steps is None:
        return []
    out: list[CounterValue] = []
    for kind, name in target.counters.items():
        if kind == "learning_rate":
            saved = source.counters.get("learning_rate")
            if saved is not None and saved in values and not target.hyper.lr_is_schedule:
                out.append(CounterValue(name, float(values[saved]), (saved,),
                                        "learning rate as saved", "float32"))  # fmt: skip
        elif kind in ("iterations", "global_step"):
            out.append(CounterValue(name, float(steps), read, f"steps done: {how}", "int64"))
        elif kind in ("beta1_power", "beta2_power") and b1 is not None and b2 is not None:
            beta = b1 if kind == "beta1_power" else b2
            value = float(beta ** (steps + 1))
            out.append(CounterValue(name, value, read, f"{kind[:5]}**(steps+1), steps: {how}",
                                    "float32"))  # fmt: skip
    return out
