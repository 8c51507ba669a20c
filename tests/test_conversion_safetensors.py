"""``to="safetensors"``: mapped weights named by the target's variable paths, read back by the
safetensors library, written streamed with the source and the plan in the metadata."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

import ckptbridge
from ckptbridge.conversion._safetensors import tensor_name
from tf1_builders import TF1Checkpoint, write_convnet_scopes

pytestmark = pytest.mark.tf


def _model() -> Any:
    from test_conversion_api import convnet_model

    return convnet_model()


@pytest.fixture(scope="module")
def convnet(tmp_path_factory: pytest.TempPathFactory) -> TF1Checkpoint:
    return write_convnet_scopes(tmp_path_factory.mktemp("tf1"), global_step=50)


@pytest.fixture(scope="module")
def exported(convnet: TF1Checkpoint, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    model = _model()
    out = tmp_path_factory.mktemp("st")
    report = ckptbridge.convert(convnet.prefix, out, target=model, to="safetensors", verify=True)
    assert report.ok, str(report)
    assert report.state_file is None and not (out / "checkpoint").exists()
    return out / "model.ckpt-50.safetensors", model


def test_names_are_keras_paths_and_values_restore_the_model(
    exported: tuple[Path, Any], convnet: TF1Checkpoint
) -> None:
    path, model = exported
    tensors = load_file(str(path))
    assert sorted(tensors) == sorted(v.path for v in model.weights)
    restored = _model()
    ckptbridge.restore(restored, convnet.prefix)
    for v, same in zip(model.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(tensors[v.path], np.asarray(same))


def test_metadata_records_source_and_plan_and_the_header_is_aligned(
    exported: tuple[Path, Any], convnet: TF1Checkpoint
) -> None:
    path, model = exported
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert (8 + length) % 8 == 0
    meta = json.loads(raw[8 : 8 + length])["__metadata__"]
    plan = ckptbridge.plan(convnet.prefix, model)
    from ckptbridge.conversion._safetensors import plan_fingerprint

    assert meta["ckptbridge.source"] == str(convnet.prefix)
    assert meta["ckptbridge.plan_sha256"] == plan_fingerprint(plan)


def test_torch_reads_it_when_installed(exported: tuple[Path, Any]) -> None:
    torch_loader = pytest.importorskip("safetensors.torch")
    path, model = exported
    tensors = torch_loader.load_file(str(path))
    assert sorted(tensors) == sorted(v.path for v in model.weights)


def test_a_template_checkpoint_target_names_tensors_by_its_keys(
    convnet: TF1Checkpoint, tmp_path: Path
) -> None:
    report = ckptbridge.convert(
        convnet.prefix, tmp_path, target=convnet.prefix, to="safetensors", verify=True
    )
    assert report.ok, str(report)
    tensors = load_file(str(tmp_path / "model.ckpt-50.safetensors"))
    assert sorted(tensors) == ["conv1/biases", "conv1/weights", "conv2/biases", "conv2/weights",
                               "fc1/biases", "fc1/weights", "fc2/biases", "fc2/weights"]  # fmt: skip
    np.testing.assert_array_equal(tensors["fc1/weights"], convnet.values["fc1/weights"])


def test_a_rerun_is_skipped_and_says_why(
    exported: tuple[Path, Any], convnet: TF1Checkpoint
) -> None:
    path, model = exported
    report = ckptbridge.convert(convnet.prefix, path.parent, target=model, to="safetensors")
    assert report.counts() == {"converted": 0, "skipped": 1, "failed": 0}
    assert report.items[0].reason == (
        "already converted: same source files, target, rules and output kind "
        "(recorded in .model.ckpt-50.safetensors.ckptbridge.json)"
    )


def test_tensor_names() -> None:
    assert tensor_name("dense/kernel:0") == "dense/kernel"
    assert tensor_name("model/d/kernel/.ATTRIBUTES/VARIABLE_VALUE") == "model/d/kernel"


def test_a_transposed_tensor_is_written_from_a_view(tmp_path: Path) -> None:
    from ckptbridge.format import BundleWriter

    w = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    with BundleWriter(tmp_path / "src" / "m.ckpt") as writer:
        writer.add("w", w)
        writer.add("b", np.ones(3, np.float64))
    with BundleWriter(tmp_path / "tpl" / "m.ckpt") as writer:
        writer.add("w", np.zeros((4, 3, 2), np.float32))
        writer.add("b", np.zeros(3, np.float64))
    rules = {
        "map": {"w": "w"},
        "transforms": [{"target": "w", "steps": [{"op": "transpose", "perm": [2, 1, 0]}]}],
    }
    report = ckptbridge.convert(tmp_path / "src" / "m.ckpt", tmp_path / "out",
                                target=tmp_path / "tpl" / "m.ckpt", to="safetensors",
                                rules=rules, verify=True)  # fmt: skip
    assert report.ok, str(report)
    tensors = load_file(str(tmp_path / "out" / "m.ckpt.safetensors"))
    np.testing.assert_array_equal(tensors["w"], w.transpose(2, 1, 0))
    np.testing.assert_array_equal(tensors["b"], np.ones(3))
