"""``ckptbridge.inspect`` and ``ckptbridge.load_variables``: look inside any checkpoint.

Neither imports TensorFlow, whatever the checkpoint format::

    info = ckptbridge.inspect("old/model.ckpt-1000")
    print(info)                 # a readable table
    info.to_json()              # the same facts as JSON
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ckptbridge._text import fmt_shape, human_bytes, render_table
from ckptbridge.format import OBJECT_GRAPH_KEY, CheckpointKind, Entry, open_checkpoint

__all__ = ["CheckpointInfo", "inspect", "load_variables"]


@dataclass
class CheckpointInfo:
    """What a checkpoint holds: kind, entries, object-graph variables, ``.meta`` facts, warnings."""

    path: str
    prefix: str
    kind: CheckpointKind
    entries: list[Entry]
    objects: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Bytes of tensor data stored."""
        return sum(e.nbytes for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict.

        Example::

            ckptbridge.inspect("m.ckpt").to_dict()["kind"]   # 'tf1'
        """
        return {
            "path": self.path,
            "prefix": self.prefix,
            "kind": self.kind.value,
            "total_bytes": self.total_bytes,
            "entries": [
                {
                    "key": e.key,
                    "dtype": e.dtype,
                    "shape": list(e.shape),
                    "nbytes": e.nbytes,
                    "sliced": e.sliced,
                }
                for e in self.entries
            ],
            "objects": self.objects,
            "meta": self.meta,
            "warnings": self.warnings,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The :meth:`to_dict` facts as a JSON document."""
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self) -> str:
        lines = [
            f"checkpoint  {self.prefix}",
            f"kind        {self.kind.value}",
            f"entries     {len(self.entries)} ({human_bytes(self.total_bytes)})",
        ]
        if self.meta is not None:
            version = self.meta["tf_version"] or "unknown"
            lines.append(
                f"meta        TensorFlow {version}, {len(self.meta['variables'])} graph variables"
            )
        lines += [f"warning     {w}" for w in self.warnings]
        rows = [
            (
                e.key,
                e.dtype,
                fmt_shape(e.shape),
                human_bytes(e.nbytes) + (" sliced" if e.sliced else ""),
            )
            for e in self.entries
        ]
        lines += ["", *render_table(("key", "dtype", "shape", "bytes"), rows, rule=True)]
        if self.objects:
            obj_rows = [
                (str(o["key"]), str(o.get("full_name") or "-"), str(o["path"] or "-"),
                 str(o["slot_of"] or ""))
                for o in self.objects
            ]  # fmt: skip
            header = ("object-graph variable", "saved name", "shortest path", "slot of")
            lines += ["", *render_table(header, obj_rows, rule=True)]
        return "\n".join(lines)


def inspect(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Describe the checkpoint at ``path`` without reading its tensors.

    Example::

        info = ckptbridge.inspect("train_dir")
        [e.key for e in info.entries]
    """
    with open_checkpoint(path) as ckpt:
        objects = []
        graph = ckpt.object_graph
        if graph is not None:
            for var in graph.variables():
                objects.append(
                    {"key": var.key, "full_name": var.full_name or None,
                     "path": var.paths[0] if var.paths else None, "paths": list(var.paths),
                     "slot_of": var.slot_of, "slot_name": var.slot_name, "optimizer_path": var.optimizer_path}
                )  # fmt: skip
        meta = None
        if ckpt.meta is not None:
            meta = {
                "tf_version": ckpt.meta.tf_version,
                "variables": [
                    {"name": v.name, "dtype": v.dtype, "shape": list(v.shape), "trainable": v.trainable,
                     "save_slice": None if v.save_slice is None else [v.save_slice[0], *map(list, v.save_slice[1:])]}
                    for v in ckpt.meta.variables
                ],
                "collections": {k: len(v) for k, v in sorted(ckpt.meta.collections.items())},
            }  # fmt: skip
        return CheckpointInfo(
            path=os.fspath(path), prefix=str(ckpt.prefix), kind=ckpt.kind,
            entries=list(ckpt.entries.values()), objects=objects, meta=meta, warnings=list(ckpt.warnings),
        )  # fmt: skip


_NO_NUMPY_FORM = ("resource", "variant")


def load_variables(
    path: str | os.PathLike[str], *, copy: bool = True
) -> dict[str, np.ndarray[Any, Any]]:
    """Read every entry except the object graph into numpy arrays.

    With ``copy=True`` (the default) each array is independent and writable, read with ``pread``:
    a file truncated meanwhile gives a ckptbridge error. ``copy=False`` returns read-only views of
    the memory-mapped shards (no copy, faster): only for files nobody modifies while you hold the
    views (see :meth:`ckptbridge.format.Checkpoint.read`). Entries with no numpy form
    (``variant``/``resource`` dtypes, e.g. saved iterator state) are left out; :func:`inspect`
    lists them.

    Example::

        weights = ckptbridge.load_variables("old/model.ckpt-1000")
        weights["dense/kernel"].shape
    """
    with open_checkpoint(path) as ckpt:
        return {
            key: ckpt.read(key, copy=copy)
            for key, entry in ckpt.entries.items()
            if key != OBJECT_GRAPH_KEY and not entry.dtype.startswith(_NO_NUMPY_FORM)
        }
