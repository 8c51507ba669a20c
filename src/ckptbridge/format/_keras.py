"""Keras 3 weight files as checkpoints: ``.weights.h5`` (``model.save_weights``) and ``.keras``.

Read through ``h5py`` and ``zipfile``; Keras itself is never imported. Keras stores each layer's
variables under ``layers/<group>/vars/<i>`` with the layer's name in the ``vars`` group's ``name``
attribute, but not the variables' own names; entries are named the way Keras names them
(``variable.path``: ``sequential/fc1/kernel``) from the layer kind (the group name,
``dense``/``dense_1`` -> ``Dense``) and the number of variables it stored, refined by the layer
configs of a ``.keras`` file (``use_bias``, ``center``, ``scale``). A variable whose name cannot be
told is named by its index (``sequential/my_layer/0``); the group path is always an alias
(``layers/dense/vars/0``). Functional models do not prefix their layers' paths with their own name;
Sequential and subclassed models do. Optimizer state keeps its file path (``optimizer/vars/2``),
except ``<optimizer>/iteration`` and ``<optimizer>/learning_rate``::

    reader = KerasReader(Path("model.weights.h5"))
    reader.read("sequential/fc1/kernel")
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ckptbridge._errors import (
    CkptBridgeError,
    CorruptCheckpointError,
    UnsupportedCheckpointError,
)
from ckptbridge._optional import require
from ckptbridge.format._storage import Location, RemotePath
from ckptbridge.format._types import KERAS_SUFFIXES, Entry

if TYPE_CHECKING:
    import numpy as np

__all__ = ["KERAS_SUFFIXES", "KerasReader", "is_keras_file"]

_H5_MAGIC = b"\x89HDF\r\n\x1a\n"
_WEIGHTS_IN_ZIP = "model.weights.h5"
_COUNTER = re.compile(r"_\d+$")
_BIAS_LAST = ("kernel", "bias")
# snake_case layer kind (the group name without its _N counter) -> variable names, in save order
_NAMES: dict[str, tuple[str, ...]] = {
    **{k: _BIAS_LAST for k in ("dense", "einsum_dense", "conv1d", "conv2d", "conv3d")},
    **{f"conv{d}d_transpose": _BIAS_LAST for d in (1, 2, 3)},
    "depthwise_conv1d": ("depthwise_kernel", "bias"),
    "depthwise_conv2d": ("depthwise_kernel", "bias"),
    "separable_conv1d": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "separable_conv2d": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "embedding": ("embeddings",),
    "simple_rnn_cell": ("kernel", "recurrent_kernel", "bias"),
    "lstm_cell": ("kernel", "recurrent_kernel", "bias"),
    "gru_cell": ("kernel", "recurrent_kernel", "bias"),
    "prelu": ("alpha",),
    "normalization": ("mean", "variance", "count"),
    "rms_normalization": ("scale",),
}
_CLASSES = {"lstm_cell": "LSTMCell", "gru_cell": "GRUCell", "simple_rnn_cell": "SimpleRNNCell"}


def is_keras_file(path: Location) -> bool:
    """True for a file named ``*.weights.h5`` or ``*.keras``, or that starts like HDF5.

    >>> from pathlib import Path
    >>> is_keras_file(Path("model.weights.h5"))
    True
    """
    if path.name.endswith(KERAS_SUFFIXES):
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(8) == _H5_MAGIC
    except OSError:
        return False


# What h5py raises for a damaged file, depending on the structure that is damaged.
_H5_DAMAGE = (OSError, RuntimeError, KeyError, ValueError, TypeError)


@dataclass(frozen=True)
class _Var:
    key: str
    h5_path: str
    layer: str | None
    order: int


class KerasReader:
    """Lists and reads the variables of a ``.weights.h5`` or ``.keras`` file (module docstring)."""

    def __init__(self, path: Location) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._handle: Any = None
        self._remote: Any = None  # a remote file: ranged reads through a seekable file object
        configs: dict[str, dict[str, Any]] = {}
        h5py = require("h5py", f"{path}: reading a Keras weights file")
        try:
            source: Any = path
            if isinstance(path, RemotePath):
                source = self._remote = path.open("rb")
            if zipfile.is_zipfile(source):
                self._zip = zipfile.ZipFile(source)
                if _WEIGHTS_IN_ZIP not in self._zip.namelist():
                    raise CorruptCheckpointError(
                        f"{path} is a zip archive without {_WEIGHTS_IN_ZIP}: expected a Keras 3 "
                        ".keras file (model.save('m.keras')). Sharded weights are not supported"
                    )
                configs = _layer_configs(self._zip)
                self._handle = self._zip.open(_WEIGHTS_IN_ZIP)
                self._file = h5py.File(self._handle, "r")
            else:
                self._file = h5py.File(source, "r")
        except (OSError, zipfile.BadZipFile) as exc:
            self.close()
            raise CorruptCheckpointError(
                f"{path} cannot be read as a Keras weights file ({exc}). Expected a Keras 3 "
                "'.weights.h5' (model.save_weights) or '.keras' file (model.save)"
            ) from None
        self._vars: dict[str, _Var] = {}
        self.entries: dict[str, Entry] = {}
        try:
            self._index(h5py, configs)
        except CkptBridgeError:
            self.close()
            raise
        except _H5_DAMAGE as exc:  # h5py's errors for a damaged structure: several builtins
            self.close()
            raise CorruptCheckpointError(
                f"{path}: the HDF5 structure of this Keras weights file is damaged ({exc}). "
                "The file is damaged or incomplete; save it again"
            ) from None

    def _index(self, h5py: Any, configs: dict[str, dict[str, Any]]) -> None:
        import numpy as np

        found: list[tuple[float, str, str, str | None]] = []
        _walk(self._file, "", [], True, configs, found)
        for rank, (_, key, h5_path, layer) in enumerate(sorted(found)):
            if key in self._vars:  # two layers with one name: keep both, the second by its path
                key = h5_path
            dataset = self._file[h5_path]
            if not isinstance(dataset, h5py.Dataset):
                raise ValueError(f"{h5_path!r} is a group, expected a dataset")
            dtype = np.dtype(dataset.dtype)
            shape = tuple(int(d) for d in dataset.shape)
            self._vars[key] = _Var(key, h5_path, layer, rank)
            self.entries[key] = Entry(
                key, _label(dtype, self.path, h5_path), shape,
                math.prod(shape) * dtype.itemsize, False,
            )  # fmt: skip

    def order(self, key: str) -> int:
        """The save order of ``key`` (the order Keras wrote the variables in)."""
        return self._vars[key].order

    def aliases(self, key: str) -> tuple[str, ...]:
        """The HDF5 path of ``key`` (``layers/dense/vars/0``)."""
        return (self._vars[key].h5_path,)

    def layer(self, key: str) -> str | None:
        """The Keras class of the cell that owns ``key`` when it matters (``LSTMCell``)."""
        return self._vars[key].layer

    def read(self, key: str) -> np.ndarray[Any, Any]:
        """Return the variable ``key`` as a numpy array."""
        import numpy as np

        h5_path = self._vars[key].h5_path
        try:
            return np.asarray(self._file[h5_path][()])
        except _H5_DAMAGE as exc:
            raise CorruptCheckpointError(
                f"{self.path}: dataset {h5_path!r} (variable {key!r}) cannot be read ({exc}). "
                "The file is damaged or incomplete; save it again"
            ) from None

    def close(self) -> None:
        """Close the HDF5 file (and the archive of a ``.keras`` file)."""
        file = self.__dict__.pop("_file", None)
        if file is not None:
            file.close()
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._remote is not None:
            self._remote.close()
            self._remote = None


def _label(dtype: np.dtype[Any], path: Location, h5_path: str) -> str:
    from ckptbridge.format._dtypes import UnknownDtypeError, name_from_numpy

    try:
        return name_from_numpy(dtype)
    except UnknownDtypeError:
        raise UnsupportedCheckpointError(
            f"{path}: dataset {h5_path!r} has dtype {dtype}, which ckptbridge does not read"
        ) from None


def _layer_configs(archive: zipfile.ZipFile) -> dict[str, dict[str, Any]]:
    """Layer name -> its config, from a .keras file's config.json (empty when unreadable)."""
    try:
        config = json.loads(archive.read("config.json"))
    except (KeyError, ValueError):
        return {}
    out: dict[str, dict[str, Any]] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            cfg = node.get("config")
            if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
                out.setdefault(cfg["name"], cfg)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(config)
    return out


