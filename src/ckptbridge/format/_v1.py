"""The pre-2017 V1 single-file checkpoint format, read through TensorFlow's own reader.

TensorFlow is imported only here, and only when a V1 file is opened. The file is first checked for
the table magic so that garbage fails fast, without the TensorFlow import::

    reader = V1Reader(Path("model.ckpt"))
    reader.read("Variable")
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ckptbridge._errors import CorruptCheckpointError
from ckptbridge._optional import import_tensorflow
from ckptbridge.format._dtypes import UnknownDtypeError, numpy_dtype
from ckptbridge.format._resolve import has_table_magic, not_a_checkpoint_hint
from ckptbridge.format._types import Entry

_FIX = "Expected a TensorFlow V1 checkpoint (a LevelDB table of tensor slices)."


class V1Reader:
    """Lists and reads a V1 checkpoint file with ``tf.compat.v1.train.NewCheckpointReader``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not has_table_magic(path):
            raise CorruptCheckpointError(
                f"{path} is not a checkpoint: there is no {path.name}.index beside it and the file "
                f"does not end with the table magic number. {not_a_checkpoint_hint(path)}"
            )
        tf = import_tensorflow()
        try:
            self._reader = tf.compat.v1.train.NewCheckpointReader(str(path))
            shapes = self._reader.get_variable_to_shape_map()
            dtypes = self._reader.get_variable_to_dtype_map()
        except (tf.errors.OpError, ValueError, RuntimeError) as exc:
            message = getattr(exc, "message", str(exc)).splitlines()[0]
            raise CorruptCheckpointError(
                f"{path}: TensorFlow cannot read this V1 checkpoint ({message}). {_FIX}"
            ) from None
        self.entries: dict[str, Entry] = {}
        for key in sorted(shapes):
            dtype = dtypes[key].name if dtypes[key].name != "half" else "float16"
            shape = tuple(int(d) for d in shapes[key])
            try:
                itemsize = 0 if dtype == "string" else numpy_dtype(dtype).itemsize
            except UnknownDtypeError:
                itemsize = 0
            self.entries[key] = Entry(key, dtype, shape, math.prod(shape) * itemsize, False)

    def read(self, key: str) -> np.ndarray[Any, Any]:
        """Return the tensor under ``key`` as numpy (strings as an object array of bytes)."""
        tf = import_tensorflow()
        try:
            value = self._reader.get_tensor(key)
        except (tf.errors.OpError, ValueError, RuntimeError) as exc:
            message = getattr(exc, "message", str(exc)).splitlines()[0]
            raise CorruptCheckpointError(
                f"{self.path}: entry {key!r} cannot be read ({message})"
            ) from None
        if self.entries[key].dtype == "string":
            out = np.empty(self.entries[key].shape, dtype=object)
            out[...] = value
            return out
        return np.asarray(value)

    def close(self) -> None:
        """Release the TensorFlow reader."""
        self.__dict__.pop("_reader", None)
