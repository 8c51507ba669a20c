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

from typing import TYPE_CHECKING

from ckptbridge._optional import lazy_exports
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


# The live-model half (``_live``), imported on first use: a checkpoint-to-checkpoint command
# never needs it.
__getattr__ = lazy_exports(__name__, dict.fromkeys(_LIVE, "_live"))