def _walk(
    group: Any,
    h5_path: str,
    names: list[str],
    top: bool,
    configs: dict[str, dict[str, Any]],
    found: list[tuple[float, str, str, str | None]],
) -> None:
    """Collect (header address, key, dataset path, cell class) of every variable under ``group``."""
    import h5py

    vars_group = group.get("vars") if isinstance(group, h5py.Group) else None
    own = names
    if isinstance(vars_group, h5py.Group):
        layer_name = str(vars_group.attrs.get("name", "")) or h5_path.rsplit("/", 1)[-1]
        if not _is_functional(group) and layer_name:
            own = [*names, layer_name]
        kind = _kind(h5_path, layer_name)
        datasets = sorted((k for k in vars_group if k.isdigit()), key=int)
        var_names = _var_names(kind, len(datasets), configs.get(layer_name, {}))
        for i, index in enumerate(datasets):
            dataset = vars_group[index]
            where = f"{h5_path}/vars/{index}" if h5_path else f"vars/{index}"
            if h5_path == "optimizer":
                key = {0: f"{layer_name}/iteration", 1: f"{layer_name}/learning_rate"}.get(i, where)
            else:
                key = "/".join([*own, (var_names[i] if var_names else None) or index])
            found.append((_offset(dataset), key, where, _CLASSES.get(kind)))
    for child in group:
        if child == "vars" or not isinstance(group[child], h5py.Group):
            continue
        _walk(group[child], f"{h5_path}/{child}" if h5_path else child, own, False, configs, found)


