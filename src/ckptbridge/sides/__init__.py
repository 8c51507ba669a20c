"""The two sides of a plan, described for the engine as :class:`~ckptbridge.engine.VarSpec` lists.

- ``_checkpoint``: checkpoints and ``.meta`` graphs (names, aliases, creation order);
- ``_live``: live models (Keras 3, tf-keras, ``tf.Module``): describe their variables, assign values;
- ``_optimizer``: a live model's optimizer (slots, iterations, hyper-parameters);
- ``_target``: whatever the user passed as a target, resolved to a :class:`Side`.

This layer sits above the engine and the format; TensorFlow is imported only for live objects::

    side = describe_checkpoint("old/model.ckpt-1000")
    target = describe_target(model)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ckptbridge.sides._checkpoint import (
    Side,
    checkpoint_specs,
    describe_checkpoint,
    meta_specs,
    read_meta_file,
)
from ckptbridge.sides._target import describe_target, is_factory_spec, load_factory

if TYPE_CHECKING:
    from ckptbridge.sides._live import (
        LiveModel,
        assign_values,
        check_values,
        describe_model,
        is_live_model,
    )

__all__ = [
    "LiveModel",
    "Side",
    "assign_values",
    "check_values",
    "checkpoint_specs",
    "describe_checkpoint",
    "describe_model",
    "describe_target",
    "is_factory_spec",
    "is_live_model",
    "load_factory",
    "meta_specs",
    "read_meta_file",
]

_LIVE = frozenset({"LiveModel", "assign_values", "check_values", "describe_model", "is_live_model"})


def __getattr__(name: str) -> Any:
    """The live-model half (``_live``), imported on first use (PEP 562): a checkpoint-to-checkpoint
    command never needs it."""
    if name not in _LIVE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}._live"), name)
    globals()[name] = value
    return value
