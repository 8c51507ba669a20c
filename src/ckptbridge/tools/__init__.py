"""File-level tools on checkpoints, no model needed: :func:`inspect`, :func:`load_variables`,
:func:`diff`, :func:`diff_mapped` (through the mapping), :func:`verify` (every checksum),
:func:`tensor_values`. They read through :mod:`ckptbridge.format` and never import TensorFlow::

    from ckptbridge.tools import inspect
    print(inspect("old/model.ckpt-1000"))
"""

from __future__ import annotations

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