def _kind(h5_path: str, layer_name: str) -> str:
    """The layer kind of a group: its name under ``layers/``; for an attribute (``cell``,
    ``_query_dense``), the layer's own name or a telling part of the attribute name."""
    parts = h5_path.split("/")
    kind = _COUNTER.sub("", parts[-1])
    if len(parts) < 2 or parts[-2] == "layers" or kind in _NAMES:
        return kind
    for candidate in (_COUNTER.sub("", layer_name), kind.strip("_")):
        if candidate in _NAMES or candidate.endswith("normalization"):
            return candidate
    if "dense" in kind:
        return "dense"
    return "layer_normalization" if "norm" in kind else kind


def _is_functional(group: Any) -> bool:
    layers = group.get("layers")
    return layers is not None and any(k.startswith("input_layer") for k in layers)


def _var_names(kind: str, count: int, config: dict[str, Any]) -> tuple[str | None, ...]:
    """The variable names of a layer of ``kind`` that saved ``count`` variables; None (or ``()``)
    where the name cannot be told: the variable is then named by its index."""
    if kind in ("batch_normalization", "layer_normalization", "group_normalization"):
        moving = ("moving_mean", "moving_variance") if kind == "batch_normalization" else ()
        n_trainable = count - len(moving)
        if n_trainable not in (0, 1, 2):
            return ()
        flags = [("gamma", config.get("scale")), ("beta", config.get("center"))]
        known: tuple[str | None, ...] = tuple(n for n, on in flags if on is not False)
        if n_trainable == 1 and len(known) != 1:  # scale or center off: the config says which
            known = (None,)
        return (*known[:n_trainable], *moving) if len(known) >= n_trainable else ()
    full = _NAMES.get(kind, ())
    if len(full) == count:
        return full
    if full and full[-1] == "bias" and len(full) - 1 == count:  # use_bias=False
        return full[:-1]
    return ()


def _offset(dataset: Any) -> float:
    """Where the dataset's object header is in the file: HDF5 allocates headers in creation
    order, so this is the order Keras wrote the variables in (data addresses are not: small
    datasets share an aggregated block)."""
    import h5py

    try:
        addr = getattr(h5py.h5o.get_info(dataset.id), "addr", None)
    except Exception:  # an HDF5 build without addresses: the data offset, else unknown
        addr = None
    if addr is None:
        try:
            addr = dataset.id.get_offset()
        except Exception:
            addr = None
    return math.inf if addr is None else float(addr)
