"""Turn what a user passes (prefix, directory, file with a suffix, V1 file) into a checkpoint path.

::

    prefix, warnings = resolve_checkpoint("train_dir")          # via its `checkpoint` state file
    prefix, warnings = resolve_checkpoint("m.ckpt-10.index")   # -> m.ckpt-10
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from pathlib import Path
from typing import TypeVar, cast

from ckptbridge._errors import CheckpointNotFoundError, CkptBridgeError
from ckptbridge._text import lazy_pattern
from ckptbridge.format._files import is_directory, is_regular, open_regular
from ckptbridge.format._state import STATE_FILE, read_state_file
from ckptbridge.format._storage import Location, RemotePath, as_location
from ckptbridge.format._table import MAGIC
from ckptbridge.format._types import KERAS_SUFFIXES, SAFETENSORS_SUFFIX

_SUFFIX = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")
_NOT_V1 = lazy_pattern(
    r"(\.(index|meta|txt|json|pb|pbtxt|py|md|yaml|h5|keras|safetensors)|\.data-\d{5}-of-\d{5}|^checkpoint)$"
)
SINGLE_FILE_SUFFIXES = (*KERAS_SUFFIXES, SAFETENSORS_SUFFIX)
_STEP = lazy_pattern(r"-(\d+)$")
_MAX_SCAN = 2000
P = TypeVar("P", bound=Location)
SAVED_MODEL_VARIABLES = Path("variables") / "variables"
LOOKS_LIKE = (
    "A checkpoint path is a prefix (model.ckpt-1000 for model.ckpt-1000.index + .data-*), a "
    "training directory (with its 'checkpoint' state file), a SavedModel directory, a V1 "
    "checkpoint file, a Keras .weights.h5/.keras file or a .safetensors file"
)


def strip_suffix(path: P) -> P:
    """Drop a ``.index`` / ``.meta`` / ``.data-NNNNN-of-MMMMM`` suffix.

    Example::

        >>> strip_suffix(Path("m.ckpt-5.data-00000-of-00001")).name
        'm.ckpt-5'
    """
    if not _SUFFIX.search(path.name):
        return path
    return cast(P, path.with_name(_SUFFIX.sub("", path.name)))


def _is_file(path: Location) -> bool:
    return path.is_file() if isinstance(path, RemotePath) else is_regular(path)


def _is_dir(path: Location) -> bool:
    return path.is_dir() if isinstance(path, RemotePath) else is_directory(path)


def has_table_magic(path: Location) -> bool:
    """True when ``path`` is a regular file ending with the LevelDB table magic (V1 files,
    indexes). Never blocks: FIFOs and devices are refused before they are opened."""
    if isinstance(path, RemotePath):  # two ranged requests: the size, the last 8 bytes
        try:
            size = path.store.size(path)
            tail = path.store.read_range(path, size - 8, 8) if size >= 48 else b""
        except (CkptBridgeError, OSError):
            return False
        return len(tail) == 8 and struct.unpack("<Q", tail)[0] == MAGIC
    try:
        fd = open_regular(path, "checkpoint file")
    except CkptBridgeError:
        return False
    try:
        size = os.fstat(fd).st_size
        return size >= 48 and struct.unpack("<Q", os.pread(fd, 8, size - 8))[0] == MAGIC
    except (OSError, struct.error):
        return False
    finally:
        os.close(fd)


def _exists(candidate: Location) -> bool:
    if not candidate.name:  # "/" or "" named by a state file: no prefix to add ".index" to
        return False
    return _is_file(candidate.with_name(candidate.name + ".index")) or _is_file(candidate)


def _sort_key(path: Location) -> tuple[float, int, str]:
    index = path.with_name(path.name + ".index")
    step = _STEP().search(path.name)
    try:
        mtime = (index if _is_file(index) else path).stat().st_mtime
    except OSError:
        mtime = 0.0
    return mtime, int(step.group(1)) if step else -1, path.name


def newest_checkpoint(directory: Location) -> tuple[Location | None, int]:
    """Return the newest checkpoint in ``directory`` (bundles first, then V1 files) and a count."""
    try:
        indexes: list[Location] = list(directory.glob("*.index"))
        bundles = [p.with_name(p.name[: -len(".index")]) for p in indexes if _is_file(p)]
        entries: list[Location] = [] if bundles else list(directory.iterdir())
        listed = sorted(entries, key=str)[:_MAX_SCAN]
    except OSError:
        return None, 0
    if not bundles:
        files = [p for p in listed if _is_file(p) and not _NOT_V1().search(p.name)]
        bundles = [p for p in files if has_table_magic(p)]
    if not bundles:
        bundles = [p for p in listed if _is_file(p) and p.name.endswith(SINGLE_FILE_SUFFIXES)]
    if not bundles:
        return None, 0
    return max(bundles, key=_sort_key), len(bundles)


def saved_model_variables(directory: Location) -> Location | None:
    """The variables bundle prefix of a SavedModel directory (``variables/variables``), or None."""
    prefix = directory / str(SAVED_MODEL_VARIABLES)
    return prefix if _is_file(prefix.with_name("variables.index")) else None


def not_a_checkpoint_hint(path: Location) -> str:
    """What ``path`` (an existing file that is no checkpoint) is, and what to pass instead."""
    if path.name == STATE_FILE:
        state = None
        with contextlib.suppress(CkptBridgeError):
            state = read_state_file(path.parent)
        named = f" or the checkpoint it names, {state.model_checkpoint_path!r}" if state else ""
        return (
            f"{path.name} is a training directory's state file: pass the directory "
            f"{str(path.parent)!r}{named}"
        )
    if path.name in ("saved_model.pb", "saved_model.pbtxt"):
        return f"{path.name} is a SavedModel graph: pass its directory {str(path.parent)!r}"
    if path.suffix == ".py":
        return f"{path.name} is a Python file, not a checkpoint. " + LOOKS_LIKE
    return LOOKS_LIKE


def _listing(directory: Location) -> str:
    try:
        names = sorted(p.name for p in directory.iterdir())
    except OSError:
        return f"directory {directory} does not exist"
    if not names:
        return f"{directory} is empty"
    shown = ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "")
    return f"{directory} contains: {shown}"


def _resolve_dir(directory: Location) -> tuple[Location, list[str]]:
    state = read_state_file(directory)
    newest, count = newest_checkpoint(directory)
    if state is None:
        saved_model = saved_model_variables(directory) if newest is None else None
        if saved_model is not None:
            return saved_model, [
                f"{directory} is a SavedModel directory: reading its variables bundle "
                f"{SAVED_MODEL_VARIABLES} (the graph in saved_model.pb is not used)"
            ]
        if newest is None:
            raise CheckpointNotFoundError(
                f"no checkpoint in directory {directory}: there is no '{STATE_FILE}' state file and "
                f"no *.index, V1 checkpoint, Keras weights or safetensors file. {_listing(directory)}. "
                + LOOKS_LIKE
            )
        note = (
            []
            if count == 1
            else [
                f"{directory} has no '{STATE_FILE}' state file; using the newest checkpoint, {newest.name}"
            ]
        )
        return newest, note
    named = as_location(state.model_checkpoint_path)  # absolute, relative, or another URL
    candidate = named if named.is_absolute() else directory / str(named)
    if _exists(candidate):
        return candidate, []
    state_path = directory / STATE_FILE
    beside = directory / named.name
    if _exists(beside):
        return beside, [
            f"{state_path} names {str(named)!r}, which does not exist; using {beside.name} beside the state file"
        ]
    if newest is not None:
        return newest, [
            f"{state_path} names {str(named)!r}, which does not exist here or beside the state "
            f"file; using the newest checkpoint present, {newest.name}"
        ]
    looked = str(candidate) if candidate == beside else f"{candidate} and {beside}"
    raise CheckpointNotFoundError(
        f"{state_path} names {str(named)!r}, which does not exist (looked for {looked}), and no "
        f"other checkpoint is present. {_listing(directory)}"
    )


def resolve_checkpoint(path: str | os.PathLike[str] | Location) -> tuple[Location, list[str]]:
    """Return the checkpoint prefix (or V1 file) that ``path`` designates, with warnings.

    Accepts a prefix, a prefix with a ``.index``/``.meta``/``.data-*`` suffix, a training directory
    (its ``checkpoint`` state file, falling back to the same basename beside it, then the newest
    checkpoint present) or a V1 single file. Raises :class:`CheckpointNotFoundError` listing what
    was looked for.

    Example::

        prefix, warnings = resolve_checkpoint("old/model.ckpt-1000.index")
    """
    given = as_location(path)
    if _is_dir(given):
        return _resolve_dir(given)
    stripped = strip_suffix(given)
    if stripped != given:
        if _exists(stripped):
            return stripped, []
        if _is_file(given):  # a .data-*/.meta file whose index is gone: not a V1 file
            raise CheckpointNotFoundError(
                f"{given.name} belongs to the checkpoint {stripped}, but its index "
                f"{stripped.name}.index is missing; a bundle cannot be read without it. Copy the "
                f"index next to the data files. {_listing(given.parent)}"
            )
    if _exists(given):
        return given, []
    raise CheckpointNotFoundError(
        f"no checkpoint at {given}: looked for {given}.index (TF1/TF2 bundle) and a V1 checkpoint "
        f"file {given}. {_listing(given.parent)}"
    )
