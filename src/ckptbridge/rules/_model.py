"""Rules: user-written mapping configuration, as Pydantic v2 models.

A rules document (YAML, TOML, JSON or a dict) looks like::

    version: 1
    rename:                       # ordered; the first whose pattern fullmatches a source key wins
      - {pattern: "vgg_16/conv(\\d)/conv\\1_(\\d)/weights", replace: "block\\1_conv\\2/kernel"}
    map:                          # explicit pairs, source key -> target name; beat every rename
      fc2/weights: dense_2/kernel
    ignore: ["global_step", ".*/Adam(_1)?"]   # source keys (fullmatch) never used
    ignore_target: []                         # target names (fullmatch) that may stay unrestored
    transforms:                               # per-key steps, applied source -> target
      - target: "dense/kernel"
        sources: ["fc/weights"]               # optional; default is whatever the plan matched
        steps: [{op: reshape, shape: [25088, 4096]}]
    options: {strict: true, use_ema: false, optimizer_state: false, forget_bias: 1.0}
    presets: [slim-vgg16]                     # shipped rule sets, merged in front of these rules

Every model forbids unknown fields, so a typo is an error that names the field. Regexes compile
when the rules are validated, so a bad pattern is reported with its location, not at restore time.
Precedence: ``ignore`` and ``ignore_target`` first, then ``map`` (and ``transforms`` that name
their ``sources``), then ``rename`` in order, then derivation (unless ``options.derive`` is false).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return pattern


def _check_regexes(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for i, pattern in enumerate(patterns):
        try:
            _check_regex(pattern)
        except ValueError as exc:
            raise ValueError(f"entry [{i}]: {exc}") from None
    return patterns


# ---------------------------------------------------------------------------------------------
# Transform steps. Applied in order to the source array(s); the result must have the target shape.
# ---------------------------------------------------------------------------------------------


class _Step(_Strict):
    """A transform step. ``op`` tells the kinds apart, so it is written out even where defaults are
    left out (``model_dump(exclude_defaults=True)``): a rules file must read back as it was."""

    op: str

    @model_serializer(mode="wrap")
    def _keep_op(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            data = {"op": self.op, **data}
        return data


class Transpose(_Step):
    """Permute axes (``numpy.transpose``); no ``perm`` reverses them."""

    op: Literal["transpose"] = "transpose"
    perm: tuple[int, ...] | None = None


class Reshape(_Step):
    """Reshape to ``shape`` (same element count; one ``-1`` allowed). Changes no bytes."""

    op: Literal["reshape"] = "reshape"
    shape: tuple[int, ...]


class Split(_Step):
    """Split along ``axis`` into ``parts`` equal pieces (or pieces of ``sizes``); keep ``index``."""

    op: Literal["split"] = "split"
    axis: int = 0
    parts: int | None = Field(default=None, ge=1)
    sizes: tuple[int, ...] | None = None
    index: int = Field(ge=0)


class Slice(_Step):
    """Keep ``start:stop:step`` along ``axis``."""

    op: Literal["slice"] = "slice"
    axis: int = 0
    start: int | None = None
    stop: int | None = None
    step: int | None = None


class Concat(_Step):
    """Concatenate all source arrays (in the match's source order) along ``axis``."""

    op: Literal["concat"] = "concat"
    axis: int = 0


class Cast(_Step):
    """Cast to ``dtype`` (a numpy/TensorFlow dtype name such as ``float16`` or ``bfloat16``)."""

    op: Literal["cast"] = "cast"
    dtype: str


class Add(_Step):
    """Add a constant, optionally only to ``start:stop`` along ``axis`` (e.g. an LSTM forget bias)."""

    op: Literal["add"] = "add"
    value: float
    axis: int = 0
    start: int | None = None
    stop: int | None = None


class PermuteBlocks(_Step):
    """Cut ``axis`` into ``parts`` equal blocks and put them in ``order`` (e.g. gates i,j,f,o -> i,f,j,o)."""

    op: Literal["permute_blocks"] = "permute_blocks"
    axis: int = -1
    parts: int = Field(ge=1)
    order: tuple[int, ...]


Step = Annotated[
    Transpose | Reshape | Split | Slice | Concat | Cast | Add | PermuteBlocks,
    Field(discriminator="op"),
]


# ---------------------------------------------------------------------------------------------
# The rules document
# ---------------------------------------------------------------------------------------------


class Rename(_Strict):
    """Rename source keys: ``pattern`` must fullmatch the key; ``replace`` may use ``\\1`` or ``\\g<name>``."""

    pattern: str
    replace: str

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: str) -> str:
        return _check_regex(v)


class KeyTransform(_Strict):
    """Steps for one target (``target`` is a fullmatch regex over target names)."""

    target: str
    sources: tuple[str, ...] | None = None
    steps: tuple[Step, ...] = ()

    @field_validator("target")
    @classmethod
    def _target_compiles(cls, v: str) -> str:
        return _check_regex(v)


class Options(_Strict):
    """Switches that change how the plan is derived."""

    strict: bool | None = None
    use_ema: bool = False
    optimizer_state: bool = False
    forget_bias: float = 1.0
    forget_bias_per_key: dict[str, float] = Field(default_factory=dict)
    derive: bool = True

    @field_validator("forget_bias_per_key")
    @classmethod
    def _keys_compile(cls, v: dict[str, float]) -> dict[str, float]:
        _check_regexes(tuple(v))
        return v


class Rules(_Strict):
    """A whole rules document. ``Rules()`` is the empty rule set (derive everything)."""

    version: Literal[1] = 1
    rename: tuple[Rename, ...] = ()
    map: dict[str, str] = Field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    ignore_target: tuple[str, ...] = ()
    transforms: tuple[KeyTransform, ...] = ()
    options: Options = Field(default_factory=Options)
    presets: tuple[str, ...] = ()

    @field_validator("ignore", "ignore_target")
    @classmethod
    def _patterns_compile(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return _check_regexes(v)
