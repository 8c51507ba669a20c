"""``open_checkpoint``: one object for every checkpoint kind, lazy and read-only.

::

    with open_checkpoint("old/model.ckpt-1000") as ckpt:
        print(ckpt.kind, len(ckpt.entries))
        kernel = ckpt.read("dense/kernel")
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from ckptbridge._errors import (
    CheckpointNotFoundError,
    CkptBridgeError,
    CorruptCheckpointError,
    EntryNotFoundError,
    UnsupportedCheckpointError,
)
from ckptbridge.format._bundle import BundleReader
from ckptbridge.format._files import META_LIMIT, corrupt_guard, read_regular
from ckptbridge.format._proto import ProtoError
from ckptbridge.format._resolve import resolve_checkpoint
from ckptbridge.format._storage import Location, RemotePath, is_file
from ckptbridge.format._types import (
    ATTRIBUTES_SUFFIX,
    OBJECT_GRAPH_KEY,
    CheckpointKind,
    Entry,
    RawLocation,
)

if TYPE_CHECKING:
    import numpy as np

    from ckptbridge.format._meta import MetaInfo
    from ckptbridge.format._objgraph import ObjectGraph


class _Reader(Protocol):
    entries: dict[str, Entry]

    def read(self, key: str) -> np.ndarray[Any, Any]: ...

    def close(self) -> None: ...


def _single_file_reader(prefix: Location) -> tuple[_Reader, CheckpointKind]:
    """The reader of a checkpoint without ``.index``: Keras weights, safetensors, else V1."""
    from ckptbridge.format._keras import KerasReader, is_keras_file

    if is_keras_file(prefix):
        return KerasReader(prefix), CheckpointKind.KERAS
    from ckptbridge.format._safetensors import SafetensorsReader, is_safetensors_file

    if is_safetensors_file(prefix):
        return SafetensorsReader(prefix), CheckpointKind.SAFETENSORS
    from ckptbridge.format._v1 import V1Reader

    return V1Reader(prefix), CheckpointKind.TF1_V1


class Checkpoint:
    """An opened checkpoint: its kind, entries, tensors, object graph and ``.meta`` facts.

    Use :func:`open_checkpoint` to create one. A context manager; :meth:`close` unmaps the data.
    """

    def __init__(self, prefix: Location, warnings: list[str]) -> None:
        self.prefix = prefix
        self.warnings = list(warnings)
        self._reader: _Reader
        if is_file(prefix.with_name(prefix.name + ".index")):
            self._reader = BundleReader(prefix)
            self.kind = (
                CheckpointKind.TF2
                if OBJECT_GRAPH_KEY in self._reader.entries
                else CheckpointKind.TF1
            )
        else:  # a single file: its reader's module is imported only to read one
            self._reader, self.kind = _single_file_reader(prefix)
        self.entries: dict[str, Entry] = self._reader.entries

    def __repr__(self) -> str:
        return (
            f"Checkpoint({str(self.prefix)!r}, kind={self.kind.value}, entries={len(self.entries)})"
        )

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @cached_property
    def _aliases(self) -> dict[str, str]:
        """TF2: every object-graph path key (``<path>/.ATTRIBUTES/VARIABLE_VALUE``) -> stored key."""
        graph = self.object_graph
        if graph is None:
            return {}
        aliases: dict[str, str] = {}
        for var in graph.variables():
            for path in var.paths:
                aliases.setdefault(path + ATTRIBUTES_SUFFIX, var.key)
        return aliases

    def stored_key(self, key: str) -> str:
        """The key ``key`` is stored under: itself, or for a TF2 checkpoint, the stored key of the
        variable that the object-graph path ``key`` reaches (a variable has one stored key but may
        be reached through several paths, e.g. a Keras 3 kernel through ``model/...`` and
        ``optimizer/_trainable_variables/0``). Unknown keys are returned unchanged.

        Example::

            ckpt.stored_key("model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE")
        """
        if key in self.entries or self.kind is not CheckpointKind.TF2:
            return key
        return self._aliases.get(key, key)

    def _entry(self, key: str) -> Entry:
        entry = self.entries.get(self.stored_key(key))
        if entry is None:
            import difflib

            close = difflib.get_close_matches(key, self.entries, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise EntryNotFoundError(f"{key!r} is not an entry of checkpoint {self.prefix}.{hint}")
        return entry

    def read(self, key: str, *, copy: bool = False) -> np.ndarray[Any, Any]:
        """Return the tensor under ``key`` (or a TF2 path that reaches it, see :meth:`stored_key`).

        By default the array is a read-only *view* of the memory-mapped data shard: no copy, and
        the page cache is shared. A view reads the file each time you touch it, so it is only as
        stable as the file: checkpoints are normally never modified in place, but if another
        process truncates or rewrites the shard while you hold a view, touching the view can
        crash the process (SIGBUS) or show the new bytes. With ``copy=True`` the tensor is read
        with ``pread`` into a new, writable array that owns its memory: a file truncated
        underneath then gives a :class:`~ckptbridge.CorruptCheckpointError`, never a crash.

        CRC32C is verified; partitioned entries are assembled (always a new array); bfloat16 uses
        ``ml_dtypes``; strings come back as an object array of ``bytes``. Raises
        :class:`EntryNotFoundError` (a ``KeyError``) for unknown keys.

        Example::

            ckpt.read("global_step").item()
            kernel = ckpt.read("dense/kernel", copy=True)   # independent of the file
        """
        self._entry(key)
        stored = self.stored_key(key)
        if isinstance(self._reader, BundleReader):
            return self._reader.read(stored, copy=copy)
        array = self._reader.read(stored)  # V1 and Keras readers: copy unless already owned
        if copy and not array.flags.writeable:
            import numpy as np

            return np.array(array)
        return array

    def read_strings(self, key: str) -> list[bytes]:
        """The elements of the string entry ``key``, flat, as ``bytes``: what
        ``read(key).reshape(-1).tolist()`` gives, without making a numpy array (CRC checked).

        Example::

            graph = ckpt.read_strings("_CHECKPOINTABLE_OBJECT_GRAPH")[0]
        """
        entry = self._entry(key)
        if isinstance(self._reader, BundleReader):
            return self._reader.read_strings(self.stored_key(key))
        if entry.dtype != "string":
            raise UnsupportedCheckpointError(
                f"{self.prefix}: entry {key!r} holds {entry.dtype}, not strings; read it with read()"
            )
        return [bytes(v) for v in self.read(key).reshape(-1)]

    def raw_location(self, key: str) -> RawLocation | None:
        """Where the raw bytes of ``key`` are; None for sliced, string and V1 entries.

        Example::

            writer.add_raw("new/name", ckpt.raw_location("old/name"))
        """
        self._entry(key)
        if isinstance(self._reader, BundleReader):
            return self._reader.raw_location(self.stored_key(key))
        return None

    def keras_layout(self, key: str) -> tuple[int, tuple[str, ...], str | None] | None:
        """For a Keras weights file: the save order, HDF5 path and cell class of ``key``; else None.

        Example::

            ckpt.keras_layout("sequential/dense/kernel")   # (0, ('layers/dense/vars/0',), None)
        """
        if self.kind is not CheckpointKind.KERAS:  # the one kind a KerasReader reads
            return None
        from ckptbridge.format._keras import KerasReader

        assert isinstance(self._reader, KerasReader)
        self._entry(key)
        return self._reader.order(key), self._reader.aliases(key), self._reader.layer(key)

    @cached_property
    def object_graph(self) -> ObjectGraph | None:
        """The decoded TF2 object graph, or None for name-based checkpoints."""
        if OBJECT_GRAPH_KEY not in self.entries:
            return None
        entry = self.entries[OBJECT_GRAPH_KEY]
        if entry.dtype != "string" or entry.size != 1:
            raise CorruptCheckpointError(
                f"{self.prefix}: the {OBJECT_GRAPH_KEY} entry holds {entry.dtype} "
                f"{list(entry.shape)}, expected a string scalar (a serialized TrackableObjectGraph). "
                "The checkpoint is damaged; read the tensors by key instead."
            )
        value = self.read_strings(OBJECT_GRAPH_KEY)[0]
        from ckptbridge.format._objgraph import ObjectGraph

        with corrupt_guard(f"{self.prefix}: {OBJECT_GRAPH_KEY}"):
            try:
                return ObjectGraph.decode(value)
            except (ProtoError, ValueError) as exc:
                raise CorruptCheckpointError(
                    f"{self.prefix}: the {OBJECT_GRAPH_KEY} entry does not decode as a "
                    f"TrackableObjectGraph ({exc}). Read the tensors by key instead."
                ) from None

    @cached_property
    def meta(self) -> MetaInfo | None:
        """Facts from ``<prefix>.meta`` when present; a damaged ``.meta`` adds a warning instead."""
        path = self.prefix.with_name(self.prefix.name + ".meta")
        if not path.exists():  # sharded V1 files ("export-00000-of-00001") keep "export.meta"
            path = self.prefix.with_name(
                re.sub(r"-\d{5}-of-\d{5}$", "", self.prefix.name) + ".meta"
            )
        try:
            data = (
                path.store.read_whole(path, META_LIMIT, ".meta file")
                if isinstance(path, RemotePath)
                else read_regular(path, META_LIMIT, ".meta file")
            )
        except CheckpointNotFoundError:
            return None
        except CkptBridgeError as exc:
            self.warnings.append(f"{exc} Ignoring the .meta file.")
            return None
        from ckptbridge.format._meta import MetaInfo

        try:
            return MetaInfo.decode(data)
        except (
            ValueError,
            TypeError,
            IndexError,
            OverflowError,
            MemoryError,
            RecursionError,
        ) as exc:
            self.warnings.append(
                f"{path} could not be decoded as a MetaGraphDef ({exc}); ignoring it"
            )
            return None

    def close(self) -> None:
        """Release file maps and readers; arrays already returned stay valid."""
        self._reader.close()


def open_checkpoint(path: str | os.PathLike[str] | Location) -> Checkpoint:
    """Resolve ``path`` (prefix, directory, suffixed file, V1 file) and open the checkpoint.

    Reads only the index; tensors are read on demand. ``path`` may be a URL (``s3://``,
    ``gs://``, ``http(s)://``, any fsspec protocol): the index is fetched in one request and each
    tensor by its byte range. Raises
    :class:`~ckptbridge.CheckpointNotFoundError` or :class:`~ckptbridge.CorruptCheckpointError`.

    Example::

        with open_checkpoint("train_dir") as ckpt:
            names = list(ckpt.entries)
    """
    prefix, warnings = resolve_checkpoint(path)
    return Checkpoint(prefix, warnings)
