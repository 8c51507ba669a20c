"""TensorProto values decode exactly as TensorFlow's own protobuf classes encode them."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2

from ckptbridge.format import _v1_proto
from ckptbridge.format._proto import ProtoError, field_bytes, field_fixed32, field_varint
from ckptbridge.format._v1_proto import decode_values

RNG = np.random.default_rng(0)
INT64 = np.concatenate(
    [
        [0, 1, 127, 128, -1, 2**63 - 1, -(2**63)],
        RNG.integers(-(2**62), 2**62, 3000),
        RNG.integers(-300, 300, 3000),
    ]
).astype(np.int64)


@pytest.mark.parametrize("run", [5, 1 << 18])
def test_varint_fields_in_runs(monkeypatch: pytest.MonkeyPatch, run: int) -> None:
    monkeypatch.setattr(_v1_proto, "_RUN", run)
    int32 = INT64.astype(np.int32)
    half = RNG.standard_normal(500).astype(np.float16)
    bf16 = RNG.standard_normal(500).astype(ml_dtypes.bfloat16)
    cases = [
        ("int64", INT64, tensor_pb2.TensorProto(int64_val=INT64.tolist())),
        ("int32", int32, tensor_pb2.TensorProto(int_val=int32.tolist())),
        (
            "int8",
            int32.astype(np.int8),
            tensor_pb2.TensorProto(int_val=int32.astype(np.int8).tolist()),
        ),
        (
            "uint64",
            INT64.view(np.uint64),
            tensor_pb2.TensorProto(uint64_val=INT64.view(np.uint64).tolist()),
        ),
        ("bool", INT64 % 3 == 0, tensor_pb2.TensorProto(bool_val=(INT64 % 3 == 0).tolist())),
        ("float16", half, tensor_pb2.TensorProto(half_val=half.view(np.uint16).tolist())),
        ("bfloat16", bf16, tensor_pb2.TensorProto(half_val=bf16.view(np.uint16).tolist())),
    ]
    for dtype, expected, proto in cases:
        got = decode_values(proto.SerializeToString(), dtype, len(expected))
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), dtype


def test_fixed_width_and_string_fields() -> None:
    c64 = (RNG.standard_normal(6) + 1j * RNG.standard_normal(6)).astype(np.complex64)
    f64 = RNG.standard_normal(7)
    proto = tensor_pb2.TensorProto(
        scomplex_val=c64.view(np.float32).tolist(), double_val=f64.tolist(), string_val=[b"a", b""]
    )
    data = proto.SerializeToString()
    assert decode_values(data, "complex64", 6).tobytes() == c64.tobytes()
    assert decode_values(data, "float64", 7).tobytes() == f64.tobytes()
    assert decode_values(data, "string", 2).tolist() == [b"a", b""]


def test_unpacked_fields_read_as_packed_ones() -> None:
    data = field_varint(10, 5) + field_varint(10, (1 << 64) - 2) + field_fixed32(5, 0x3F800000)
    assert decode_values(data, "int64", 2).tolist() == [5, -2]
    assert decode_values(data, "float32", 1).tolist() == [1.0]


@pytest.mark.parametrize(
    ("data", "dtype", "count", "message"),
    [
        (tensor_pb2.TensorProto(int64_val=[1, 2]), "int64", 3, r"^holds 2 varint values, expected 3$"),
        (tensor_pb2.TensorProto(float_val=[1.0]), "float32", 2, r"^holds 4 value bytes, expected 2 float32 values$"),
        (tensor_pb2.TensorProto(string_val=[b"x"]), "string", 0, r"^holds 1 strings, expected 0$"),
        (tensor_pb2.TensorProto(tensor_content=b"abc"), "int32", 1, r"^tensor_content holds 3 bytes, expected 1 int32 values$"),
    ],
)  # fmt: skip
def test_wrong_value_counts(
    data: tensor_pb2.TensorProto, dtype: str, count: int, message: str
) -> None:
    with pytest.raises(ProtoError, match=message):
        decode_values(data.SerializeToString(), dtype, count)


def test_overlong_varint() -> None:
    with pytest.raises(ProtoError, match=r"^a varint is longer than 10 bytes$"):
        decode_values(field_bytes(10, b"\x80" * 11 + b"\x01"), "int64", 1)
