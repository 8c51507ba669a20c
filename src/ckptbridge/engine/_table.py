"""``str(plan)``: a readable table of matches, then missing, unused, auxiliary and rule notes."""

from __future__ import annotations

from collections import Counter

from ckptbridge._text import fmt_shape, render_table
from ckptbridge.engine._names import scope_of, strip_key
from ckptbridge.engine._plan import Auxiliary, MappingPlan

MAX_TABLE_ROWS = 500
MAX_COL = 60


def _cut(text: str) -> str:
    return text if len(text) <= MAX_COL else "..." + text[-(MAX_COL - 3) :]


def aux_counts(entries: list[Auxiliary]) -> str:
    """``'2 global_step, 4 optimizer_slot'``: how many entries of each kind."""
    kinds = Counter(a.kind for a in entries)
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


def render_plan(plan: MappingPlan) -> str:
    """Render ``plan`` as text (what ``print(plan)`` shows)."""
    total = len(plan.matches) + len(plan.missing)
    head = (f"MappingPlan {plan.source_label!r} -> {plan.target_label!r}: {len(plan.matches)} of "
            f"{total} {plan.target_label} variables matched"
            f"{'' if plan.complete else f', {len(plan.missing)} missing'}")  # fmt: skip
    lines = [head]
    if plan.family:
        lines.append(f"Recognised: {plan.family}")
    rows = []
    for m in plan.matches[:MAX_TABLE_ROWS]:
        srcs = " + ".join(m.sources)
        steps = f" [{', '.join(s.op for s in m.steps)}]" if m.steps else ""
        rows.append((_cut(m.target), fmt_shape(m.target_shape), _cut(srcs), m.reason + steps))
    if rows:
        lines += render_table(("target", "shape", "source", "reason"), rows)
    if len(plan.matches) > MAX_TABLE_ROWS:
        lines.append(f"... and {len(plan.matches) - MAX_TABLE_ROWS} more matches (see to_json())")
    if plan.missing:
        lines.append(f"Missing ({len(plan.missing)}):")
        for u in plan.missing:
            lines.append(f"  {u.target} {fmt_shape(u.shape)}: {u.why}")
            if u.candidates:
                close = ", ".join(f"{c.name!r} {fmt_shape(c.shape)}" for c in u.candidates)
                lines.append(f"    closest: {close}")
    if plan.unused:
        scopes = Counter(scope_of(strip_key(n)) for n in plan.unused)
        parts = [f"{s + '/' if s else '(top level)'} ({n})" for s, n in sorted(scopes.items())]
        lines.append(f"Unused ({len(plan.unused)}), by scope: {', '.join(parts)}")
    if plan.auxiliary:
        lines.append(f"Auxiliary ({len(plan.auxiliary)}): {aux_counts(plan.auxiliary)}")
    if plan.target_auxiliary:
        lines.append(f"Target auxiliary, not required ({len(plan.target_auxiliary)}): "
                     f"{aux_counts(plan.target_auxiliary)}")  # fmt: skip
    if plan.ignored:
        lines.append(f"Ignored by rules ({len(plan.ignored)}): {', '.join(plan.ignored[:10])}"
                     f"{' ...' if len(plan.ignored) > 10 else ''}")  # fmt: skip
    if plan.ignored_targets:
        lines.append(f"Targets ignored by rules ({len(plan.ignored_targets)}): "
                     f"{', '.join(plan.ignored_targets[:10])}")  # fmt: skip
    for note in plan.unused_rules:
        lines.append(f"Rule with no effect: {note}")
    lines += [f"Note: {note}" for note in plan.notes]
    return "\n".join(lines)
