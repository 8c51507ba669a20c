"""File-level tools on checkpoints, no model needed: :func:`inspect`, :func:`load_variables`,
:func:`diff`, :func:`diff_mapped` (through the mapping), :func:`verify` (every checksum),
:func:`tensor_values`. They read through :mod:`ckptbridge.format` and never import TensorFlow::

    from ckptbridge.tools import inspect
    print(inspect("old/model.ckpt-1000"))

Each tool's module is imported when the tool is first used: ``ckptbridge inspect`` loads neither
the diff nor the verifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptbridge._optional import lazy_exports

if TYPE_CHECKING:
    from ckptbridge.tools._diff import diff
    from ckptbridge.tools._inspect import CheckpointInfo, inspect, load_variables
    from ckptbridge.tools._mapped import diff_mapped
    from ckptbridge.tools._values import tensor_values
    from ckptbridge.tools._verify import VerifyReport, verify

__all__ = [
    "CheckpointInfo",
    "VerifyReport",
    "diff",
    "diff_mapped",
    "inspect",
    "load_variables",
    "tensor_values",
    "verify",
]

_MODULES = {
    "CheckpointInfo": "_inspect",
    "VerifyReport": "_verify",
    "diff": "_diff",
    "diff_mapped": "_mapped",
    "inspect": "_inspect",
    "load_variables": "_inspect",
    "tensor_values": "_values",
    "verify": "_verify",
}

# Every tool, imported on first use.
__getattr__ = lazy_exports(__name__, _MODULES)
