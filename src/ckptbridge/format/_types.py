"""Plain value types shared by every checkpoint reader and writer."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ckptbridge.format._storage import Location


class CheckpointKind(str, Enum):
    """What kind of checkpoint a path holds.

    Example::

        >>> CheckpointKind("tf2").name
        'TF2'
    """

    TF1 = "tf1"  # name-based tensor bundle (.index + .data-*), written by tf.compat.v1 Saver
    TF1_V1 = "tf1-v1"  # the pre-2017 single-file format
    TF2 = "tf2"  # object-based bundle: has the _CHECKPOINTABLE_OBJECT_GRAPH entry
    KERAS = "keras"  # a Keras 3 .weights.h5 or .keras file, keyed by the variables' paths
    SAFETENSORS = "safetensors"  # a .safetensors file (ckptbridge's --to safetensors output, ...)


OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
# Single-file formats by name (format._keras and format._safetensors read them; here so that
# resolving a path needs neither reader)
KERAS_SUFFIXES = (".weights.h5", ".keras")
SAFETENSORS_SUFFIX = ".safetensors"
ATTRIBUTES_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"  # TF2: "<object path>" + this = a variable's key


def strip_attributes(key: str) -> str:
    """The object path of a TF2 variable key (other keys unchanged).

    >>> strip_attributes("model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE"), strip_attributes("w")
    ('model/dense/kernel', 'w')
    """
    return key[: -len(ATTRIBUTES_SUFFIX)] if key.endswith(ATTRIBUTES_SUFFIX) else key


@dataclass(frozen=True, slots=True)
class Entry:
    """One tensor stored in a checkpoint (slices of partitioned variables appear once, whole).

    ``nbytes`` is the number of bytes stored on disk (for sliced entries, summed over the slices).

    Example::

        >>> Entry("w", "float32", (2, 3), 24, False).size
        6
    """

    key: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    sliced: bool

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


_ENTRY_SETTERS = tuple(Entry.__dict__[f.name].__set__ for f in fields(Entry))
_new_object = object.__new__
# For loops that inline new_entry: object.__new__ and the setters of key, dtype, shape, nbytes, sliced.
ENTRY_MAKER = (_new_object, _ENTRY_SETTERS)


def new_entry(key: str, dtype: str, shape: tuple[int, ...], nbytes: int, sliced: bool) -> Entry:
    """``Entry(key, dtype, shape, nbytes, sliced)``, made about twice as fast for readers that
    list 100,000s of entries: the slots are filled directly instead of through the frozen
    dataclass's ``object.__setattr__`` per field.

    Example::

        >>> new_entry("w", "float32", (2, 3), 24, False) == Entry("w", "float32", (2, 3), 24, False)
        True
    """
    entry = _new_object(Entry)
    set_key, set_dtype, set_shape, set_nbytes, set_sliced = _ENTRY_SETTERS
    set_key(entry, key)
    set_dtype(entry, dtype)
    set_shape(entry, shape)
    set_nbytes(entry, nbytes)
    set_sliced(entry, sliced)
    return entry


@dataclass(frozen=True)
class RawLocation:
    """Where an entry's raw bytes live in a data shard, for byte-for-byte copies.

    ``crc32c`` is the masked CRC32C exactly as the index stores it.
    """

    path: Location  # a local Path or a RemotePath
    offset: int
    size: int
    crc32c: int
    dtype: str
    shape: tuple[int, ...]

    def check_read(self, crc: int, got: int, name: str) -> None:
        """Raise :class:`CorruptCheckpointError` unless ``got`` bytes read from here, with CRC32C
        ``crc`` (unmasked, as ``google_crc32c`` gives it), are this entry's bytes; ``name`` is the
        entry's key for the message. The one check of every copied or streamed byte range.

        Example::

            loc.check_read(google_crc32c.value(data), len(data), "dense/kernel")
        """
        from ckptbridge._errors import CorruptCheckpointError
        from ckptbridge.format._table import mask_crc

        if got == self.size and mask_crc(crc) == self.crc32c:
            return
        raise CorruptCheckpointError(
            f"{self.path}: bytes {self.offset}..{self.offset + self.size} for {name!r} are "
            f"{'truncated' if got < self.size else 'damaged (CRC32C mismatch)'}. The file is "
            "damaged or incomplete; copy it again from its source"
        )
