"""Every checkpoint of the real corpus lists and reads exactly as TensorFlow's own reader does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from ckptbridge.format import CheckpointKind, open_checkpoint

_HEADER = re.compile(r"^== (.+)$")
_LINE = re.compile(r"^\s+(\S+) \[([0-9, ]*)\] (\w+)$")


def _listed(corpus: Path) -> dict[str, dict[str, tuple[tuple[int, ...], str]]]:
    """Parse every VARIABLES.txt: checkpoint path (relative to the corpus) -> key -> (shape, dtype)."""
    out: dict[str, dict[str, tuple[tuple[int, ...], str]]] = {}
    for listing in sorted(corpus.glob("*/VARIABLES.txt")):
        current: dict[str, tuple[tuple[int, ...], str]] | None = None
        for line in listing.read_text().splitlines():
            if header := _HEADER.match(line):
                current = out.setdefault(header.group(1), {})
            elif (row := _LINE.match(line)) and current is not None:
                shape = tuple(int(d) for d in row.group(2).split(",") if d.strip())
                current[row.group(1)] = (shape, row.group(3))
    return out


def _tf_bytes(value: Any) -> Any:
    array = np.asarray(value)
    return array.tolist() if array.dtype == object else array.tobytes()


@pytest.fixture(scope="module")
def listed(corpus: Path) -> dict[str, dict[str, tuple[tuple[int, ...], str]]]:
    return _listed(corpus)


def test_corpus_lists_27_checkpoints(listed: dict[str, Any]) -> None:
    assert len(listed) == 27


@pytest.mark.tf
def test_every_corpus_checkpoint_matches_tensorflow(corpus: Path, listed: dict[str, Any]) -> None:
    kinds: dict[str, CheckpointKind] = {}
    for relative, expected in listed.items():
        with open_checkpoint(corpus / relative) as ckpt:
            kinds[relative] = ckpt.kind
            got = {k: (e.shape, e.dtype) for k, e in ckpt.entries.items()}
            assert got == expected, relative
            reader = tf.train.load_checkpoint(str(corpus / relative))
            assert set(reader.get_variable_to_shape_map()) == set(ckpt.entries), relative
            for key, entry in ckpt.entries.items():
                ours = ckpt.read(key)
                theirs = reader.get_tensor(key)
                assert ours.shape == entry.shape
                assert _tf_bytes(ours) == _tf_bytes(theirs), (relative, key)
    v1 = sorted(k for k, kind in kinds.items() if kind is CheckpointKind.TF1_V1)
    assert len(v1) == 6
    assert all(kind is not CheckpointKind.TF2 for kind in kinds.values())


def test_known_values_without_tensorflow(corpus: Path) -> None:
    with open_checkpoint(corpus / "CR-Ko__BNN" / "model-basic") as ckpt:
        np.testing.assert_allclose(ckpt.read("v1"), [0.1, 0.1], rtol=1e-6)
        np.testing.assert_allclose(ckpt.read("v2"), [0.3, 0.3], rtol=1e-6)
        assert not ckpt.read("v1").flags.writeable


def test_snappy_compressed_index_reads(corpus: Path) -> None:
    base = corpus / "tensorflow__serving/tensorflow_serving/servables/tensorflow/testdata"
    with open_checkpoint(
        base / "saved_model_half_plus_two_cpu/00000123/variables/variables"
    ) as ckpt:
        assert list(ckpt.entries) == ["a", "a2", "b", "c", "c2"]
        assert ckpt.read("a").item() == pytest.approx(0.5)


def test_int64_global_step_and_meta(corpus: Path) -> None:
    with open_checkpoint(corpus / "jncharon__wine-classifier" / "model") as ckpt:
        assert ckpt.entries["global_step"].dtype == "int64"
        assert ckpt.read("global_step").item() == 3374
        assert ckpt.meta is not None
        assert ckpt.meta.tf_version == "1.4.0"
        trainable = {v.name for v in ckpt.meta.variables if v.trainable}
        assert "dnn/hiddenlayer_0/kernel/part_0" in trainable
        assert "global_step" not in trainable
        part = next(v for v in ckpt.meta.variables if v.name == "dnn/hiddenlayer_0/kernel/part_0")
        assert part.save_slice == ("dnn/hiddenlayer_0/kernel", (11, 10), (0, 0), (11, 10))


def test_meta_beside_sharded_v1_name(corpus: Path) -> None:
    path = (
        corpus
        / "tensorflow__serving/tensorflow_serving/session_bundle/testdata/half_plus_two/00000123/export-00000-of-00001"
    )
    with open_checkpoint(path) as ckpt:
        assert ckpt.kind is CheckpointKind.TF1_V1
        assert ckpt.meta is not None
        assert [v.name for v in ckpt.meta.variables][:2] == ["a", "b"]
