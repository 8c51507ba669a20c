"""``verify`` / ``ckptbridge verify``: every checksum, every entry decoded; damage named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import ckptbridge
from ckptbridge.cli import main
from ckptbridge.format import BundleWriter, open_checkpoint


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    prefix = tmp_path / "model.ckpt-7"
    with BundleWriter(prefix) as writer:
        writer.add("a", np.arange(1000, dtype=np.float32))
        writer.add("b", np.ones((4, 4), np.float64))
        writer.add("names", np.array([b"x", b"yz"], dtype=object))
    return prefix


def test_an_intact_checkpoint_is_ok(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = ckptbridge.verify(bundle)
    assert report.ok and report.entries == 3
    assert main(["verify", str(bundle)]) == 0
    assert capsys.readouterr().out.endswith(": 3 entries, 4.1 kB checked: ok\n")


def test_a_flipped_byte_names_the_entry_shard_and_range(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_checkpoint(bundle) as ckpt:
        loc = ckpt.raw_location("b")
    assert loc is not None
    data = bytearray(loc.path.read_bytes())
    data[loc.offset + 3] ^= 0xFF
    loc.path.write_bytes(bytes(data))
    assert main(["verify", str(bundle), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    [damage] = doc["checkpoints"][0]["damaged"]
    assert (damage["key"], damage["file"]) == ("b", str(loc.path))
    assert (damage["start"], damage["end"]) == (loc.offset, loc.offset + loc.size)
    assert "fails its CRC32C check" in damage["message"]


def test_a_damaged_index_block_is_reported(bundle: Path) -> None:
    index = Path(f"{bundle}.index")
    data = bytearray(index.read_bytes())
    data[5] ^= 0xFF
    index.write_bytes(bytes(data))
    report = ckptbridge.verify(bundle)
    assert not report.ok and report.damaged[0].key is None
    assert report.damaged[0].file == str(index)


def test_the_shared_corpus_verifies_in_place(corpus2: Path) -> None:
    for name in ("Binjian__eos__tf_ckpts", "tensorflow__tfx__eval_model_2019"):
        assert ckptbridge.verify(corpus2 / name).ok, name


def test_no_progress_bar_when_piped(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(bundle), str(bundle)]) == 0
    assert capsys.readouterr().err == ""


def test_a_truncated_shard(bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in bundle.parent.glob("model.ckpt-7.*"):
        shutil.copy(f, copy / f.name)
    shard = next(copy.glob("*.data-*"))
    shard.write_bytes(shard.read_bytes()[:100])
    report = ckptbridge.verify(copy / "model.ckpt-7")
    assert not report.ok and "truncated" in report.damaged[0].message
