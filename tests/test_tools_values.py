"""``ckptbridge inspect PATH --tensor KEY`` / ``--all-tensors``: values, statistics, bounded JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ckptbridge.cli import main
from ckptbridge.format import BundleWriter


@pytest.fixture()
def prefix(tmp_path: Path) -> Path:
    prefix = tmp_path / "m.ckpt"
    with BundleWriter(prefix) as writer:
        writer.add("w", np.array([[1.0, 2.0], [np.nan, np.inf]], np.float32))
        writer.add("big", np.arange(3000, dtype=np.int32))
        writer.add("s", np.array(b"hello", dtype=object))
    return prefix


def test_text_has_statistics_and_numpys_printout(
    prefix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(prefix), "--tensor", "w"]) == 0
    assert capsys.readouterr().out == (
        "tensor w  float32 (2, 2)\n"
        "min 1  max 2  mean 1.5  std 0.5  nan 1  inf 1\n"
        f"{np.array2string(np.array([[1.0, 2.0], [np.nan, np.inf]], np.float32))}\n"
    )


def test_json_is_nested_lists_bounded_by_max_elements(
    prefix: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["inspect", str(prefix), "--all-tensors", "--json", "--max-elements", "2999"]
    assert main(argv) == 0
    tensors = {t["key"]: t for t in json.loads(capsys.readouterr().out)["tensors"]}
    assert tensors["w"]["values"] == [[1.0, 2.0], ["nan", "inf"]]
    assert (tensors["big"]["values"], tensors["big"]["truncated"]) == (None, True)
    assert tensors["big"]["stats"]["max"] == 2999.0
    assert (tensors["s"]["values"], tensors["s"]["stats"]) == ("hello", None)
    assert main([*argv[:-1], "3000"]) == 0
    big = next(t for t in json.loads(capsys.readouterr().out)["tensors"] if t["key"] == "big")
    assert big["values"] == list(range(3000))


def test_an_unknown_key_is_one_line(prefix: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(prefix), "--tensor", "ww"]) == 2
    assert capsys.readouterr().err == (
        f"ckptbridge: error: 'ww' is not an entry of checkpoint {prefix}. Did you mean 'w'?\n"
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import ckptbridge

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"ckptbridge {ckptbridge.__version__}\n"
