"""User rules: loaders (YAML, TOML, JSON, dict, presets), their Pydantic models, and the plain
transform steps and options that plans hold.

>>> from ckptbridge.rules import load_rules
>>> load_rules({"map": {"fc2/weights": "dense_2/kernel"}}).map
{'fc2/weights': 'dense_2/kernel'}

The steps (``Reshape``...) and ``Options`` are plain frozen dataclasses, imported at once: the
engine builds them for every plan. ``Rules``, ``Rename``, ``KeyTransform`` and the loaders need
Pydantic and are imported when first used, so a command without rules never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptbridge._optional import lazy_exports
from ckptbridge.rules._options import Options
from ckptbridge.rules._steps import (
    Add,
    Cast,
    Concat,
    PermuteBlocks,
    Reshape,
    Slice,
    Split,
    Step,
    Transpose,
)

if TYPE_CHECKING:
    from ckptbridge.rules._load import (
        RulesLike,
        available_presets,
        expand_presets,
        load_rules,
        rules_json_schema,
    )
    from ckptbridge.rules._model import KeyTransform, Rename, Rules

_PYDANTIC = {
    "KeyTransform": "_model",
    "Rename": "_model",
    "Rules": "_model",
    "RulesLike": "_load",
    "available_presets": "_load",
    "expand_presets": "_load",
    "load_rules": "_load",
    "rules_json_schema": "_load",
}


# The Pydantic half of the package, imported on first use.
__getattr__ = lazy_exports(__name__, _PYDANTIC)


__all__ = [
    "Add",
    "Cast",
    "Concat",
    "KeyTransform",
    "Options",
    "PermuteBlocks",
    "Rename",
    "Reshape",
    "Rules",
    "RulesLike",
    "Slice",
    "Split",
    "Step",
    "Transpose",
    "available_presets",
    "expand_presets",
    "load_rules",
    "rules_json_schema",
]
