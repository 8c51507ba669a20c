"""Optimizer state across the TF1/TF2 divide: TF1 ``Adam``, ``Momentum``, ``RMSProp`` and
``Adagrad`` slots (and ``beta1_power``/``beta2_power``/``global_step``) to the slots and
``iterations`` of a Keras 3 or tf-keras optimizer, and back.

Opt-in through the rules (``options: {optimizer_state: true}``): ``ckptbridge.restore`` then also
restores ``model.optimizer`` and its report lists which optimizer variable came from which slot::

    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8), loss="mse")
    report = ckptbridge.restore(model, "old/model.ckpt-1000", {"options": {"optimizer_state": True}})

The other way, :func:`save_tf1_checkpoint` writes a Keras model's weights and optimizer state as a
TF1 checkpoint a TF1 ``Saver`` restores (slots ``/Adam``, ``/Adam_1``, ``beta1_power``...).

The vocabulary and the mapping (``_vocab``, ``_map``, ``_types``) are pure; ``_live``, ``_hook``
and ``_export`` touch live optimizers and import TensorFlow lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ckptbridge.optim._map import check_compatible, map_counters, map_slots, steps_done
from ckptbridge.optim._types import (
    CounterValue,
    Hyper,
    OptimizerPlan,
    OptimizerSide,
    SlotMatch,
    SlotRef,
)
from ckptbridge.optim._vocab import slot_role, tf1_side, tf1_slot_name, tf1_target_side

__all__ = [
    "CounterValue",
    "Hyper",
    "OptimizerPlan",
    "OptimizerSide",
    "SlotMatch",
    "SlotRef",
    "check_compatible",
    "map_counters",
    "map_slots",
    "save_tf1_checkpoint",
    "slot_role",
    "steps_done",
    "tf1_side",
    "tf1_slot_name",
    "tf1_target_side",
]


def __getattr__(name: str) -> Any:
    if name == "save_tf1_checkpoint":  # imports the live side only when used
        from ckptbridge.optim._export import save_tf1_checkpoint

        return save_tf1_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from ckptbridge.optim._export import save_tf1_checkpoint
