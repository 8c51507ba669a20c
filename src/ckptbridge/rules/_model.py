"""Rules: user-written mapping configuration, as Pydantic v2 models.

``Rules``, ``Rename`` and ``KeyTransform`` are Pydantic models; their transform steps
(``ckptbridge.rules._steps``) and ``Options`` (``ckptbridge.rules._options``) are frozen dataclasses that
Pydantic validates here with the same strictness (unknown fields are errors), and that the engine
builds and reads without importing Pydantic.

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
    field_serializer,
    field_validator,
)

from ckptbridge.rules._options import Options
from ckptbridge.rules._steps import Step

__all__ = ["KeyTransform", "Rename", "Rules", "StepField"]


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


# Transform steps and options are plain frozen dataclasses (ckptbridge.rules._steps, ckptbridge.rules._options):
# the engine builds them without Pydantic; here Pydantic validates them as fields of the rules.
# ``op`` tells the step kinds apart, so it is written out even where defaults are left out
# (``model_dump(exclude_defaults=True)``): a rules file must read back as it was.
StepField = Annotated[Step, Field(discriminator="op")]


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
    steps: tuple[StepField, ...] = ()

    @field_validator("target")
    @classmethod
    def _target_compiles(cls, v: str) -> str:
        return _check_regex(v)

    @field_serializer("steps", mode="wrap")
    def _keep_op(self, steps: tuple[Step, ...], handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(steps)
        return type(data)({"op": s.op, **d} for s, d in zip(steps, data, strict=True))


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
