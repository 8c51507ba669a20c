"""TensorFlow ``DataType`` enum values <-> ckptbridge dtype names <-> numpy dtypes.

Names are numpy-style (``"float32"``, ``"bfloat16"``, ``"string"``); bfloat16 and the float8 types
come from ``ml_dtypes``::

    >>> name_from_enum(14), numpy_dtype("bfloat16").itemsize
    ('bfloat16', 2)
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


# tensorflow/core/framework/types.proto (DT_* values). Reference types are value + 100.
_ENUM_TO_NAME: dict[int, str] = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    7: "string",
    8: "complex64",
    9: "int64",
    10: "bool",
    14: "bfloat16",
    17: "uint16",
    18: "complex128",
    19: "float16",
    22: "uint32",
    23: "uint64",
    24: "float8_e5m2",
    25: "float8_e4m3fn",
}
_NAME_TO_ENUM: dict[str, int] = {name: value for value, name in _ENUM_TO_NAME.items()}
_NO_NUMPY_FORM = {20: "resource", 21: "variant"}

_ML_DTYPES = {"bfloat16", "float8_e5m2", "float8_e4m3fn"}

# Bytes per element, as numpy_dtype(name).itemsize (a string element is an object pointer): sizes
# are known without importing numpy, which an index listing or a whole-shard copy never needs.
_ITEMSIZE: dict[str, int] = {
    "float32": 4, "float64": 8, "int32": 4, "uint8": 1, "int16": 2, "int8": 1, "string": 8,
    "complex64": 8, "int64": 8, "bool": 1, "bfloat16": 2, "uint16": 2, "complex128": 16,
    "float16": 2, "uint32": 4, "uint64": 8, "float8_e5m2": 1, "float8_e4m3fn": 1,
}  # fmt: skip


class UnknownDtypeError(ValueError):
    """A DataType value ckptbridge cannot represent as a numpy array."""


def name_from_enum(value: int) -> str:
    """Return the dtype name of a TensorFlow ``DataType`` value (reference types allowed).

    Example::

        >>> name_from_enum(101)
        'float32'
    """
    name = _ENUM_TO_NAME.get(value - 100 if value > 100 else value)
    if name is None:
        kind = dtype_label(value, "unknown")
        raise UnknownDtypeError(f"DataType {value} ({kind}) has no numpy equivalent")
    return name


def dtype_label(value: int, unknown: str) -> str:
    """Name any ``DataType`` value: :func:`name_from_enum`, else ``"resource"``/``"variant"``,
    else ``unknown`` (for listings that must show every entry, numpy form or not).

    Example::

        >>> dtype_label(1, "?"), dtype_label(20, "?"), dtype_label(99, "?")
        ('float32', 'resource', '?')
    """
    base = value - 100 if value > 100 else value
    return _ENUM_TO_NAME.get(base) or _NO_NUMPY_FORM.get(base, unknown)


def enum_from_name(name: str) -> int:
    """Return the TensorFlow ``DataType`` value for a dtype name.

    Example::

        >>> enum_from_name("int64")
        9
    """
    value = _NAME_TO_ENUM.get(name)
    if value is None:
        raise UnknownDtypeError(
            f"dtype {name!r} cannot be stored; expected one of {sorted(_NAME_TO_ENUM)}"
        )
    return value


def has_numpy_form(name: str) -> bool:
    """True for the dtype names ckptbridge reads and writes as numpy arrays (not resource,
    variant or unknown ``DataType`` values).

    Example::

        >>> has_numpy_form("bfloat16"), has_numpy_form("variant")
        (True, False)
    """
    return name in _NAME_TO_ENUM


def itemsize(name: str) -> int:
    """Bytes per element of a dtype name (``numpy_dtype(name).itemsize``, without numpy).

    Example::

        >>> itemsize("bfloat16"), itemsize("complex128")
        (2, 16)
    """
    size = _ITEMSIZE.get(name)
    if size is None:
        raise UnknownDtypeError(f"unknown dtype name {name!r}")
    return size


def numpy_dtype(name: str) -> np.dtype[np.generic]:
    """Return the little-endian numpy dtype for a dtype name (``object`` for ``"string"``).

    Example::

        >>> numpy_dtype("float16")
        dtype('float16')
    """
    import numpy as np

    if name == "string":
        return np.dtype(object)
    if name in _ML_DTYPES:
        import ml_dtypes

        found: np.dtype[np.generic] = np.dtype(getattr(ml_dtypes, name))
        return found
    if not has_numpy_form(name):
        raise UnknownDtypeError(f"unknown dtype name {name!r}")
    native: np.dtype[np.generic] = np.dtype(name)
    return native if sys.byteorder == "little" else native.newbyteorder("<")


def name_from_numpy(dtype: np.dtype[np.generic]) -> str:
    """Return the dtype name for a numpy dtype (``object``/``bytes``/``str`` -> ``"string"``).

    Example::

        >>> import numpy as np
        >>> name_from_numpy(np.dtype("int8"))
        'int8'
    """
    if dtype.kind in "OSU":
        return "string"
    name = dtype.name
    if name in _NAME_TO_ENUM:
        return name
    raise UnknownDtypeError(f"numpy dtype {dtype} cannot be stored in a checkpoint")
