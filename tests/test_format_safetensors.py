"""safetensors files read natively (format/_safetensors.py): files written by the safetensors library
and by ``--to safetensors``; every header inconsistency is one CorruptCheckpointError."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import ckptbridge
from ckptbridge import CorruptCheckpointError
from ckptbridge.cli import main
from ckptbridge.format import BundleWriter, open_checkpoint

TENSORS = {
    "dense/kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
    "dense/bias": np.array([0.5, -1.0, 2.0, 3.0], np.float64),
    "emb": np.arange(6, dtype=np.float16).reshape(2, 3),
    "bf": np.array([1.5, -2.0], ml_dtypes.bfloat16),
    "ids": np.array([1, 2, 3], np.int64),
    "u": np.array([7, 255], np.uint8),
    "mask": np.array([True, False, True]),
    "empty": np.zeros((0, 3), np.int32),
}


@pytest.fixture(scope="module")
def library_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("st") / "lib.safetensors"
    save_file(TENSORS, str(path), metadata={"source": "test"})
    return path


def test_a_library_file_reads_back_exactly(library_file: Path) -> None:
    with open_checkpoint(library_file) as ckpt:
        assert ckpt.kind.value == "safetensors"
        assert sorted(ckpt.entries) == sorted(TENSORS)
        assert ckpt.entries["dense/kernel"].dtype == "float32"
        for key, want in TENSORS.items():
            got = ckpt.read(key)
            assert (got.dtype, got.shape) == (want.dtype, want.shape), key
            np.testing.assert_array_equal(got, want)
    values = ckptbridge.load_variables(library_file)
    np.testing.assert_array_equal(values["bf"], TENSORS["bf"])
    assert ckptbridge.inspect(library_file.parent).kind.value == "safetensors"  # a directory
    assert ckptbridge.verify(library_file).ok


def test_a_file_without_the_suffix_is_recognised(library_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "weights.bin"
    other.write_bytes(library_file.read_bytes())
    with open_checkpoint(other) as ckpt:
        assert ckpt.kind.value == "safetensors"


def test_our_output_reads_back_diffs_through_the_mapping_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "run" / "model.ckpt-4"
    with BundleWriter(src) as writer:
        writer.add("fc/weights", TENSORS["dense/kernel"])
        writer.add("fc/biases", np.ones(4, np.float32))
        writer.add("global_step", np.int64(4))
    out = tmp_path / "out"
    assert main(["convert", str(src), "--target", str(src), "--to", "safetensors",
                 "--out", str(out), "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    converted = out / "model.ckpt-4.safetensors"
    values = ckptbridge.load_variables(converted)
    assert sorted(values) == ["fc/biases", "fc/weights"]
    np.testing.assert_array_equal(values["fc/weights"], TENSORS["dense/kernel"])
    assert main(["diff", str(src), str(converted), "--mapped"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith(": equal")
    assert (
        main(["diff", str(src), str(out), "--exit-code"]) == 1
    )  # key level: global_step is only in A
    capsys.readouterr()
    assert main(["verify", str(converted)]) == 0
    assert capsys.readouterr().out.endswith(": 2 entries, 64 B checked: ok\n")


def test_torch_reads_our_output_when_installed(tmp_path: Path) -> None:
    """safetensors' torch loader reads ``--to safetensors`` output (skipped without torch)."""
    torch_loader = pytest.importorskip("safetensors.torch")
    src = tmp_path / "model.ckpt-1"
    with BundleWriter(src) as writer:
        for key in ("dense/kernel", "dense/bias", "emb", "ids", "u"):
            writer.add(key, TENSORS[key])
    report = ckptbridge.convert(src, tmp_path / "out", target=src, to="safetensors")
    assert report.ok, str(report)
    tensors = torch_loader.load_file(str(tmp_path / "out" / "model.ckpt-1.safetensors"))
    assert sorted(tensors) == ["dense/bias", "dense/kernel", "emb", "ids", "u"]
    for key, value in tensors.items():
        np.testing.assert_array_equal(value.numpy(), TENSORS[key])
        assert value.numpy().dtype == TENSORS[key].dtype


def _file(header: object, data: bytes = b"", length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


_F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x01\x00", r"is 2 bytes, shorter than the 8-byte header length"),
        (_file({}, length=1 << 40), r"says its header is 1099511627776 bytes, but the file "),
        (_file(b"{not json"), r"has a header that is not JSON \(.*\)"),
        (_file([1, 2]), r"has a header that is not a JSON object"),
        (_file({"__metadata__": {"a": 1}}), r"has __metadata__ that is not an object of strings"),
        (
            _file({"w": {**_F32, "dtype": "F7"}}, b"\0" * 8),
            r"gives tensor 'w' the unknown dtype 'F7'",
        ),
        (_file({"w": {**_F32, "shape": [-2]}}, b"\0" * 8), r"gives tensor 'w' the shape \[-2\]"),
        (_file({"w": {**_F32, "data_offsets": [0]}}), r"gives tensor 'w' the data_offsets \[0\]"),
        (
            _file({"w": {**_F32, "data_offsets": [0, 4]}}, b"\0" * 4),
            r"gives tensor 'w' \(F32 \(2,\), 8 bytes\) the data bytes 0\.\.4",
        ),
        (_file({"w": _F32}, b"\0" * 4), r"places tensor 'w' at data bytes 0\.\.8, past the end"),
        (
            _file({"w": _F32, "v": {**_F32, "data_offsets": [4, 12]}}, b"\0" * 12),
            r"has tensor 'v' at data bytes 4\.\.12, which overlaps the tensor before it",
        ),
        (
            _file({"w": {**_F32, "data_offsets": [4, 12]}}, b"\0" * 12),
            r"has tensor 'w' at data bytes 4\.\.12, which leaves a gap",
        ),
        (_file({"w": _F32}, b"\0" * 9), r"has tensors covering 8 data bytes, but 9 follow the "),
    ],
)
def test_a_damaged_header_is_one_error(content: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpointError, match=rf"^{tmp_path}/bad\.safetensors {message}"):
        open_checkpoint(path)
    report = ckptbridge.verify(path)
    assert not report.ok and report.damaged[0].key is None


def test_bool_bytes_other_than_0_and_1_are_damage(tmp_path: Path) -> None:
    path = tmp_path / "b.safetensors"
    path.write_bytes(
        _file({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x07")
    )
    with (
        open_checkpoint(path) as ckpt,
        pytest.raises(
            CorruptCheckpointError,
            match=r"^.*b\.safetensors: tensor 'm' at bytes 70\.\.72 holds bool",
        ),
    ):
        ckpt.read("m")
    assert main(["verify", str(path)]) == 2
