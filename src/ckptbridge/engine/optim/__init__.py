"""Optimizer state across the TF1/TF2 divide: TF1 ``Adam``, ``Momentum``, ``RMSProp`` and
``Adagrad`` slots (and ``beta1_power``/``beta2_power``/``global_step``) to the slots and
``iterations`` of a Keras 3 or tf-keras optimizer, and back.

Opt-in through the rules (``options: {optimizer_state: true}``): ``ckptbridge.restore`` then also
restores ``model.optimizer`` and its report lists which optimizer variable came from which slot::

    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8), loss="mse")
    report = ckptbridge.restore(model, "old/model.ckpt-1000", {"options": {"optimizer_state": True}})

This package is the pure part (vocabulary, mapping, plan types): no TensorFlow, no I/O. Live
optimizers are described in :mod:`ckptbridge.sides._optimizer`, restored by
:mod:`ckptbridge.restoring._optimizer`; :func:`ckptbridge.conversion.save_tf1_checkpoint` writes a
Keras model's weights and optimizer state as a TF1 checkpoint.
"""

from __future__ import annotations

from ckptbridge.engine.optim._map import check_compatible, map_counters, map_slots, steps_done
from ckptbridge.engine.optim._types import (
    CounterValue,
    Hyper,
    OptimizerPlan,
    OptimizerSide,
    SlotMatch,
    SlotRef,
)
from ckptbridge.engine.optim._vocab import slot_role, tf1_side, tf1_slot_name, tf1_target_side

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
    "slot_role",
    "steps_done",
    "tf1_side",
    "tf1_slot_name",
    "tf1_target_side",
]
