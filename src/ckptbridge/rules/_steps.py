"""Transform steps: what a plan applies to source arrays on the way to a target, as plain values.

Applied in order; the result must have the target shape. The engine builds them, conversion and
restore apply them (:mod:`ckptbridge.transforms`), and rules files name them (``steps: [{op:
reshape, shape: [25088, 4096]}]``), where Pydantic validates them as part of
:class:`ckptbridge.rules.Rules`. They are frozen dataclasses rather than Pydantic models so that a
command that reads no rules file (``inspect``, ``plan``, a plain ``convert``) never imports
Pydantic; each checks its own values, so a step built in code is as valid as one read from a file.
Public names: ``ckptbridge.rules.Reshape`` and so on.

>>> Reshape(shape=[25088, 4096])
Reshape(op='reshape', shape=(25088, 4096))
>>> step_dict(Add(value=1.0, start=4, stop=8))
{'op': 'add', 'value': 1.0, 'axis': 0, 'start': 4, 'stop': 8}
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

# How Pydantic validates these inside Rules: unknown fields are errors, as in every rules model.
_FORBID_EXTRA: dict[str, Any] = {"extra": "forbid"}


def _config(**minimum: int) -> dict[str, Any]:
    """Pydantic config: unknown fields are errors, and the JSON Schema (``ckptbridge schema``)
    states each field's ``minimum`` that ``__post_init__`` checks."""

    def schema_extra(schema: dict[str, Any]) -> None:
        for name, low in minimum.items():
            prop = schema["properties"][name]
            for option in prop.get("anyOf", [prop]):
                if option.get("type") == "integer":
                    option["minimum"] = low

    return {**_FORBID_EXTRA, "json_schema_extra": schema_extra}


def _ints(step: object, *names: str) -> None:
    """Store each int field as a plain ``int`` (numpy integers too), and each tuple field as a
    tuple of ints (a list from a caller compares equal), as Pydantic would have coerced them."""
    for name in names:
        value = getattr(step, name)
        if value is None:
            continue
        if isinstance(value, (tuple, list)):
            fixed: object = tuple(operator.index(v) for v in value)
        else:
            fixed = operator.index(value)
        if fixed != value or type(fixed) is not type(value):
            object.__setattr__(step, name, fixed)


def _at_least(value: int | None, low: int, name: str) -> None:
    if value is not None and value < low:
        raise ValueError(f"{name}: must be >= {low}, got {value}")  # rules errors: loc + message


@dataclass(frozen=True, kw_only=True)
class Transpose:
    """Permute axes (``numpy.transpose``); no ``perm`` reverses them."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _FORBID_EXTRA
    op: Literal["transpose"] = "transpose"
    perm: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _ints(self, "perm")


@dataclass(frozen=True, kw_only=True)
class Reshape:
    """Reshape to ``shape`` (same element count; one ``-1`` allowed). Changes no bytes."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _FORBID_EXTRA
    op: Literal["reshape"] = "reshape"
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        _ints(self, "shape")


@dataclass(frozen=True, kw_only=True)
class Split:
    """Split along ``axis`` into ``parts`` equal pieces (or pieces of ``sizes``); keep ``index``."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _config(parts=1, index=0)
    op: Literal["split"] = "split"
    axis: int = 0
    parts: int | None = None
    sizes: tuple[int, ...] | None = None
    index: int

    def __post_init__(self) -> None:
        _ints(self, "axis", "parts", "sizes", "index")
        _at_least(self.parts, 1, "parts")
        _at_least(self.index, 0, "index")


@dataclass(frozen=True, kw_only=True)
class Slice:
    """Keep ``start:stop:step`` along ``axis``."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _FORBID_EXTRA
    op: Literal["slice"] = "slice"
    axis: int = 0
    start: int | None = None
    stop: int | None = None
    step: int | None = None

    def __post_init__(self) -> None:
        _ints(self, "axis", "start", "stop", "step")


@dataclass(frozen=True, kw_only=True)
class Concat:
    """Concatenate all source arrays (in the match's source order) along ``axis``."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _FORBID_EXTRA
    op: Literal["concat"] = "concat"
    axis: int = 0

    def __post_init__(self) -> None:
        _ints(self, "axis")


@dataclass(frozen=True, kw_only=True)
class Cast:
    """Cast to ``dtype`` (a numpy/TensorFlow dtype name such as ``float16`` or ``bfloat16``)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _FORBID_EXTRA
    op: Literal["cast"] = "cast"
    dtype: str


@dataclass(frozen=True, kw_only=True)
class Add:
    """Add a constant, optionally only to ``start:stop`` along ``axis`` (e.g. an LSTM forget bias)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _FORBID_EXTRA
    op: Literal["add"] = "add"
    value: float
    axis: int = 0
    start: int | None = None
    stop: int | None = None

    def __post_init__(self) -> None:
        if type(self.value) is not float:
            object.__setattr__(self, "value", float(self.value))
        _ints(self, "axis", "start", "stop")


@dataclass(frozen=True, kw_only=True)
class PermuteBlocks:
    """Cut ``axis`` into ``parts`` equal blocks and put them in ``order`` (e.g. gates i,j,f,o -> i,f,j,o)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _config(parts=1)
    op: Literal["permute_blocks"] = "permute_blocks"
    axis: int = -1
    parts: int
    order: tuple[int, ...]

    def __post_init__(self) -> None:
        _ints(self, "axis", "parts", "order")
        _at_least(self.parts, 1, "parts")


Step: TypeAlias = Transpose | Reshape | Split | Slice | Concat | Cast | Add | PermuteBlocks
"""Any one transform step; ``op`` tells the kinds apart."""

STEP_TYPES: tuple[type[Step], ...] = (
    Transpose,
    Reshape,
    Split,
    Slice,
    Concat,
    Cast,
    Add,
    PermuteBlocks,
)


def step_dict(step: Step) -> dict[str, Any]:
    """``step`` as JSON-ready data: ``op`` first, then every field that is not None (tuples as
    lists): what a plan's JSON holds and a rules file reads back."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(step):
        value = getattr(step, f.name)
        if value is not None:
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
