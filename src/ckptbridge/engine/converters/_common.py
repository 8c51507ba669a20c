"""Helpers shared by the converters: building matches and refusals."""

from __future__ import annotations

from collections.abc import Sequence

from ckptbridge.engine._plan import Candidate, Match, Unmatched
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.converters._cells import Cell
from ckptbridge.rules._steps import Cast, Step


def make_match(
    target: VarSpec, sources: Sequence[VarSpec], steps: Sequence[Step], reason: str
) -> Match:
    """A :class:`Match` with shapes and dtype filled in, plus a final ``Cast`` if dtypes differ."""
    all_steps = list(steps)
    if any(s.dtype != target.dtype for s in sources):
        all_steps.append(Cast(dtype=target.dtype))
    return Match(
        target=target.name,
        sources=tuple(s.name for s in sources),
        steps=tuple(all_steps),
        reason=reason,
        target_shape=target.shape,
        source_shapes=tuple(s.shape for s in sources),
        target_dtype=target.dtype,
    )


def refuse(target: Cell, why: str, candidates: Sequence[Cell] = ()) -> list[Unmatched]:
    """Every variable of ``target`` left unmatched for ``why``; candidates are the source cells."""
    cands = tuple(
        Candidate(spec.name, spec.shape, 1.0) for cell in candidates for spec in cell.roles.values()
    )
    return [Unmatched(spec.name, spec.shape, why, cands) for spec in target.specs]


def fmt(value: float) -> str:
    """``1.0`` -> ``'1.0'``, ``0.8`` -> ``'0.8'``: the number as a user wrote it."""
    return repr(float(value))
