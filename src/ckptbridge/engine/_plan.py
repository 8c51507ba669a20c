"""The result of a derivation: which source feeds which target, how, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ckptbridge.rules._model import Step

AuxKind = Literal[
    "optimizer_slot",
    "optimizer_power",
    "global_step",
    "learning_rate",
    "ema_shadow",
    "object_graph",
    "save_counter",
    "optimizer_other",
]


@dataclass(frozen=True)
class Match:
    """``target`` is restored from ``sources`` (usually one) passed through ``steps``.

    ``reason`` names the rule or derivation step that decided it, e.g. ``"rule map[fc2/weights]"``,
    ``"identical name"``, ``"vocabulary: weights->kernel"``, ``"creation order + shape"``.
    """

    target: str
    sources: tuple[str, ...]
    steps: tuple[Step, ...] = ()
    reason: str = ""
    target_shape: tuple[int, ...] = ()
    source_shapes: tuple[tuple[int, ...], ...] = ()
    target_dtype: str = "float32"

    @property
    def source(self) -> str:
        return self.sources[0]


@dataclass(frozen=True)
class Candidate:
    """A source key that came close to an unmatched target."""

    name: str
    shape: tuple[int, ...]
    score: float


@dataclass(frozen=True)
class Unmatched:
    """A target with no source, the closest candidates, and why none was taken."""

    target: str
    shape: tuple[int, ...]
    why: str
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True)
class Auxiliary:
    """A source entry that is not a model weight (optimizer slot, step counter, EMA shadow...)."""

    name: str
    kind: AuxKind
    of: str | None = None  # the variable it belongs to, when known


@dataclass
class MappingPlan:
    """Everything a restore or conversion needs, and everything a user needs to check it."""

    matches: list[Match] = field(default_factory=list)
    missing: list[Unmatched] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    auxiliary: list[Auxiliary] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    source_label: str = "checkpoint"
    target_label: str = "model"

    @property
    def complete(self) -> bool:
        return not self.missing
