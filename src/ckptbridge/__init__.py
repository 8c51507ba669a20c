"""ckptbridge: carry TensorFlow checkpoints across the TF1/TF2 divide.

Read any TensorFlow checkpoint without TensorFlow, derive the correspondence between a legacy
checkpoint and today's model, restore it, or re-save it in the other format::

    import ckptbridge
    report = ckptbridge.restore(model, "old/model.ckpt-1000")
    print(report)

``import ckptbridge`` does not import TensorFlow, and nothing needs it but TensorFlow models
(tf-keras, ``tf.Module``) and TF2 template checkpoints written from a model: restore into a Keras 3
model works on every Keras backend (JAX, PyTorch, NumPy, TensorFlow).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ckptbridge._errors import (
    CheckpointNotFoundError,
    CkptBridgeError,
    ConversionError,
    CorruptCheckpointError,
    EntryNotFoundError,
    MappingError,
    MissingDependencyError,
    OutputExistsError,
    RulesError,
    StorageError,
    UnsupportedCheckpointError,
)

__version__ = "0.1.0"

# name -> module that defines it; imported on first access so that `import ckptbridge` stays light.
_LAZY: dict[str, str] = {
    "inspect": "ckptbridge.tools",
    "load_variables": "ckptbridge.tools",
    "verify": "ckptbridge.tools",
    "VerifyReport": "ckptbridge.tools",
    "CheckpointInfo": "ckptbridge.tools",
    "Rules": "ckptbridge.rules",
    "load_rules": "ckptbridge.rules",
    "MappingPlan": "ckptbridge.engine",
    "Bridge": "ckptbridge._bridge",
    "restore": "ckptbridge._bridge",
    "plan": "ckptbridge._bridge",
    "convert": "ckptbridge._bridge",
    "RestoreReport": "ckptbridge.restoring",
    "ConversionReport": "ckptbridge.conversion",
    "NotFoundError": "ckptbridge._optional",
}

__all__ = [
    "Bridge",
    "CheckpointInfo",
    "CheckpointNotFoundError",
    "CkptBridgeError",
    "ConversionError",
    "ConversionReport",
    "CorruptCheckpointError",
    "EntryNotFoundError",
    "MappingError",
    "MappingPlan",
    "MissingDependencyError",
    "NotFoundError",
    "OutputExistsError",
    "RestoreReport",
    "Rules",
    "RulesError",
    "StorageError",
    "UnsupportedCheckpointError",
    "VerifyReport",
    "__version__",
    "convert",
    "inspect",
    "load_rules",
    "load_variables",
    "plan",
    "restore",
    "verify",
]


# Subpackages, importable as attributes (``ckptbridge.format.open_checkpoint``); ``converters``
# and ``optim`` are the engine's pure parts, kept under their first names.
_SUBPACKAGES: dict[str, str] = {
    "cli": "ckptbridge.cli",
    "conversion": "ckptbridge.conversion",
    "converters": "ckptbridge.engine.converters",
    "engine": "ckptbridge.engine",
    "format": "ckptbridge.format",
    "optim": "ckptbridge.engine.optim",
    "restoring": "ckptbridge.restoring",
    "rules": "ckptbridge.rules",
    "sides": "ckptbridge.sides",
    "tools": "ckptbridge.tools",
    "transforms": "ckptbridge.transforms",
}


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(_SUBPACKAGES[name])
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ckptbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from ckptbridge._bridge import Bridge, convert, plan, restore
    from ckptbridge._optional import NotFoundError
    from ckptbridge.conversion import ConversionReport
    from ckptbridge.engine import MappingPlan
    from ckptbridge.restoring import RestoreReport
    from ckptbridge.rules import Rules, load_rules
    from ckptbridge.tools import CheckpointInfo, VerifyReport, inspect, load_variables, verify
