"""``diff A B --mapped``: a TF1 checkpoint against its conversions, through the mapping."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptbridge
from ckptbridge.cli import main
from ckptbridge.format import BundleWriter, open_checkpoint
from ckptbridge.tools import diff_mapped
from tf1_builders import TF1Checkpoint, write_convnet_scopes

pytestmark = pytest.mark.tf


def _model() -> Any:
    from test_conversion_api import convnet_model

    return convnet_model()


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[TF1Checkpoint, Path]:
    convnet = write_convnet_scopes(tmp_path_factory.mktemp("tf1"), global_step=50)
    out = tmp_path_factory.mktemp("out")
    for to in ("tf2", "keras"):
        report = ckptbridge.convert(convnet.prefix, out / to, target=_model(), to=to)
        assert report.ok, str(report)
    return convnet, out


@pytest.mark.parametrize("output", ["tf2/model.ckpt-50", "keras/model.ckpt-50.weights.h5"])
def test_a_conversion_compares_equal_and_verifies(
    converted: tuple[TF1Checkpoint, Path], output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    convnet, out = converted
    assert main(["diff", str(convnet.prefix), str(out / output), "--mapped", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["equal"] and len(doc["compared"]) == 8 and doc["missing_in_a"] == []
    assert any(k.endswith("/Adam") for k in doc["auxiliary_a"])  # the TF1 slots, left out
    assert main(["verify", str(out / output)]) == 0


def test_a_changed_value_is_different_exit_1(
    converted: tuple[TF1Checkpoint, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    convnet, _ = converted
    changed = tmp_path / "model.ckpt-50"
    with open_checkpoint(convnet.prefix) as src, BundleWriter(changed) as writer:
        for key in src.entries:
            value = np.array(src.read(key))
            writer.add(key, value + 1 if key == "fc2/biases" else value)
    assert main(["diff", str(convnet.prefix), str(changed), "--mapped"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^!\s+fc2/biases\s+fc2/biases\s+float32 \(10,\) max\|a-b\| = 1$", out, re.M)
    assert out.rstrip().endswith("different")


def test_unmapped_sides_are_listed(converted: tuple[TF1Checkpoint, Path], tmp_path: Path) -> None:
    convnet, _ = converted
    partial = tmp_path / "partial"
    with open_checkpoint(convnet.prefix) as src, BundleWriter(partial) as writer:
        for key in ("conv1/weights", "conv1/biases"):
            writer.add(key, np.array(src.read(key)))
        writer.add("extra/kernel", np.zeros((3, 3), np.float32))
    report = diff_mapped(convnet.prefix, partial)
    assert not report.equal and report.missing_in_a == ["extra/kernel"]
    assert "fc1/weights" in report.unused_in_a
