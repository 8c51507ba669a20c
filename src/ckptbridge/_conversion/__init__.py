"""Conversion between checkpoint formats: streaming, atomic, restartable.

Modules: ``_target`` (what the output looks like), ``_actions`` (where each output value comes
from), ``_write`` / ``_link`` (bundle writing, raw copies, hard links), ``_objgraph`` (pruning a TF2
object graph), ``_stage`` (atomic publication), ``_item`` (one checkpoint), ``_run`` (sources,
batches, state files), ``_report`` (the :class:`ConversionReport`). The public entry point is
:func:`ckptbridge.convert` (``ckptbridge._convert.convert``).
"""

from __future__ import annotations

from ckptbridge._conversion._report import ConversionReport, ItemReport
from ckptbridge._conversion._run import list_sources, plan_conversion, run_conversion

__all__ = ["ConversionReport", "ItemReport", "list_sources", "plan_conversion", "run_conversion"]
