"""What users pass (prefix, suffix, directory, V1 file) resolves to the right checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ckptbridge import CheckpointNotFoundError
from ckptbridge.format import BundleWriter, resolve_checkpoint


@pytest.fixture
def train_dir(tmp_path: Path) -> Path:
    for step, mtime in ((100, 1_000_000), (200, 2_000_000)):
        with BundleWriter(tmp_path / f"model.ckpt-{step}") as writer:
            writer.add("w", np.zeros(2))
        os.utime(tmp_path / f"model.ckpt-{step}.index", (mtime, mtime))
    return tmp_path


@pytest.mark.parametrize("suffix", ["", ".index", ".meta", ".data-00000-of-00001"])
def test_prefix_with_or_without_suffix(train_dir: Path, suffix: str) -> None:
    assert resolve_checkpoint(str(train_dir / "model.ckpt-100") + suffix) == (
        train_dir / "model.ckpt-100",
        [],
    )


def test_directory_uses_state_file(train_dir: Path) -> None:
    (train_dir / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-100"\n')
    assert resolve_checkpoint(train_dir) == (train_dir / "model.ckpt-100", [])


def test_absolute_path_from_another_machine_falls_back_beside(train_dir: Path) -> None:
    (train_dir / "checkpoint").write_text(
        'model_checkpoint_path: "/home/someone/run/model.ckpt-100"\n'
    )
    prefix, warnings = resolve_checkpoint(train_dir)
    assert prefix == train_dir / "model.ckpt-100"
    assert warnings == [
        f"{train_dir / 'checkpoint'} names '/home/someone/run/model.ckpt-100', which does not exist; "
        "using model.ckpt-100 beside the state file"
    ]


def test_absent_step_falls_back_to_newest(train_dir: Path) -> None:
    (train_dir / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-400"\n')
    prefix, warnings = resolve_checkpoint(train_dir)
    assert prefix == train_dir / "model.ckpt-200"
    assert "using the newest checkpoint present, model.ckpt-200" in warnings[0]


def test_directory_without_state_file(train_dir: Path) -> None:
    prefix, warnings = resolve_checkpoint(train_dir)
    assert prefix == train_dir / "model.ckpt-200"
    assert "has no 'checkpoint' state file" in warnings[0]


def test_nothing_there_lists_what_is(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(
        CheckpointNotFoundError,
        match=r"^no checkpoint at .*model\.ckpt: looked for .*model\.ckpt\.index \(TF1/TF2 bundle\) and a V1 checkpoint file .*contains: notes\.txt$",
    ):
        resolve_checkpoint(tmp_path / "model.ckpt")
    with pytest.raises(CheckpointNotFoundError, match=r"^no checkpoint in directory"):
        resolve_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "folder", ["tensorflow__tfx__eval_model_2019", "tensorflow__rust__regression_savedmodel_tf2"]
)
def test_a_saved_model_directory_reads_its_variables_bundle(corpus2: Path, folder: str) -> None:
    prefix, notes = resolve_checkpoint(corpus2 / folder)
    assert prefix == corpus2 / folder / "variables" / "variables"
    assert notes == [
        f"{corpus2 / folder} is a SavedModel directory: reading its variables bundle "
        "variables/variables (the graph in saved_model.pb is not used)"
    ]


def test_the_state_file_itself_gets_a_hint(train_dir: Path) -> None:
    from ckptbridge import CorruptCheckpointError
    from ckptbridge.format import open_checkpoint

    (train_dir / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-100"\n')
    with pytest.raises(
        CorruptCheckpointError,
        match=r"^.*checkpoint is not a checkpoint: .* checkpoint is a training directory's state "
        r"file: pass the directory '.*' or the checkpoint it names, 'model\.ckpt-100'$",
    ):
        open_checkpoint(train_dir / "checkpoint")


def test_a_python_file_says_what_a_checkpoint_path_looks_like(tmp_path: Path) -> None:
    from ckptbridge import CorruptCheckpointError
    from ckptbridge.format import open_checkpoint

    (tmp_path / "train.py").write_text("print('hi')\n" * 10)
    with pytest.raises(
        CorruptCheckpointError,
        match=r"^.*train\.py is a Python file, not a checkpoint\. A checkpoint path is a prefix "
        r"\(model\.ckpt-1000 for model\.ckpt-1000\.index \+ \.data-\*\)",
    ):
        open_checkpoint(tmp_path / "train.py")


def test_a_directory_of_other_files_says_what_a_checkpoint_path_looks_like(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(
        CheckpointNotFoundError, match=r"contains: notes\.txt\. A checkpoint path is a prefix"
    ):
        resolve_checkpoint(tmp_path)
