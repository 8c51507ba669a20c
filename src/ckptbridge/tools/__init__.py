"""File-level tools on checkpoints, no model needed: :func:`inspect`, :func:`load_variables`,
:func:`diff`. They read through :mod:`ckptbridge.format` and never import TensorFlow::

    from ckptbridge.tools import inspect
    print(inspect("old/model.ckpt-1000"))
"""

from __future__ import annotations

from ckptbridge.tools._diff import diff
from ckptbridge.tools._inspect import CheckpointInfo, inspect, load_variables

__all__ = ["CheckpointInfo", "diff", "inspect", "load_variables"]
