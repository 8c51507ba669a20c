"""Wire-format helpers, bundle protos, the slice-key encoding, string tensors and dtype names."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ckptbridge.format._bundle_proto import (
    EntryProto,
    _signed_increasing,
    decode_entries,
    decode_entry,
    decode_header,
    decode_record,
    encode_entry,
    encode_header,
    encode_slice_key,
)
from ckptbridge.format._dtypes import UnknownDtypeError, enum_from_name, name_from_enum, numpy_dtype
from ckptbridge.format._proto import ProtoError, encode_varint, iter_fields, read_varint
from ckptbridge.format._strings import decode_strings, encode_strings


@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip(value: int) -> None:
    assert read_varint(encode_varint(value), 0) == (value, len(encode_varint(value)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80" * 11, r"longer than 10 bytes"),
        (b"\x80", r"past the end"),
        (b"\x0a\x05ab", r"claims 5 bytes"),
        (b"\x0b", r"wire type 3"),
    ],
)
def test_malformed_wire_data(data: bytes, message: str) -> None:
    with pytest.raises(ProtoError, match=message):
        list(iter_fields(data))


def test_entry_and_header_round_trip() -> None:
    entry = EntryProto(
        dtype=14, shape=(3, 0, 2), shard_id=2, offset=1 << 40, size=0, crc32c=0xFFFFFFFF
    )
    assert decode_entry(encode_entry(entry)) == entry
    header = decode_header(encode_header(3))
    assert (header.num_shards, header.endianness, header.producer) == (3, 0, 1)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=2, max_size=30))
def test_signed_encoding_preserves_order(values: list[int]) -> None:
    assert sorted(values, key=_signed_increasing) == sorted(values)


def test_signed_encoding_known_bytes() -> None:
    assert [_signed_increasing(v) for v in (0, -1, 63, 64, -65)] == [
        b"\x80",
        b"\x7f",
        b"\xbf",
        b"\xc0\x40",
        b"\x3f\xbf",
    ]
    assert len(_signed_increasing(2**63 - 1)) == 10


def test_slice_key_layout() -> None:
    assert encode_slice_key("a\x00b", [(64, None)]) == b"\x00a\x00\xffb\x00\x01\x01\x01\xc0\x40\x7f"


def test_string_tensor_layout() -> None:
    data, _ = encode_strings([b"ab", "é"])
    assert data[:2] == b"\x02\x02" and data[6:] == b"ab\xc3\xa9"
    values, _ = decode_strings(np.frombuffer(data, np.uint8), 2)
    assert values.tolist() == [b"ab", "é".encode()]
    damaged = bytearray(data)
    damaged[0] = 3
    with pytest.raises(ValueError, match=r"checksum of the string lengths"):
        decode_strings(np.frombuffer(bytes(damaged), np.uint8), 2)


def test_dtype_names() -> None:
    assert name_from_enum(101) == "float32" and name_from_enum(19) == "float16"
    assert enum_from_name("bfloat16") == 14
    assert numpy_dtype("bfloat16").itemsize == 2 and numpy_dtype("string") == np.dtype(object)
    with pytest.raises(UnknownDtypeError, match=r"DataType 21 \(variant\) has no numpy equivalent"):
        name_from_enum(21)


@given(
    dtype=st.integers(0, 30),
    shape=st.lists(st.integers(0, 1 << 40), max_size=4),
    shard=st.integers(0, 300),
    offset=st.integers(0, (1 << 63) - 1),
    size=st.integers(0, (1 << 63) - 1),
    crc=st.integers(0, (1 << 32) - 1),
    flips=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), max_size=3),
)
def test_decode_entries_fast_path_equals_decode_entry(
    dtype: int,
    shape: list[int],
    shard: int,
    offset: int,
    size: int,
    crc: int,
    flips: list[tuple[int, int]],
) -> None:
    data = bytearray(encode_entry(EntryProto(dtype, tuple(shape), shard, offset, size, crc)))
    for position, mask in flips:  # damaged bytes: the same result or the same error
        if position < len(data):
            data[position] ^= mask
    try:
        expected = decode_entry(bytes(data))
    except ProtoError:
        with pytest.raises(ProtoError):
            decode_entries([bytes(data)])
        with pytest.raises(ProtoError):
            decode_record(bytes(data))
        return
    assert decode_entries([bytes(data)]) == [expected]
    assert decode_record(bytes(data)) == expected
