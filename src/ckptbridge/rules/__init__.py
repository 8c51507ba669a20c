"""User rules: Pydantic models and loaders (YAML, TOML, JSON, dict, presets).

>>> from ckptbridge.rules import load_rules
>>> load_rules({"map": {"fc2/weights": "dense_2/kernel"}}).map
{'fc2/weights': 'dense_2/kernel'}
"""

from __future__ import annotations

from ckptbridge.rules._load import (
    RulesLike,
    available_presets,
    expand_presets,
    load_rules,
    rules_json_schema,
)
from ckptbridge.rules._model import (
    Add,
    Cast,
    Concat,
    KeyTransform,
    Options,
    PermuteBlocks,
    Rename,
    Reshape,
    Rules,
    Slice,
    Split,
    Step,
    Transpose,
)

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
