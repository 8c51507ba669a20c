"""Checkpoint files: resolve, open, read and write every TensorFlow checkpoint format.

Reading never imports TensorFlow: the tensor-bundle format (TF1 name-based and TF2 object-based)
and the pre-2017 V1 single-file format (every dtype, partitioned and sharded saves) are decoded
natively::

    from ckptbridge.format import open_checkpoint, BundleWriter

    with open_checkpoint("old/model.ckpt-1000") as ckpt, BundleWriter("new/model.ckpt") as out:
        for key in ckpt.entries:
            out.add(key, ckpt.read(key))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptbridge._optional import lazy_exports
from ckptbridge.format._checkpoint import Checkpoint, open_checkpoint
from ckptbridge.format._resolve import resolve_checkpoint
from ckptbridge.format._state import CheckpointState, read_state_file, write_state_file
from ckptbridge.format._storage import Location, RemotePath, as_location, is_url
from ckptbridge.format._types import (
    ATTRIBUTES_SUFFIX,
    OBJECT_GRAPH_KEY,
    CheckpointKind,
    Entry,
    RawLocation,
    strip_attributes,
)
from ckptbridge.format._writer import BundleWriter

if TYPE_CHECKING:
    from ckptbridge.format._graph import Graph, GraphNode, decode_graph
    from ckptbridge.format._meta import MetaInfo, MetaVariable
    from ckptbridge.format._objgraph import ObjectGraph, ObjNode, ObjVariable, variable_key

__all__ = [
    "ATTRIBUTES_SUFFIX",
    "OBJECT_GRAPH_KEY",
    "BundleWriter",
    "Checkpoint",
    "CheckpointKind",
    "CheckpointState",
    "Entry",
    "Graph",
    "GraphNode",
    "Location",
    "MetaInfo",
    "MetaVariable",
    "ObjNode",
    "ObjVariable",
    "ObjectGraph",
    "RawLocation",
    "RemotePath",
    "as_location",
    "decode_graph",
    "is_url",
    "open_checkpoint",
    "read_state_file",
    "resolve_checkpoint",
    "strip_attributes",
    "variable_key",
    "write_state_file",
]

# Decoders of .meta graphs and TF2 object graphs: imported on first use (PEP 562), so reading a
# TF1 checkpoint without a .meta never loads them.
_LAZY = {
    "Graph": "_graph",
    "GraphNode": "_graph",
    "decode_graph": "_graph",
    "MetaInfo": "_meta",
    "MetaVariable": "_meta",
    "ObjNode": "_objgraph",
    "ObjVariable": "_objgraph",
    "ObjectGraph": "_objgraph",
    "variable_key": "_objgraph",
}


# The graph, .meta and object-graph readers: imported when first used (a bundle read alone
# never needs them).
__getattr__ = lazy_exports(__name__, _LAZY)
