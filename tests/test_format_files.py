"""Checkpoint files that are not regular files, too large, or unreachable give ckptbridge errors
at once: never a hang (FIFO), an endless read (/dev/zero), or a foreign OSError."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from ckptbridge import CheckpointNotFoundError, CorruptCheckpointError
from ckptbridge.format import BundleWriter, open_checkpoint, read_state_file
from ckptbridge.format._files import os_error


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    with BundleWriter(folder / "m.ckpt") as writer:
        writer.add("w", np.arange(4, dtype=np.float32))
    (folder / "checkpoint").write_text('model_checkpoint_path: "m.ckpt"\n')
    return folder


@pytest.fixture
def copy(good: Path, tmp_path: Path) -> Path:
    for path in good.iterdir():
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "sparse", "directory"])
def test_meta_that_cannot_be_read_is_a_warning_not_a_hang(copy: Path, kind: str) -> None:
    meta = copy / "m.ckpt.meta"
    if kind == "fifo":
        os.mkfifo(meta)
    elif kind == "dev-zero":
        meta.symlink_to("/dev/zero")
    elif kind == "sparse":
        meta.touch()
        os.truncate(meta, 3 << 30)
    else:
        meta.mkdir()
    with open_checkpoint(copy / "m.ckpt") as ckpt:
        assert ckpt.meta is None
        expected = {
            "fifo": r"is a FIFO \(named pipe\), not a regular file",
            "dev-zero": r"is a device, not a regular file",
            "sparse": r"is 3221225472 bytes, more than the 1073741824 bytes a \.meta file",
            "directory": r"is a directory, not a regular file",
        }[kind]
        assert len(ckpt.warnings) == 1
        assert ckpt.warnings[0].startswith(f".meta file {meta} ")
        assert ckpt.warnings[0].endswith("Ignoring the .meta file.")
        assert re.search(expected, ckpt.warnings[0]), ckpt.warnings[0]


@pytest.mark.parametrize("kind", ["fifo", "sparse"])
def test_state_file_that_is_a_fifo_or_huge_is_refused_at_once(copy: Path, kind: str) -> None:
    state = copy / "checkpoint"
    state.unlink()
    if kind == "fifo":
        os.mkfifo(state)
        message = r"is a FIFO \(named pipe\), not a regular file"
    else:
        state.touch()
        os.truncate(state, 3 << 30)
        message = r"is 3221225472 bytes, more than the 16777216 bytes a state file"
    with pytest.raises(CorruptCheckpointError, match=rf"^state file {state} {message}"):
        read_state_file(copy)
    with pytest.raises(CorruptCheckpointError, match=message):
        open_checkpoint(copy)


def test_state_file_naming_a_path_too_long_for_the_file_system(copy: Path) -> None:
    (copy / "checkpoint").write_text(f'model_checkpoint_path: "{"x" * 5000}"\n')
    with open_checkpoint(copy) as ckpt:  # falls back to the checkpoint beside it, with a warning
        assert ckpt.prefix == copy / "m.ckpt"
        assert ckpt.warnings == [
            f"{copy / 'checkpoint'} names {'x' * 5000!r}, which does not exist here or beside "
            "the state file; using the newest checkpoint present, m.ckpt"
        ]


def test_prefix_too_long_for_the_file_system(copy: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"^no checkpoint at .*x{300}"):
        open_checkpoint(copy / ("x" * 5000))


@pytest.mark.parametrize("kind", ["directory", "symlink-loop", "fifo"])
def test_shard_that_is_not_a_regular_file(copy: Path, kind: str) -> None:
    shard = copy / "m.ckpt.data-00000-of-00001"
    shard.unlink()
    if kind == "directory":
        shard.mkdir()
        message = r"is a directory, not a regular file"
    elif kind == "fifo":
        os.mkfifo(shard)
        message = r"is a FIFO \(named pipe\), not a regular file"
    else:
        shard.symlink_to(shard.name)
        message = r"cannot be read: it is a symbolic link that loops"
    with pytest.raises(CorruptCheckpointError, match=rf"^data shard {shard} {message}"):
        open_checkpoint(copy / "m.ckpt")


def test_index_that_is_a_fifo(copy: Path) -> None:
    index = copy / "m.ckpt.index"
    index.unlink()
    os.mkfifo(index)
    with pytest.raises(CheckpointNotFoundError, match=r"^no checkpoint at .*m\.ckpt: looked for"):
        open_checkpoint(copy / "m.ckpt")


def test_os_errors_map_to_ckptbridge_errors() -> None:
    import errno

    assert isinstance(
        os_error(OSError(errno.EACCES, "Permission denied"), "p", "x"), CheckpointNotFoundError
    )
    assert isinstance(os_error(OSError(errno.EIO, "I/O error"), "p", "x"), CorruptCheckpointError)
    assert str(os_error(OSError(errno.EIO, "I/O error"), "p", "data shard")) == (
        "data shard p cannot be read: I/O error. Check the file and the disk, or copy it again."
    )
