"""Decide, for every entry of the output, where its value comes from.

Given a plan (source -> target matches) and the target's entries, each output entry becomes one
:class:`Action`: copied from the source (``match``), the step counter (``step``), the template's own
value (``template``: ``save_counter``, targets the rules ignore), or left out (``dropped``:
optimizer slots and other auxiliary entries the source cannot supply).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

from ckptbridge._errors import MappingError
from ckptbridge.engine._plan import MappingPlan, Match
from ckptbridge.engine._spec import VarSpec

if TYPE_CHECKING:
    from ckptbridge.rules import Rules

ActionKind = Literal["match", "step", "template"]


class Action(NamedTuple):
    """One output entry: ``key`` (as written), its dtype and shape, and where the value comes from."""

    key: str
    kind: ActionKind
    dtype: str
    shape: tuple[int, ...]
    match: Match | None = None
    template_key: str | None = None  # the template entry to copy for kind "template"


class ActionList(NamedTuple):
    """Everything an output holds, plus the template entries left out and those kept as they were."""

    actions: tuple[Action, ...]
    dropped: tuple[str, ...]
    kept: tuple[str, ...]


def output_key(name: str) -> str:
    """The checkpoint key for a target name: tf-keras names lose their ``:0``."""
    return name[:-2] if name.endswith(":0") else name


def plan_actions(
    plan: MappingPlan,
    targets: Sequence[VarSpec],
    rules: Rules | None,
    *,
    has_template: bool,
    source_label: str,
    sources: Mapping[str, VarSpec] | None = None,
    keys: Mapping[str, str] | None = None,
) -> ActionList:
    """Turn ``plan`` into one :class:`Action` per target entry, in target order.

    Auxiliary target entries (optimizer slots, counters) that the plan left unmatched are copied
    from a source entry of the very same name, dtype and shape when there is one (an identity or
    TF1 -> TF1 conversion keeps its optimizer state), else left out.
    Raises MappingError when a model weight of the target has no source (the message lists them
    with the closest candidates the plan found).
    """
    from ckptbridge.engine._aux import auxiliary_of

    by_target = {m.target: m for m in plan.matches}
    ignored = [re.compile(p) for p in rules.ignore_target] if rules is not None else []
    actions: list[Action] = []
    dropped: list[str] = []
    kept: list[str] = []
    missing: list[VarSpec] = []
    for spec in targets:
        key = (keys or {}).get(spec.name) or output_key(spec.name)
        match = by_target.get(spec.name)
        aux = auxiliary_of(spec)
        if match is not None:
            actions.append(Action(key, "match", spec.dtype, spec.shape, match=match))
        elif aux is not None and _same_entry(key, spec, sources):
            same = Match(
                spec.name,
                (key,),
                reason="auxiliary: same name in the source",
                target_shape=spec.shape,
                source_shapes=(spec.shape,),
                target_dtype=spec.dtype,
            )
            actions.append(Action(key, "match", spec.dtype, spec.shape, match=same))
        elif aux is not None and aux.kind == "global_step":
            actions.append(Action(key, "step", spec.dtype, spec.shape, template_key=key))
        elif aux is not None and aux.kind == "save_counter" and has_template:
            actions.append(Action(key, "template", spec.dtype, spec.shape, template_key=key))
            kept.append(key)
        elif aux is not None:
            dropped.append(key)
        elif has_template and any(p.fullmatch(spec.name) for p in ignored):
            actions.append(Action(key, "template", spec.dtype, spec.shape, template_key=key))
            kept.append(key)
        else:
            missing.append(spec)
    if missing:
        raise MappingError(_missing_message(plan, missing, source_label))
    return ActionList(tuple(actions), tuple(dropped), tuple(kept))


def _same_entry(key: str, spec: VarSpec, sources: Mapping[str, VarSpec] | None) -> bool:
    other = None if sources is None else sources.get(key)
    return other is not None and other.shape == spec.shape and other.dtype == spec.dtype


def _missing_message(plan: MappingPlan, missing: list[VarSpec], source_label: str) -> str:
    why = {u.target: u for u in plan.missing}
    parts = []
    for spec in missing[:3]:
        u = why.get(spec.name)
        closest = ""
        if u is not None and u.candidates:
            c = u.candidates[0]
            closest = f" (closest: {c.name!r} {tuple(c.shape)})"
        parts.append(f"{spec.name!r} {spec.shape}{closest}")
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return (
        f"{len(missing)} target variable(s) have no source in {source_label!r}: "
        f"{', '.join(parts)}{more}. Fix: add map/rename rules (`ckptbridge plan --emit-rules` "
        "writes a starting point) or list them under ignore_target to keep the template's values"
    )


_STEP_IN_NAME = re.compile(r".*-(\d+)")


def step_from_name(prefix_name: str) -> int | None:
    """The step number at the end of a checkpoint prefix: ``model.ckpt-1000`` -> 1000."""
    m = _STEP_IN_NAME.fullmatch(prefix_name)
    return int(m.group(1)) if m else None
