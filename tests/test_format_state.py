"""The `checkpoint` state file: read TensorFlow's, write one TensorFlow reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptbridge import CorruptCheckpointError
from ckptbridge.format import CheckpointState, read_state_file, write_state_file


def test_read_corpus_style_state(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt-8000"\n'
        'all_model_checkpoint_paths: "model.ckpt-2000"\n'
        'all_model_checkpoint_paths: "model.ckpt-8000"\n'
        "all_model_checkpoint_timestamps: 1609459200.5\n"
    )
    assert read_state_file(tmp_path) == CheckpointState(
        "model.ckpt-8000", ["model.ckpt-2000", "model.ckpt-8000"]
    )


def test_no_state_file_is_none(tmp_path: Path) -> None:
    assert read_state_file(tmp_path) is None


def test_garbage_state_file(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").write_text("this is not a state file\n")
    with pytest.raises(
        CorruptCheckpointError, match=r"checkpoint:1: expected 'field: \"value\"' lines"
    ):
        read_state_file(tmp_path)


@pytest.mark.tf
def test_write_is_relative_and_readable_by_tensorflow(tmp_path: Path) -> None:
    import tensorflow as tf

    path = write_state_file(
        tmp_path, str(tmp_path / 'a "quoted" ckpt-2'), [str(tmp_path / "ckpt-1")]
    )
    assert path == tmp_path / "checkpoint"
    assert read_state_file(tmp_path) == CheckpointState(
        'a "quoted" ckpt-2', ["ckpt-1", 'a "quoted" ckpt-2']
    )
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert state.model_checkpoint_path == str(tmp_path / 'a "quoted" ckpt-2')
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint"]
