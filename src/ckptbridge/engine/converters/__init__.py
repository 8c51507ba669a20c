"""Layer converters: mappings that names alone cannot bridge (RNN cells, attention blocks).

The mapping engine calls :func:`propose` before its name and structure matching::

    from ckptbridge.engine.converters import propose
    result = propose(source_specs, target_specs, rules.options)
    result.matches     # list[Match]: targets decided here, with steps and a reason
    result.unmatched   # list[Unmatched]: targets refused, with why (peepholes, reset_after=True...)

Pure: no TensorFlow import, no file I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptbridge._optional import lazy_exports

if TYPE_CHECKING:
    from ckptbridge.engine.converters._pairing import Pin, cell_pins
    from ckptbridge.engine.converters._propose import ConverterResult, propose

__all__ = ["ConverterResult", "Pin", "cell_pins", "propose"]

_LAZY = {
    "Pin": "_pairing",
    "cell_pins": "_pairing",
    "ConverterResult": "_propose",
    "propose": "_propose",
}


# The detectors and converters, imported on first use: the engine first asks
# ``_gate.may_propose`` whether any can apply, so a plan without cells or attention blocks
# never imports them.
__getattr__ = lazy_exports(__name__, _LAZY)
