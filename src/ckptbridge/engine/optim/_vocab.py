"""The TF1 optimizer vocabulary: which checkpoint keys are which optimizer's slots and counters.

Pure: works on :class:`~ckptbridge.engine.Auxiliary` entries and :class:`VarSpec` shapes.

>>> slot_role("dense/kernel/Adam_1")
('dense/kernel', 'adam', 'v')
>>> tf1_slot_name("dense/kernel", "rmsprop", "momentum")
'dense/kernel/RMSProp_1'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from ckptbridge._errors import MappingError
from ckptbridge.engine._plan import Auxiliary
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.optim._types import Family, Hyper, OptimizerSide, SlotRef

__all__ = ["TF1_OPTIMIZER", "slot_role", "tf1_side", "tf1_slot_name", "tf1_target_side"]

# family -> the optimizer's default TF1 name (the slot suffix)
TF1_OPTIMIZER: dict[str, str] = {
    "adam": "Adam",
    "momentum": "Momentum",
    "rmsprop": "RMSProp",
    "adagrad": "Adagrad",
}
_FAMILY_OF = {name: family for family, name in TF1_OPTIMIZER.items()}
# family -> slot index (the ``_N`` suffix, 0 for none) -> role; RMSProp depends on ``centered``
_ROLES: dict[str, tuple[str, ...]] = {
    "adam": ("m", "v"),
    "momentum": ("momentum",),
    "rmsprop": ("velocity", "momentum"),
    "rmsprop_centered": ("velocity", "average_gradient", "momentum"),
    "adagrad": ("accumulator",),
}
_SLOT = re.compile(r"(?P<of>.+?)(?:/t_\d+)?/(?P<opt>Adam|Momentum|RMSProp|Adagrad)(?:_(?P<n>\d+))?")
_POWER = re.compile(r"(?:.*/)?(?P<which>beta[12])_power(?:_\d+)?")


def _roles(family: str, centered: bool) -> tuple[str, ...]:
    return _ROLES["rmsprop_centered" if family == "rmsprop" and centered else family]


def slot_role(key: str, *, centered: bool = False) -> tuple[str, str, str] | None:
    """``(weight, family, role)`` of a TF1 slot key, or None when ``key`` is not one.

    >>> slot_role("lstm/kernel/t_0/Adagrad")
    ('lstm/kernel', 'adagrad', 'accumulator')
    >>> slot_role("w/RMSProp_1", centered=True)
    ('w', 'rmsprop', 'average_gradient')
    """
    m = _SLOT.fullmatch(key)
    if m is None:
        return None
    family = _FAMILY_OF[m.group("opt")]
    index = int(m.group("n") or 0)
    roles = _roles(family, centered)
    if index >= len(roles):
        return None
    return m.group("of"), family, roles[index]


def tf1_slot_name(weight: str, family: str, role: str, *, centered: bool = False) -> str:
    """The key TF1's default optimizer gives the ``role`` slot of ``weight``.

    >>> tf1_slot_name("fc1/weights", "adam", "v")
    'fc1/weights/Adam_1'
    """
    index = _roles(family, centered).index(role)
    return f"{weight}/{TF1_OPTIMIZER[family]}" + (f"_{index}" if index else "")


def _slot_entries(auxiliary: Iterable[Auxiliary]) -> list[tuple[Auxiliary, re.Match[str]]]:
    found = []
    for aux in auxiliary:
        if aux.kind == "optimizer_slot":
            m = _SLOT.fullmatch(aux.name)
            if m is not None:
                found.append((aux, m))
    return found


def _family(entries: list[tuple[Auxiliary, re.Match[str]]], label: str) -> Family:
    families = sorted({_FAMILY_OF[m.group("opt")] for _, m in entries})
    if len(families) > 1:
        names = ", ".join(TF1_OPTIMIZER[f] for f in families)
        raise MappingError(
            f"{label} holds the slots of several TF1 optimizers ({names}); expected one, to "
            "restore into model.optimizer. Fix: list the other optimizers' slots under 'ignore' in "
            "the rules (e.g. ignore: ['.*/Momentum'])."
        )
    family: Family = families[0]  # type: ignore[assignment]
    return family


def tf1_side(
    auxiliary: Sequence[Auxiliary], specs: Mapping[str, VarSpec], *, label: str = "checkpoint"
) -> OptimizerSide | None:
    """The TF1 optimizer state among a plan's auxiliary entries; None when it has no slots.

    ``specs``: the checkpoint's entries by key (for shapes and dtypes). Counters are the
    ``beta1_power``/``beta2_power`` and ``global_step`` entries.

    >>> aux = [Auxiliary("w/Momentum", "optimizer_slot", "w"), Auxiliary("global_step", "global_step")]
    >>> side = tf1_side(aux, {"w/Momentum": VarSpec("w/Momentum", (2,))})
    >>> side.family, [s.role for s in side.slots], side.counters
    ('momentum', ['momentum'], {'global_step': 'global_step'})
    """
    counters = _counters(auxiliary)
    entries = _slot_entries(auxiliary)
    if not entries:
        if not counters:
            return None
        return OptimizerSide("sgd", "tf1", (), counters, Hyper(), "TF1 GradientDescent")
    family = _family(entries, label)
    centered = family == "rmsprop" and any(m.group("n") == "2" for _, m in entries)
    roles = _roles(family, centered)
    slots: list[SlotRef] = []
    for aux, m in entries:
        index = int(m.group("n") or 0)
        if index >= len(roles):
            raise MappingError(
                f"{label}: {aux.name!r} looks like a slot of a second {m.group('opt')} optimizer "
                f"(TF1 {m.group('opt')} has {len(roles)} slot(s) per variable); expected one "
                "optimizer. Fix: list the other optimizer's slots under 'ignore' in the rules."
            )
        spec = specs.get(aux.name)
        slots.append(
            SlotRef(
                name=aux.name,
                weight=aux.of or m.group("of"),
                role=roles[index],
                shape=spec.shape if spec else (),
                dtype=spec.dtype if spec else "float32",
            )
        )
    kind = f"TF1 {TF1_OPTIMIZER[family]}" + (" (centered)" if centered else "")
    return OptimizerSide(family, "tf1", tuple(slots), counters, Hyper(centered=centered), kind)


def _counters(auxiliary: Iterable[Auxiliary]) -> dict[str, str]:
    counters: dict[str, str] = {}
    for aux in auxiliary:
        if aux.kind == "optimizer_power":
            m = _POWER.fullmatch(aux.name)
            if m is not None:
                counters.setdefault(f"{m.group('which')}_power", aux.name)
        elif aux.kind == "global_step":
            counters.setdefault("global_step", aux.name)
    return counters


def tf1_target_side(
    weights: Sequence[VarSpec],
    family: Family,
    *,
    centered: bool = False,
    existing: Sequence[Auxiliary] = (),
) -> OptimizerSide:
    """The TF1 optimizer state a TF1 graph with these trainable ``weights`` expects.

    Names come from ``existing`` (the template's own slot entries) when it has them, else from TF1's
    default optimizer names. ``beta1_power``/``beta2_power`` (Adam) and ``global_step`` are added.

    >>> side = tf1_target_side([VarSpec("w", (2,))], "adam")
    >>> [s.name for s in side.slots], sorted(side.counters)
    (['w/Adam', 'w/Adam_1'], ['beta1_power', 'beta2_power', 'global_step'])
    """
    template = tf1_side(existing, {}) if existing else None
    by_role = template.slot_index() if template and template.family == family else {}
    counters = dict(template.counters) if template else {}
    if family == "adam":
        counters.setdefault("beta1_power", "beta1_power")
        counters.setdefault("beta2_power", "beta2_power")
    counters.setdefault("global_step", "global_step")
    roles = [] if family == "sgd" else _roles(family, centered)
    slots = []
    for w in weights:
        for role in roles:
            known = by_role.get((w.name, role))
            name = known.name if known else tf1_slot_name(w.name, family, role, centered=centered)
            slots.append(SlotRef(name, w.name, role, w.shape, w.dtype))
    kind = f"TF1 {TF1_OPTIMIZER.get(family, 'GradientDescent')}"
    return OptimizerSide(family, "tf1", tuple(slots), counters, Hyper(centered=centered), kind)
