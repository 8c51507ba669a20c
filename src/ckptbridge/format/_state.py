"""The ``checkpoint`` state file (a text-format ``CheckpointState`` proto) of a training directory.

::

    model_checkpoint_path: "model.ckpt-1000"
    all_model_checkpoint_paths: "model.ckpt-500"
    all_model_checkpoint_paths: "model.ckpt-1000"
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ckptbridge._errors import CheckpointNotFoundError, CkptBridgeError, CorruptCheckpointError
from ckptbridge.format._files import STATE_LIMIT, read_regular
from ckptbridge.format._storage import Location, RemotePath, as_location

STATE_FILE = "checkpoint"
_LINE = re.compile(r'^\s*(\w+)\s*:\s*("(?:[^"\\]|\\.)*"|[-+0-9.eE]+)\s*$')


@dataclass
class CheckpointState:
    """The current checkpoint of a directory and the ones kept before it (paths as written)."""

    model_checkpoint_path: str
    all_model_checkpoint_paths: list[str] = field(default_factory=list)


def _unquote(text: str, where: str) -> str:
    # Text-format strings use C escapes (\\", \\n, octal), which escape_decode understands.
    try:
        value, _ = codecs.escape_decode(text[1:-1].encode("utf-8"))
    except ValueError as exc:
        raise CorruptCheckpointError(
            f"{where}: the quoted path {text[:60]} has a malformed escape ({exc}). "
            "Delete the state file or fix that line."
        ) from None
    return value.decode("utf-8", "replace")


def read_state_file(directory: str | os.PathLike[str] | Location) -> CheckpointState | None:
    """Parse ``<directory>/checkpoint``; None when there is no state file.

    Example::

        state = read_state_file("train_dir")
        state.model_checkpoint_path if state else None
    """
    location = as_location(directory) / STATE_FILE
    if isinstance(location, RemotePath):
        try:
            text = location.store.read_whole(location, STATE_LIMIT, "state file").decode(
                "utf-8", "replace"
            )
        except CheckpointNotFoundError:
            return None
        return _parse(text, location)
    path = location
    try:
        if stat.S_ISDIR(os.stat(path).st_mode):
            return None
    except (FileNotFoundError, NotADirectoryError):  # no state file (a dangling link: none)
        return None
    except (OSError, ValueError):
        pass  # reported by read_regular below, with the path and a fix
    try:
        text = read_regular(path, STATE_LIMIT, "state file").decode("utf-8", "replace")
    except CkptBridgeError as exc:  # a FIFO or device, too large, permissions, a symlink loop
        raise CorruptCheckpointError(
            f"{exc} Fix or delete the state file, or pass the checkpoint prefix instead of the "
            "directory."
        ) from None
    return _parse(text, path)


def _parse(text: str, path: Location) -> CheckpointState:
    current: str | None = None
    every: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise CorruptCheckpointError(
                f"{path}:{number}: expected 'field: \"value\"' lines of a CheckpointState, found "
                f"{line.strip()[:60]!r}. Delete the state file or fix that line."
            )
        name, raw = match.groups()
        if name == "model_checkpoint_path" and raw.startswith('"'):
            current = _unquote(raw, f"{path}:{number}")
        elif name == "all_model_checkpoint_paths" and raw.startswith('"'):
            every.append(_unquote(raw, f"{path}:{number}"))
    if current is None:
        if not every:
            raise CorruptCheckpointError(f"{path} names no model_checkpoint_path")
        current = every[-1]
    return CheckpointState(current, every)


def _relative(directory: Location, path: str) -> str:
    if isinstance(directory, RemotePath):
        head = f"{directory}/"
        return path[len(head) :] if path.startswith(head) else path
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            return str(candidate.relative_to(directory.resolve()))
        except ValueError:
            return str(candidate)
    return path


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def write_state_file(
    directory: str | os.PathLike[str] | Location,
    model_checkpoint_path: str,
    all_model_checkpoint_paths: Sequence[str],
) -> Location:
    """Write ``<directory>/checkpoint`` atomically (a temporary file renamed, as TensorFlow's
    ``atomic_write_string_to_file``; not fsynced); paths inside the directory become relative.

    At a URL the state file is one object written in one request: readers see the old file or
    the new one, whole.

    Example::

        write_state_file("out", "model.ckpt-1000", ["model.ckpt-500", "model.ckpt-1000"])
    """
    folder = as_location(directory)
    current = _relative(folder, model_checkpoint_path)
    every = [_relative(folder, p) for p in all_model_checkpoint_paths]
    if current not in every:
        every.append(current)
    lines = [f"model_checkpoint_path: {_quote(current)}"]
    lines += [f"all_model_checkpoint_paths: {_quote(p)}" for p in every]
    if isinstance(folder, RemotePath):
        remote = folder / STATE_FILE
        remote.write_text("\n".join(lines) + "\n")
        return remote
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / STATE_FILE
    temp = folder / f".{STATE_FILE}.tmp{os.urandom(4).hex()}"
    try:
        with temp.open("w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")  # renamed, not fsynced: see format/_writer.py
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target
