"""Dtype names <-> TensorFlow enums <-> numpy dtypes; sizes known without numpy."""

from __future__ import annotations

import pytest

from ckptbridge.format._dtypes import (
    _NAME_TO_ENUM,
    UnknownDtypeError,
    itemsize,
    name_from_enum,
    numpy_dtype,
)


@pytest.mark.parametrize("name", sorted(_NAME_TO_ENUM))
def test_itemsize_is_numpys(name: str) -> None:
    assert itemsize(name) == numpy_dtype(name).itemsize
    assert name_from_enum(_NAME_TO_ENUM[name]) == name


def test_itemsize_of_an_unknown_name() -> None:
    with pytest.raises(UnknownDtypeError, match=r"^unknown dtype name 'resource'$"):
        itemsize("resource")
