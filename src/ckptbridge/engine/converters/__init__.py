"""Layer converters: mappings that names alone cannot bridge (RNN cells, attention blocks).

The mapping engine calls :func:`propose` before its name and structure matching::

    from ckptbridge.engine.converters import propose
    result = propose(source_specs, target_specs, rules.options)
    result.matches     # list[Match]: targets decided here, with steps and a reason
    result.unmatched   # list[Unmatched]: targets refused, with why (peepholes, reset_after=True...)

Pure: no TensorFlow import, no file I/O.
"""

from __future__ import annotations

from ckptbridge.engine.converters._pairing import Pin, cell_pins
from ckptbridge.engine.converters._propose import ConverterResult, propose

__all__ = ["ConverterResult", "Pin", "cell_pins", "propose"]
