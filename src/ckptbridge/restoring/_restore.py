"""Restore a checkpoint into a live model: plan, read and transform everything, then assign.

Nothing is assigned until every value has been read, transformed and checked against its
variable, so a missing variable, a read error or a shape mismatch never leaves a half-restored
model. The result is a :class:`RestoreReport`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ckptbridge._errors import MappingError
from ckptbridge._optional import import_tensorflow, not_found_error_class
from ckptbridge._progress import advance, byte_bar, set_total, wanted
from ckptbridge._text import fmt_shape, render_table
from ckptbridge.engine._plan import Auxiliary, MappingPlan, Match, Unmatched
from ckptbridge.engine._table import aux_counts
from ckptbridge.engine.optim._types import OptimizerPlan
from ckptbridge.rules._steps import Reshape

if TYPE_CHECKING:
    from ckptbridge.format import Checkpoint
    from ckptbridge.rules import Rules
    from ckptbridge.sides._live import LiveModel

__all__ = ["RestoreReport", "describe_steps", "restore_into"]

_MAX_ROWS = 60  # rows per section in the printed table; the JSON has everything


def describe_steps(match: Match) -> str:
    """A short text for a match's transform steps: ``"transpose(perm=(1, 0)) | cast(dtype=float16)"``.

    >>> describe_steps(Match(target="d/kernel", sources=("w",)))
    ''
    """
    parts = []
    for step in match.steps:
        args = {k: v for k, v in dataclasses.asdict(step).items() if v is not None and k != "op"}
        parts.append(f"{step.op}({', '.join(f'{k}={v}' for k, v in args.items())})")
    return " | ".join(parts)


@dataclass
class RestoreReport:
    """What a restore did: every matched variable with its source(s), reason and transform;
    what stayed missing; checkpoint entries left unused; auxiliary entries (optimizer state,
    counters, EMA shadows) recognised as such. With ``options.optimizer_state`` the restored
    optimizer variables are in ``matched`` too (and alone in ``optimizer``), each with the slot or
    counters it came from; those entries are then no longer auxiliary. ``notes``: what the user
    should know: values assumed because nothing records them (the plan's notes, e.g. a TF1 LSTM
    cell's forget bias without a ``.meta``), optimizer hyperparameters taken on trust.

    Example: ``ckptbridge.restore(model, "old/model.ckpt-1000").assert_consumed()``.
    """

    checkpoint: str
    model: str
    matched: list[Match] = field(default_factory=list)
    missing: list[Unmatched] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    auxiliary: list[Auxiliary] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    plan: MappingPlan | None = field(default=None, repr=False, compare=False)
    optimizer: list[Match] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_plan(cls, plan: MappingPlan, *, checkpoint: str, model: str) -> RestoreReport:
        """Build the report of a restore that carried out ``plan``."""
        return cls(
            checkpoint=checkpoint,
            model=model,
            matched=list(plan.matches),
            missing=list(plan.missing),
            unused=list(plan.unused),
            auxiliary=list(plan.auxiliary),
            ignored=list(plan.ignored),
            plan=plan,
            notes=list(plan.notes),
        )

    def add_optimizer(self, plan: OptimizerPlan) -> None:
        """Record a restored optimizer state: its variables join ``matched`` (and ``optimizer``),
        the slots and counters they read leave ``auxiliary``; unfilled ones join ``missing``."""
        rows = plan.as_matches()
        self.optimizer = rows
        self.matched += rows
        self.missing += plan.missing
        used = plan.used_sources
        self.auxiliary = [a for a in self.auxiliary if a.name not in used]
        self.notes += plan.notes

    @property
    def complete(self) -> bool:
        """True when every model variable was restored."""
        return not self.missing

    def assert_consumed(self) -> None:
        """Raise :class:`MappingError` if any non-auxiliary checkpoint entry went unused.

        Example: ``ckptbridge.restore(model, "old/model.ckpt-1000").assert_consumed()``.
        """
        if not self.unused:
            return
        shown = ", ".join(repr(k) for k in self.unused[:10])
        more = f" and {len(self.unused) - 10} more" if len(self.unused) > 10 else ""
        raise MappingError(
            f"{len(self.unused)} entr{'y' if len(self.unused) == 1 else 'ies'} of "
            f"{self.checkpoint!r} restored nothing into {self.model}: {shown}{more}. Expected "
            "every non-auxiliary entry to be used. Fix: map them in the rules (map: {KEY: "
            "VARIABLE}) or list them under 'ignore' if they are not part of this model."
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (no tensor values).

        >>> from ckptbridge.engine import Match
        >>> match = Match("sequential/dense/kernel", ("fc/weights",), reason="identical shape")
        >>> report = RestoreReport("old/model.ckpt-1000", "sequential", matched=[match])
        >>> report.to_dict()["matched"][0]["target"]
        'sequential/dense/kernel'
        """
        return {
            "checkpoint": self.checkpoint,
            "model": self.model,
            "complete": self.complete,
            "matched": [
                {
                    "target": m.target,
                    "sources": list(m.sources),
                    "reason": m.reason,
                    "transform": [dataclasses.asdict(s) for s in m.steps],
                    "shape": list(m.target_shape),
                }
                for m in self.matched
            ],
            "missing": [
                {
                    "target": u.target,
                    "shape": list(u.shape),
                    "why": u.why,
                    "candidates": [{"name": c.name, "shape": list(c.shape)} for c in u.candidates],
                }
                for u in self.missing
            ],
            "unused": list(self.unused),
            "auxiliary": [{"name": a.name, "kind": a.kind, "of": a.of} for a in self.auxiliary],
            "ignored": list(self.ignored),
            "optimizer": [m.target for m in self.optimizer],
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as a JSON document.

        >>> import json
        >>> json.loads(RestoreReport("old/model.ckpt-1000", "sequential").to_json())["complete"]
        True
        """
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        total = len(self.matched) + len(self.missing)
        lines = [
            f"Restored {len(self.matched)} of {total} variables of {self.model} "
            f"from {self.checkpoint!r}"
        ]
        lines += _matched_table(self.matched)
        if self.missing:
            lines.append(f"Missing ({len(self.missing)}):")
            lines += [
                f"  {u.target} {fmt_shape(u.shape)}: {u.why}" for u in self.missing[:_MAX_ROWS]
            ]
        if self.auxiliary:
            summary = aux_counts(self.auxiliary)
            lines.append(f"Auxiliary, not restored ({len(self.auxiliary)}): {summary}")
        if self.ignored:
            lines.append(f"Ignored by rules ({len(self.ignored)}): {', '.join(self.ignored[:10])}")
        lines.append(f"Unused ({len(self.unused)})" + (":" if self.unused else ""))
        lines += [f"  {k}" for k in self.unused[:_MAX_ROWS]]
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


def _matched_table(matched: list[Match]) -> list[str]:
    rows = []
    for m in matched[:_MAX_ROWS]:
        steps = describe_steps(m)
        reason = f"{m.reason} [{steps}]" if steps else m.reason
        rows.append((m.target, "<- " + ", ".join(m.sources), fmt_shape(m.target_shape), reason))
    if not rows:
        return []
    header = ("variable", "<- checkpoint entry", "shape", "reason")
    lines = render_table(header, rows, indent="  ")
    if len(matched) > _MAX_ROWS:
        lines.append(f"  ... and {len(matched) - _MAX_ROWS} more (see to_json())")
    return lines


def _bulk_read(ckpt: Checkpoint, plan: MappingPlan, on_tensorflow: bool) -> dict[str, Any]:
    """Read the entries that need at most a reshape with TensorFlow's own ``RestoreV2`` op.

    For a tensor bundle this is the fastest path into a live model: the file is read straight into
    tensor buffers that ``assign`` then takes over, with no NumPy copy in between. Anything it
    cannot do (V1 files, damaged data) is left to the native reader, which gives the precise error.
    """
    eligible = [
        m
        for m in plan.matches
        if len(m.sources) == 1 and all(isinstance(step, Reshape) for step in m.steps)
    ]
    if ckpt.kind not in ("tf1", "tf2") or not eligible or not on_tensorflow:
        return {}  # off TensorFlow the native reader gives NumPy arrays, which every backend takes
    tf = import_tensorflow("reading into TensorFlow variables")

    stored = {m.source: ckpt.stored_key(m.source) for m in eligible}  # TF2 path names -> keys
    keys = list(dict.fromkeys(stored.values()))
    try:
        with tf.device("/cpu:0"):
            tensors = tf.raw_ops.RestoreV2(
                prefix=str(ckpt.prefix),
                tensor_names=keys,
                shape_and_slices=[""] * len(keys),
                dtypes=[tf.as_dtype(ckpt.entries[k].dtype) for k in keys],
            )
    except (tf.errors.OpError, TypeError, ValueError):
        return {}
    by_key = dict(zip(keys, tensors, strict=True))
    values: dict[str, Any] = {}
    for match in eligible:
        value = by_key[stored[match.source]]
        for step in match.steps:
            value = tf.reshape(value, step.shape)  # type: ignore[union-attr]
        values[match.target] = value
    return values


def _read_values(ckpt: Checkpoint, plan: MappingPlan, on_tensorflow: bool = True) -> dict[str, Any]:
    """Read and transform every matched value (arrays or tensors); nothing is assigned here."""
    from ckptbridge.transforms import apply_steps

    set_total(sum(_source_bytes(ckpt, m) for m in plan.matches))
    values = _bulk_read(ckpt, plan, on_tensorflow)
    advance(sum(_source_bytes(ckpt, m) for m in plan.matches if m.target in values))
    for match in plan.matches:
        if match.target in values:
            continue
        arrays = [ckpt.read(source) for source in match.sources]
        values[match.target] = apply_steps(arrays, list(match.steps)) if match.steps else arrays[0]
        advance(_source_bytes(ckpt, match))
    return values


def _source_bytes(ckpt: Checkpoint, match: Match) -> int:
    """The stored bytes of ``match``'s sources (what reading it costs)."""
    entries = (ckpt.entries.get(ckpt.stored_key(s)) for s in match.sources)
    return sum(e.nbytes for e in entries if e is not None)


def _raise_not_found(plan: MappingPlan) -> None:
    from ckptbridge.engine import format_not_found

    error = not_found_error_class()
    raise error(  # type: ignore[call-arg]
        format_not_found(plan), missing=tuple(u.target for u in plan.missing), plan=plan
    )


def restore_into(
    model: Any,
    checkpoint: str | os.PathLike[str],
    rules: Rules,
    *,
    strict: bool,
    progress: bool | None = None,
) -> RestoreReport:
    """Derive the plan from ``checkpoint`` to ``model``, then restore it all-or-nothing.

    ``strict`` holds when both the call and the rules' ``options.strict`` ask for it (the rules
    may relax it). Raises ``ckptbridge.NotFoundError`` before any assignment when strict and a
    variable has no source. ``rules.options.optimizer_state``: also restore ``model.optimizer``
    from the TF1 slots (see :mod:`ckptbridge.engine.optim`), mapped, read and checked before anything is
    assigned (building the optimizer's slots if it has none yet). ``progress``: a byte bar on
    stderr while the values are read (None: when stderr is a terminal).

    Example: ``restore_into(model, "old/model.ckpt-1000", Rules(), strict=True).complete`` ->
    ``True``.
    """
    from ckptbridge.engine import derive
    from ckptbridge.format import open_checkpoint
    from ckptbridge.sides._checkpoint import checkpoint_specs
    from ckptbridge.sides._live import assign_values, check_values, describe_model

    live = describe_model(model)
    strict = strict and rules.options.strict is not False
    with open_checkpoint(checkpoint) as ckpt:
        label = str(ckpt.prefix)
        plan = derive(
            checkpoint_specs(ckpt),
            list(live.specs),
            rules,
            source_label=label,
            target_label=f"model {live.label!r}",
        )
        if strict and not plan.complete:
            _raise_not_found(plan)
        prepared = _prepare_optimizer(model, live, ckpt, plan, rules, strict=strict)
        with byte_bar(f"restore {ckpt.prefix.name}", wanted(progress)):
            values = _read_values(ckpt, plan, live.on_tensorflow)
        check_values(live, values)
        assign_values(live, values)
        if prepared is not None:
            _assign_optimizer(prepared)
    report = RestoreReport.from_plan(plan, checkpoint=label, model=f"model {live.label!r}")
    if prepared is not None:
        report.add_optimizer(prepared.plan)
    return report


def _prepare_optimizer(
    model: Any, live: LiveModel, ckpt: Checkpoint, plan: MappingPlan, rules: Rules, *, strict: bool
) -> Any:
    """``options.optimizer_state``: map, read and check the optimizer state (see ckptbridge.engine.optim)."""
    if not rules.options.optimizer_state:
        return None
    from ckptbridge.restoring._optimizer import prepare_restore

    return prepare_restore(model, live.variables, ckpt, plan, strict=strict)


def _assign_optimizer(prepared: Any) -> None:
    from ckptbridge.sides._optimizer import assign_optimizer

    assign_optimizer(prepared.live, prepared.values)
