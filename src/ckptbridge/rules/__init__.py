"""User rules: Pydantic models and loaders (YAML, TOML, JSON, dict, presets)."""

from __future__ import annotations

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
    "Slice",
    "Split",
    "Step",
    "Transpose",
]
