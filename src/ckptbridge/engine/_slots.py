"""Optimizer slots follow their weight, whatever step matched the weight.

With ``options.optimizer_state``, a target slot of weight ``T`` (``T/Adam``, ``T/.OPTIMIZER_SLOT/
optimizer/m``, a Keras ``_momentums`` entry) is fed by the same-named slot of every source weight
``T`` was matched from, through the weight's steps (an ``add`` step excepted: a forget-bias fold
shifts the weight, not its gradient statistics). Slots are never paired by their own names: a slot
whose weight is not restored stays unmatched, so it can never contradict its weight.
"""

from __future__ import annotations

from ckptbridge._text import lazy_pattern
from ckptbridge.engine._plan import Auxiliary
from ckptbridge.engine._state import State
from ckptbridge.rules._steps import Add

__all__ = ["follow_slots", "follows_weight", "slot_name"]

_TF2_SLOT = lazy_pattern(r".*/\.OPTIMIZER_SLOT/[^/]+/(?P<slot>.+?)/\.ATTRIBUTES/VARIABLE_VALUE")


def slot_name(aux: Auxiliary) -> str | None:
    """A slot's name per weight: recorded by the side, else read from its key.

    >>> slot_name(Auxiliary("dense/kernel/Adam_1", "optimizer_slot", "dense/kernel"))
    'Adam_1'
    >>> slot_name(Auxiliary("m/k/.OPTIMIZER_SLOT/optimizer/v/.ATTRIBUTES/VARIABLE_VALUE",
    ...                     "optimizer_slot", "m/k/.ATTRIBUTES/VARIABLE_VALUE"))
    'v'
    """
    if aux.slot:
        return aux.slot
    m = _TF2_SLOT().fullmatch(aux.name)
    if m:
        return m.group("slot")
    if aux.of and aux.name.startswith(aux.of + "/"):
        return aux.name[len(aux.of) + 1 :]
    return None


def follows_weight(aux: Auxiliary | None) -> bool:
    """True for a slot whose weight is known: it is matched by following that weight only."""
    return aux is not None and aux.kind == "optimizer_slot" and aux.of is not None


def follow_slots(st: State) -> None:
    """Match every free target slot whose weight is matched to the same slot of its source(s)."""
    by_owner = {
        (a.of, slot_name(a)): name
        for name, a in st.aux.items()
        if name in st.free_src and follows_weight(a)
    }
    for name, aux in list(st.target_aux.items()):
        if name not in st.free_tgt or not follows_weight(aux):
            continue
        weight = st.matches.get(aux.of or "")
        slot = slot_name(aux)
        if weight is None or slot is None:
            continue
        sources = [by_owner.get((s, slot)) for s in weight.sources]
        if not all(sources):
            continue
        steps = tuple(s for s in weight.steps if not isinstance(s, Add))
        reason = f"optimizer slot {slot!r} follows its weight {weight.target!r} ({weight.reason})"
        st.take([s for s in sources if s], name, steps, reason)
