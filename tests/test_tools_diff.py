"""ckptbridge.tools._diff: keys, dtypes, shapes and the largest absolute difference, streamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckptbridge._errors import CheckpointNotFoundError
from ckptbridge.format import BundleWriter
from ckptbridge.tools._diff import diff, max_abs_diff


def _write(prefix: Path, tensors: dict[str, np.ndarray]) -> Path:
    with BundleWriter(prefix) as w:
        for key, value in tensors.items():
            w.add(key, value)
    return prefix


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    a = _write(
        tmp_path / "a" / "ckpt",
        {
            "same": np.arange(6, dtype=np.float32).reshape(2, 3),
            "close": np.array([1.0, 2.0, 3.0], np.float32),
            "reshaped": np.zeros((2, 2), np.float32),
            "retyped": np.zeros(2, np.float32),
            "only_a": np.ones(1, np.int64),
            "text": np.array([b"x", b"y"], dtype=object),
        },
    )
    b = _write(
        tmp_path / "b" / "ckpt",
        {
            "same": np.arange(6, dtype=np.float32).reshape(2, 3),
            "close": np.array([1.0, 2.5, 3.0], np.float32),
            "reshaped": np.zeros(4, np.float32),
            "retyped": np.zeros(2, np.float64),
            "only_b": np.ones(1, np.int64),
            "text": np.array([b"x", b"z"], dtype=object),
        },
    )
    return a, b


def test_diff_lists_keys_shapes_dtypes_and_largest_difference(pair: tuple[Path, Path]) -> None:
    report = diff(*pair)
    assert report.only_in_a == ["only_a"] and report.only_in_b == ["only_b"]
    by_key = {k.key: k for k in report.common}
    assert by_key["same"].same and by_key["same"].max_abs_diff == 0.0
    assert by_key["close"].max_abs_diff == 0.5
    assert by_key["reshaped"].max_abs_diff is None
    assert (by_key["reshaped"].shape_a, by_key["reshaped"].shape_b) == ((2, 2), (4,))
    assert (by_key["retyped"].dtype_a, by_key["retyped"].dtype_b) == ("float32", "float64")
    assert by_key["text"].max_abs_diff == 1.0
    assert [k.key for k in report.mismatched] == ["reshaped", "retyped"]
    assert not report.identical


def test_diff_table_and_json(pair: tuple[Path, Path]) -> None:
    report = diff(*pair)
    text = str(report)
    assert "only in A: only_a" in text
    assert "! close" in text and "max|a-b| = 0.5" in text
    assert text.splitlines()[-1] == "5 common (4 differ), 1 only in A, 1 only in B: different"
    data = report.to_dict()
    assert data["identical"] is False
    assert {c["key"]: c["max_abs_diff"] for c in data["common"]}["close"] == 0.5


def test_diff_of_a_checkpoint_with_itself_is_identical(pair: tuple[Path, Path]) -> None:
    assert diff(pair[0], pair[0]).identical


def test_diff_missing_checkpoint_raises(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        diff(tmp_path / "nothing", tmp_path / "nothing")


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        ([1.0, np.nan], [1.0, np.nan], 0.0),
        ([1.0, np.nan], [1.0, 2.0], float("inf")),
        ([np.inf, -np.inf], [np.inf, -np.inf], 0.0),
        ([np.inf], [-np.inf], float("inf")),
        ([1 + 1j], [1 + 2j], 1.0),
        ([True, False], [True, True], 1.0),
        ([], [], 0.0),
    ],
)
def test_max_abs_diff(x: list[complex], y: list[complex], expected: float) -> None:
    assert max_abs_diff(np.array(x), np.array(y)) == expected


def test_max_abs_diff_streams_in_chunks() -> None:
    a = np.zeros(3_000_000, np.float32)
    b = a.copy()
    b[-1] = 0.25
    assert max_abs_diff(a, b) == 0.25
