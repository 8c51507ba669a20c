"""Restore a checkpoint into a live model: plan, read and check every value, then assign.

``_restore`` holds :func:`restore_into` and the :class:`RestoreReport`; ``_optimizer`` prepares a
model's optimizer state from TF1 slots. The public verb is :func:`ckptbridge.restore`::

    report = restore_into(model, "old/model.ckpt-1000", rules, strict=True)
"""

from __future__ import annotations

from ckptbridge.restoring._restore import RestoreReport, describe_steps, restore_into

__all__ = ["RestoreReport", "describe_steps", "restore_into"]
