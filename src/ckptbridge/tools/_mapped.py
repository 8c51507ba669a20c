"""``diff --mapped``: compare two checkpoints through the mapping, across formats.

The mapping from A to B is derived the way ``plan`` derives it (B as the target), each B entry's
value is computed from A through the plan's transforms, and compared with B's stored value, one
tensor at a time. A TF1 checkpoint and its TF2, Keras or tf1 conversion compare equal::

    report = diff_mapped("old/model.ckpt-1000", "converted/model.ckpt-1000")
    assert report.equal, str(report)
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

from ckptbridge._text import fmt_shape, render_table
from ckptbridge.tools._diff import max_abs_diff

__all__ = ["MappedDiff", "MappedDiffReport", "diff_mapped"]


@dataclass(frozen=True)
class MappedDiff:
    """One B entry and the A entries it is mapped from; ``max_abs_diff`` None when the mapped
    value's dtype or shape differs from B's."""

    target: str
    sources: tuple[str, ...]
    reason: str
    dtype: str
    shape: tuple[int, ...]
    mapped_dtype: str
    mapped_shape: tuple[int, ...]
    max_abs_diff: float | None

    @property
    def same(self) -> bool:
        return self.max_abs_diff == 0.0


@dataclass
class MappedDiffReport:
    """The result of :func:`diff_mapped`: compared pairs and the entries of each side left out."""

    a: str
    b: str
    compared: list[MappedDiff] = field(default_factory=list)
    missing_in_a: list[str] = field(default_factory=list)  # B weights with no source in A
    unused_in_a: list[str] = field(default_factory=list)  # A weights B does not hold
    auxiliary_a: list[str] = field(default_factory=list)  # optimizer state, counters...
    auxiliary_b: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        """True when every B weight has a source in A and every mapped value equals B's."""
        return not self.missing_in_a and all(d.same for d in self.compared)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``inf`` written as ``"inf"``)."""
        return {
            "a": self.a, "b": self.b, "equal": self.equal,
            "compared": [
                {"target": d.target, "sources": list(d.sources), "reason": d.reason,
                 "dtype": d.dtype, "shape": list(d.shape), "mapped_dtype": d.mapped_dtype,
                 "mapped_shape": list(d.mapped_shape), "same": d.same,
                 "max_abs_diff": None if d.max_abs_diff is None
                 else (d.max_abs_diff if math.isfinite(d.max_abs_diff) else "inf")}
                for d in self.compared
            ],
            "missing_in_a": self.missing_in_a, "unused_in_a": self.unused_in_a,
            "auxiliary_a": self.auxiliary_a, "auxiliary_b": self.auxiliary_b,
        }  # fmt: skip

    def to_json(self, indent: int | None = 2) -> str:
        """The report as one JSON document."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def __str__(self) -> str:
        lines = [f"A: {self.a}", f"B: {self.b} (target of the mapping)"]
        rows = []
        for d in self.compared:
            if d.max_abs_diff is None:
                detail = f"mapped {d.mapped_dtype}{fmt_shape(d.mapped_shape)} vs {d.dtype}{fmt_shape(d.shape)}"
            else:
                detail = f"{d.dtype} {fmt_shape(d.shape)} max|a-b| = {d.max_abs_diff:.6g}"
            rows.append(("=" if d.same else "!", d.target, ", ".join(d.sources), detail))
        if rows:
            lines += render_table(("", "B entry", "from A", "dtype, shape, difference"), rows)
        lines += [f"no source in A: {k}" for k in self.missing_in_a]
        lines += [f"not in B: {k}" for k in self.unused_in_a]
        n_diff = sum(not d.same for d in self.compared)
        lines.append(
            f"{len(self.compared)} mapped ({n_diff} differ), {len(self.missing_in_a)} without "
            f"source in A, {len(self.unused_in_a)} of A not in B, auxiliary left out: "
            f"{len(self.auxiliary_a)} in A, {len(self.auxiliary_b)} in B: "
            f"{'equal' if self.equal else 'different'}"
        )
        return "\n".join(lines)


def diff_mapped(
    a: str | os.PathLike[str], b: str | os.PathLike[str], rules: Any = None
) -> MappedDiffReport:
    """Compare checkpoint ``b`` with ``a`` mapped onto it (see the module docstring).

    ``rules``: as for ``plan`` (a path, ``"preset:NAME"``, a dict or a Rules).

    Example::

        report = diff_mapped("old/model.ckpt-1000", "new/model.ckpt-1000")
        print(report)          # one row per B entry, then what each side left out
    """
    import numpy as np

    from ckptbridge.engine import derive
    from ckptbridge.format import open_checkpoint
    from ckptbridge.rules import load_rules
    from ckptbridge.sides._checkpoint import checkpoint_specs
    from ckptbridge.transforms import apply_steps

    loaded = load_rules(rules)
    with open_checkpoint(a) as ca, open_checkpoint(b) as cb:
        plan = derive(checkpoint_specs(ca), checkpoint_specs(cb), loaded,
                      source_label=str(ca.prefix), target_label=str(cb.prefix))  # fmt: skip
        report = MappedDiffReport(a=str(ca.prefix), b=str(cb.prefix))
        for m in plan.matches:
            arrays = [ca.read(s) for s in m.sources]
            mapped = np.asarray(apply_steps(arrays, list(m.steps))) if m.steps else arrays[0]
            stored = cb.read(m.target)
            if mapped.shape != stored.shape and mapped.size == stored.size:
                mapped = mapped.reshape(stored.shape)  # layout-only, as a conversion writes it
            value = None
            if mapped.dtype == stored.dtype and mapped.shape == stored.shape:
                value = max_abs_diff(mapped, stored)
            report.compared.append(
                MappedDiff(m.target, tuple(m.sources), m.reason, str(stored.dtype),
                           tuple(stored.shape), str(mapped.dtype), tuple(mapped.shape), value)
            )  # fmt: skip
            del arrays, mapped, stored
        report.missing_in_a = [u.target for u in plan.missing]
        report.unused_in_a = list(plan.unused)
        report.auxiliary_a = [x.name for x in plan.auxiliary]
        report.auxiliary_b = [x.name for x in plan.target_auxiliary]
    return report
