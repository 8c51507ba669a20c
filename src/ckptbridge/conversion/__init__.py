"""Conversion between checkpoint formats: streaming, atomic, restartable.

Modules: ``_target`` (what the output looks like), ``_actions`` (where each output value comes
from), ``_write`` / ``_link`` (bundle writing, raw copies, hard links), ``_objgraph`` (pruning a TF2
object graph), ``_stage`` (atomic publication), ``_item`` (one checkpoint), ``_run`` (sources,
batches, state files), ``_report`` (the :class:`ConversionReport`), ``_export`` (a live Keras
model and its optimizer as a TF1 checkpoint). The public verb is :func:`ckptbridge.convert`::

    report = convert("old/run", "new/run", target="template/ckpt-1")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptbridge._optional import lazy_exports

__all__ = [
    "ConversionReport",
    "ItemReport",
    "convert",
    "list_sources",
    "plan_conversion",
    "run_conversion",
    "save_tf1_checkpoint",
]


# Every name is imported on first use: the CLI's ``convert`` loads ``_speculate`` first (and starts
# its copies) without the ~60 ms of the conversion's imports; save_tf1_checkpoint needs the live side.
__getattr__ = lazy_exports(
    __name__,
    {
        "ConversionReport": "_report",
        "ItemReport": "_report",
        "convert": "_api",
        "list_sources": "_run",
        "plan_conversion": "_run",
        "run_conversion": "_run",
        "save_tf1_checkpoint": "_export",
    },
)


if TYPE_CHECKING:  # pragma: no cover
    from ckptbridge.conversion._api import convert
    from ckptbridge.conversion._export import save_tf1_checkpoint
    from ckptbridge.conversion._report import ConversionReport, ItemReport
    from ckptbridge.conversion._run import list_sources, plan_conversion, run_conversion
