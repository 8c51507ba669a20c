"""transforms.py: every step op, shape inference, and its errors."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from ckptbridge import MappingError, RulesError
from ckptbridge.rules import Add, Cast, Concat, PermuteBlocks, Reshape, Slice, Split, Transpose
from ckptbridge.transforms import apply_steps, infer_shape, is_byte_preserving

A = np.arange(24, dtype=np.float32).reshape(2, 3, 4)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (Transpose(), np.transpose(A)),
        (Transpose(perm=(0, 2, 1)), np.transpose(A, (0, 2, 1))),
        (Reshape(shape=(6, -1)), A.reshape(6, 4)),
        (Split(axis=2, parts=2, index=1), A[:, :, 2:]),
        (Split(axis=-1, sizes=(1, 3), index=1), A[:, :, 1:]),
        (Slice(axis=1, start=1, stop=3), A[:, 1:3]),
        (Slice(axis=2, step=2), A[:, :, ::2]),
        (Cast(dtype="float16"), A.astype(np.float16)),
        (Add(value=1.5), A + 1.5),
        (PermuteBlocks(axis=-1, parts=4, order=(0, 2, 1, 3)), A[:, :, [0, 2, 1, 3]]),
    ],
)
def test_each_op_matches_numpy(step: object, expected: np.ndarray) -> None:
    out = apply_steps([A], [step])  # type: ignore[list-item]
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == expected.dtype
    assert infer_shape([A.shape], [step]) == expected.shape  # type: ignore[list-item]


def test_add_to_a_slice_only_lstm_forget_bias() -> None:
    bias = np.zeros(8, np.float32)  # gates i, f, c, o of 2 units each
    out = apply_steps([bias], [Add(value=1.0, start=2, stop=4)])
    assert out.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert bias.tolist() == [0] * 8  # input untouched


def test_concat_joins_sources_in_order_then_steps_apply() -> None:
    x, h = np.ones((3, 8), np.float32), np.zeros((2, 8), np.float32)
    out = apply_steps([x, h], [Concat(axis=0), Transpose()])
    assert out.shape == (8, 5)
    assert out[0].tolist() == [1, 1, 1, 0, 0]
    assert infer_shape([(3, 8), (2, 8)], [Concat(axis=0), Transpose()]) == (8, 5)


def test_steps_apply_to_each_source_before_concat() -> None:
    assert infer_shape([(4, 3), (4, 5)], [Transpose(), Concat(axis=0)]) == (8, 4)


def test_cast_bfloat16_and_unknown_dtype() -> None:
    assert apply_steps([A], [Cast(dtype="bfloat16")]).dtype == ml_dtypes.bfloat16
    with pytest.raises(RulesError, match=r"^cast: unknown dtype 'float17'"):
        infer_shape([(2,)], [Cast(dtype="float17")])


def test_scalar_add() -> None:
    assert float(apply_steps([np.float32(2.0)], [Add(value=1.0)])) == 3.0


def test_fc_as_conv_layout() -> None:
    assert infer_shape([(7, 7, 512, 4096)], [Reshape(shape=(25088, 4096))]) == (25088, 4096)
    assert is_byte_preserving([Reshape(shape=(25088, 4096))])
    assert is_byte_preserving([])
    assert not is_byte_preserving([Transpose()])


@pytest.mark.parametrize(
    ("shapes", "steps", "error", "message"),
    [
        ([(2, 3)], [Reshape(shape=(4, 2))], MappingError,
         r"^transform step \[0\] \(reshape\): cannot reshape \(2, 3\) \(6 elements\) to \(4, 2\) \(8 elements\)$"),
        ([(2, 3)], [Reshape(shape=(-1, -1))], RulesError, r"at most one -1"),
        ([(2, 3)], [Transpose(perm=(0, 0))], MappingError, r"perm \(0, 0\) is not a permutation"),
        ([(2, 3)], [Split(axis=1, parts=2, index=0)], MappingError, r"\(3\) does not split into 2 equal parts"),
        ([(2, 3)], [Split(axis=1, parts=3, index=3)], MappingError, r"index 3 but only 3 parts"),
        ([(2, 3)], [Split(axis=1, index=0)], RulesError, r"give exactly one of 'parts' or 'sizes'"),
        ([(2, 3)], [Split(axis=1, sizes=(1, 1), index=0)], MappingError, r"sizes \(1, 1\) add up to 2"),
        ([(2, 3)], [Slice(axis=5)], MappingError, r"^transform step \[0\] \(slice\): axis 5 is out of range for a rank-2 array$"),
        ([(2, 3)], [Slice(step=0)], RulesError, r"slice step must not be 0"),
        ([(2, 3)], [PermuteBlocks(parts=2, order=(0, 1))], MappingError, r"not divisible into 2 blocks"),
        ([(2, 4)], [PermuteBlocks(parts=2, order=(0, 0))], RulesError, r"not a permutation of range\(2\)"),
        ([(2, 3), (2, 4)], [Concat(axis=0)], MappingError, r"cannot concatenate shapes"),
        ([(2, 3), (2, 3)], [], MappingError, r"2 source arrays remain after the steps; expected one"),
        ([], [], MappingError, r"no source arrays"),
    ],
)  # fmt: skip
def test_shape_errors(
    shapes: list[tuple[int, ...]], steps: list[object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        infer_shape(shapes, steps)  # type: ignore[arg-type]


def test_apply_validates_before_touching_data() -> None:
    with pytest.raises(MappingError, match=r"cannot reshape"):
        apply_steps([A], [Reshape(shape=(5,))])
