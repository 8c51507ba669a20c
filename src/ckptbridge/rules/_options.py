"""Options: the switches of a rules document that change how a plan is derived, as a plain value.

A frozen dataclass (validated by Pydantic inside :class:`ckptbridge.rules.Rules`, where unknown
fields are errors) so that deriving without rules never imports Pydantic. Public name:
``ckptbridge.rules.Options``.

>>> Options().use_ema, Options(forget_bias=0.5).forget_bias
(False, 0.5)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class Options:
    """Switches that change how the plan is derived.

    ``strict``: refuse an incomplete restore (None: the caller's default). ``use_ema``: restore
    the EMA shadows instead of the weights. ``optimizer_state``: also restore optimizer slots,
    iterations and learning rate. ``forget_bias``: the LSTM forget bias TF1 added at run time,
    folded into the Keras bias; None reads it from the checkpoint's ``.meta`` graph (else 1.0,
    with a note), a value here overrides the graph. ``forget_bias_per_key``: the same per cell
    (regex over its scope or variable names; first match wins). ``derive``: False uses only
    the rules' own entries.
    """

    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid"}
    strict: bool | None = None
    use_ema: bool = False
    optimizer_state: bool = False
    forget_bias: float | None = None
    forget_bias_per_key: dict[str, float] = field(default_factory=dict)
    derive: bool = True

    def __post_init__(self) -> None:
        for i, pattern in enumerate(self.forget_bias_per_key):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"forget_bias_per_key: entry [{i}]: bad regular expression {pattern!r}: {exc}"
                ) from None
