"""Plain descriptions of optimizer state on either side of a migration, and the plan between them.

Both sides speak one vocabulary of *roles* per optimizer *family*:

=========  ==========================================  ==========================================
family     roles                                       TF1 slots (default optimizer names)
=========  ==========================================  ==========================================
adam       ``m``, ``v``                                ``/Adam``, ``/Adam_1``
momentum   ``momentum``                                ``/Momentum``
rmsprop    ``velocity``, ``momentum``,                 ``/RMSProp``, ``/RMSProp_1`` (centered:
           ``average_gradient`` (centered only)        ``/RMSProp_1`` is mg, ``/RMSProp_2`` mom)
adagrad    ``accumulator``                             ``/Adagrad`` (estimators: ``/t_0/Adagrad``)
sgd        none (plain gradient descent)               none
=========  ==========================================  ==========================================

A side's ``convention`` says how its momentum slot is scaled: TF1 ``MomentumOptimizer`` keeps the
accumulated gradients (``accum = momentum*accum + g; var -= lr*accum``), Keras ``SGD`` keeps the
step (``m = momentum*m - lr*g; var += m``), so ``m = -lr * accum``. Every other slot means the same
on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ckptbridge.engine._plan import Match, Unmatched
from ckptbridge.rules._steps import Step

__all__ = [
    "Convention",
    "CounterValue",
    "Family",
    "Hyper",
    "OptimizerPlan",
    "OptimizerSide",
    "SlotMatch",
    "SlotRef",
]

Family = Literal["adam", "momentum", "rmsprop", "adagrad", "sgd"]
Convention = Literal["tf1", "keras"]


@dataclass(frozen=True)
class SlotRef:
    """One optimizer slot: its ``name`` (checkpoint key or optimizer variable path), the ``weight``
    it belongs to (checkpoint key or model variable name) and its ``role`` (``m``, ``v``...)."""

    name: str
    weight: str
    role: str
    shape: tuple[int, ...] = ()
    dtype: str = "float32"


@dataclass(frozen=True)
class Hyper:
    """The hyperparameters the conversion needs (``None``: not known on this side).

    TF1 checkpoints store none of them; the Keras optimizer's config supplies them, and must equal
    what the TF1 run used (the migration cannot check ``epsilon`` or ``learning_rate``).
    """

    learning_rate: float | None = None
    beta_1: float | None = None
    beta_2: float | None = None
    epsilon: float | None = None
    momentum: float | None = None
    rho: float | None = None
    centered: bool = False
    nesterov: bool = False
    amsgrad: bool = False
    lr_is_schedule: bool = False


@dataclass(frozen=True)
class OptimizerSide:
    """All the optimizer state of one side.

    ``counters``: counter kind (``beta1_power``, ``beta2_power``, ``global_step``, ``iterations``)
    -> name of the scalar that holds it. ``kind``: a label for messages (``"TF1 Adam"``,
    ``"keras.optimizers.SGD"``).
    """

    family: Family
    convention: Convention
    slots: tuple[SlotRef, ...] = ()
    counters: dict[str, str] = field(default_factory=dict)
    hyper: Hyper = field(default_factory=Hyper)
    kind: str = ""

    def slot_index(self) -> dict[tuple[str, str], SlotRef]:
        """(weight, role) -> slot."""
        return {(s.weight, s.role): s for s in self.slots}


@dataclass(frozen=True)
class SlotMatch:
    """Target slot ``target`` = ``scale`` * (``sources`` passed through ``steps``).

    ``sources`` empty: the target is filled with zeros (a slot the target's math never reads,
    e.g. TF1 RMSProp's momentum slot when the Keras optimizer has ``momentum=0``).
    """

    target: str
    sources: tuple[str, ...]
    steps: tuple[Step, ...] = ()
    scale: float = 1.0
    reason: str = ""
    target_shape: tuple[int, ...] = ()
    source_shapes: tuple[tuple[int, ...], ...] = ()
    target_dtype: str = "float32"


@dataclass(frozen=True)
class CounterValue:
    """A scalar counter of the target (``iterations``, ``beta1_power``...) and its computed value."""

    target: str
    value: float
    sources: tuple[str, ...]
    reason: str
    dtype: str = "int64"


@dataclass
class OptimizerPlan:
    """How the target optimizer's state is computed from the source's.

    ``missing``: target slots with no source (the weight is not restored, or its slot is not in the
    checkpoint). ``unused``: source slots nobody reads. ``notes``: what the user should know
    (hyperparameters taken on trust, slots the target's math ignores).
    """

    source_kind: str
    target_kind: str
    slots: list[SlotMatch] = field(default_factory=list)
    counters: list[CounterValue] = field(default_factory=list)
    missing: list[Unmatched] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every target slot has a source (zero-filled slots count as filled)."""
        return not self.missing

    @property
    def used_sources(self) -> set[str]:
        """Every source name a slot or counter reads."""
        names = {s for m in self.slots for s in m.sources}
        return names | {s for c in self.counters for s in c.sources}

    def as_matches(self) -> list[Match]:
        """The plan as :class:`Match` rows for a restore report (the scale is in the reason).

        >>> OptimizerPlan("TF1 Adam", "keras Adam").as_matches()
        []
        """
        rows = [
            Match(
                m.target,
                m.sources,
                m.steps,
                m.reason,
                m.target_shape,
                m.source_shapes,
                m.target_dtype,
            )
            for m in self.slots
        ]
        rows += [
            Match(c.target, c.sources, (), c.reason, (), tuple(() for _ in c.sources), c.dtype)
            for c in self.counters
        ]
        return rows
