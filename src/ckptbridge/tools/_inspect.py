"""``ckptbridge.inspect`` and ``ckptbridge.load_variables``: look inside any checkpoint.

Neither imports TensorFlow, whatever the checkpoint format::

    info = ckptbridge.inspect("old/model.ckpt-1000")
    print(info)                 # a readable table
    info.to_json()              # the same facts as JSON
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, TextIO

from ckptbridge._text import fmt_shape, human_bytes, render_table
from ckptbridge.format import OBJECT_GRAPH_KEY, CheckpointKind, Entry, open_checkpoint

if TYPE_CHECKING:
    import numpy as np

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
        entries = [
            {"key": e.key, "dtype": e.dtype, "shape": list(e.shape), "nbytes": e.nbytes, "sliced": e.sliced}
            for e in self.entries
        ]  # fmt: skip
        return self._doc(entries)

    def _doc(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "path": self.path,
            "prefix": self.prefix,
            "kind": self.kind.value,
            "total_bytes": self.total_bytes,
            "entries": entries,
            "objects": self.objects,
            "meta": self.meta,
            "warnings": self.warnings,
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The :meth:`to_dict` facts as a JSON document (``json.dumps(to_dict(), indent=indent)``)."""
        return "".join(self._json_chunks(indent))

    def write_json(self, file: TextIO, indent: int | None = 2) -> None:
        """Write :meth:`to_json` and a newline to ``file`` in pieces, as ``print`` would but
        without building one string (a 200,000-entry checkpoint makes a 37 MB document).

        Example::

            ckptbridge.inspect("m.ckpt").write_json(sys.stdout)
        """
        file.writelines(self._json_chunks(indent))
        file.write("\n")

    def write_text(self, file: TextIO) -> None:
        """Write the table (``str(info)``) and a newline to ``file`` in pieces.

        Example::

            ckptbridge.inspect("m.ckpt").write_text(sys.stdout)
        """
        file.writelines(self._text_chunks())
        file.write("\n")

    def __str__(self) -> str:
        return "".join(self._text_chunks())

    def _text_chunks(self) -> Iterator[str]:
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
        yield "\n".join(lines) + "\n"
        yield from _entry_table(self.entries)
        if self.objects:
            obj_rows = [
                (str(o["key"]), str(o.get("full_name") or "-"), str(o["path"] or "-"),
                 str(o["slot_of"] or ""))
                for o in self.objects
            ]  # fmt: skip
            header = ("object-graph variable", "saved name", "shortest path", "slot of")
            table = render_table(header, obj_rows, rule=True)
            yield "\n\n" + "\n".join(table)

    def _json_chunks(self, indent: int | None) -> Iterator[str]:
        """``json.dumps(self.to_dict(), indent=indent)``, character for character, in pieces: the
        entries laid out here (what follows each key formatted once per distinct dtype, shape,
        size), every other value through :mod:`json`."""
        if not isinstance(indent, int) or not self.entries:
            yield json.dumps(self.to_dict(), indent=indent)
            return
        pad = " " * indent
        for i, (name, value) in enumerate(self._doc([]).items()):
            yield ("{\n" if i == 0 else ",\n") + pad + encode_basestring_ascii(name) + ": "
            if name == "entries":
                yield from _entry_json(self.entries, pad)
            else:  # nested one level deeper: every line break gains one indent
                yield json.dumps(value, indent=indent).replace("\n", "\n" + pad)
        yield "\n}"


_CHUNK = 4096  # entries per piece written


def _signatures(
    entries: list[Entry],
) -> tuple[list[tuple[str, tuple[int, ...], int, bool]], list[int]]:
    """The distinct (dtype, shape, nbytes, sliced) of ``entries`` and each entry's index in them:
    everything an entry shows besides its key depends only on these."""
    ids: dict[tuple[str, tuple[int, ...], int, bool], int] = {}
    order = [ids.setdefault((e.dtype, e.shape, e.nbytes, e.sliced), len(ids)) for e in entries]
    return list(ids), order


def _entry_table(entries: list[Entry]) -> Iterator[str]:
    """An empty line, then ``render_table(("key", "dtype", "shape", "bytes"), rows, rule=True)``
    of the entries, line for line, each line preceded by a line break, in pieces."""
    header = ("key", "dtype", "shape", "bytes")
    sigs, order = _signatures(entries)
    cells = [
        (dtype, fmt_shape(shape), human_bytes(nbytes) + (" sliced" if sliced else ""))
        for dtype, shape, nbytes, sliced in sigs
    ]
    keys = [e.key for e in entries]
    widths = [max(map(len, [header[0], *keys]))]
    widths += [max(map(len, [header[i + 1], *(c[i] for c in cells)])) for i in range(3)]
    yield "\n" + "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in (header, tuple("-" * w for w in widths))
    )
    # A row is its padded key + a tail shared by every entry of the same signature; the bytes
    # cell is never blank, so stripping the tail alone strips the line as render_table does.
    tails = [f"  {d.ljust(widths[1])}  {s.ljust(widths[2])}  {b}".rstrip() for d, s, b in cells]
    width = widths[0]
    for start in range(0, len(keys), _CHUNK):
        rows = zip(keys[start : start + _CHUNK], order[start : start + _CHUNK], strict=True)
        yield "\n" + "\n".join([key.ljust(width) + tails[sig] for key, sig in rows])


def _entry_json(entries: list[Entry], pad: str) -> Iterator[str]:
    """The entries list as ``json.dumps`` with indent ``len(pad)`` writes it two levels deep."""
    item, field_ = pad * 2, pad * 3
    sigs, order = _signatures(entries)
    tails = []
    for dtype, shape, nbytes, sliced in sigs:
        dims = "".join(f"\n{pad * 4}{d}," for d in shape)[:-1] + f"\n{field_}]" if shape else "]"
        tails.append(
            f',\n{field_}"dtype": {encode_basestring_ascii(dtype)},\n{field_}"shape": [{dims},\n'
            f'{field_}"nbytes": {nbytes},\n{field_}"sliced": {"true" if sliced else "false"}\n{item}}}'
        )
    head = f'{item}{{\n{field_}"key": '
    yield "["
    for start in range(0, len(entries), _CHUNK):
        rows = zip(entries[start : start + _CHUNK], order[start : start + _CHUNK], strict=True)
        yield ("\n" if start == 0 else ",\n") + ",\n".join(
            [head + encode_basestring_ascii(e.key) + tails[sig] for e, sig in rows]
        )
    yield f"\n{pad}]"


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
