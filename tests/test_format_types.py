"""Plain value types of the format layer (``format/_types.py``)."""

from __future__ import annotations

import dataclasses

import pytest

from ckptbridge.format._types import Entry, new_entry


def test_new_entry_is_the_frozen_entry_filled_field_by_field() -> None:
    fast = new_entry("w", "float32", (2, 3), 24, True)
    assert fast == Entry("w", "float32", (2, 3), 24, True) and type(fast) is Entry
    assert hash(fast) == hash(Entry("w", "float32", (2, 3), 24, True)) and fast.size == 6
    assert [f.name for f in dataclasses.fields(Entry)] == [
        "key",
        "dtype",
        "shape",
        "nbytes",
        "sliced",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.key = "v"  # type: ignore[misc]
