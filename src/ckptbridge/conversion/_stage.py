"""Atomic output: a hidden staging directory inside the output directory, renamed into place.

A conversion writes every file of one output checkpoint into ``DST/.ckptbridge-tmp-<pid>-<hex>/``,
then renames them into ``DST`` one by one, data shards first and the ``.index`` (or the
``.weights.h5``) last: a checkpoint is visible to TensorFlow only once its index is, so a
``kill -9`` at any moment leaves either nothing or a complete checkpoint. Staging directories of
dead processes are removed by the next run. Atomic, not durable: nothing (files or directories) is
fsynced, as TensorFlow's saver does not (the policy is spelled out in ``ckptbridge.format._writer``).

Replacing an existing bundle (``overwrite``) never leaves a moment without it
(:func:`publish_over`): the old checkpoint first gets a second name (hard links,
``<name>.ckptbridge-old-<pid>-<hex>``) and the ``checkpoint`` state file is switched to it; only
then are the old files under ``<name>`` removed and the new ones renamed in (index last); the state
file is switched back and the second name removed. A run killed in between leaves the old
checkpoint complete under its second name, named by the state file; the next run puts it back
(:func:`clean_stale_stages`) or finishes the switch.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Also the name of the speculative copies' directory: one name, one cleanup of dead processes'.
from ckptbridge.conversion._speculate import STAGE_PREFIX as STAGE_PREFIX
from ckptbridge.format._storage import Location, RemotePath

OLD_MARK = ".ckptbridge-old-"  # <name><OLD_MARK><pid>-<hex>: an old bundle kept while replaced
_STATE_LOCK = threading.Lock()  # items of one run (threads) edit the same state file
_DELAY_ENV = "CKPTBRIDGE_DEBUG_PUBLISH_DELAY"  # seconds to sleep before each rename (kill tests)


def new_stage(dst_dir: Location) -> Path:
    """Create and return a fresh staging directory inside ``dst_dir`` (a local temporary
    directory when ``dst_dir`` is at a URL)."""
    if isinstance(dst_dir, RemotePath):
        import tempfile

        return Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-"))
    stage = dst_dir / f"{STAGE_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
    stage.mkdir(parents=True)
    return stage


def clean_stale_stages(dst_dir: Location) -> list[Path]:
    """Remove staging directories left by processes that no longer run; return what was removed.

    Example: ``clean_stale_stages(Path("out"))`` after a killed conversion into ``out``.
    """
    removed: list[Path] = []
    if isinstance(dst_dir, RemotePath) or not dst_dir.is_dir():  # remote: staged locally
        return removed
    for child in dst_dir.iterdir():
        if not child.name.startswith(STAGE_PREFIX) or not child.is_dir():
            continue
        pid_text = child.name[len(STAGE_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and (int(pid_text) == os.getpid() or _alive(int(pid_text))):
            continue  # ours (another item of this run) or another live process's
        shutil.rmtree(child, ignore_errors=True)
        removed.append(child)
    for path in sorted(dst_dir.glob(f"*{OLD_MARK}*")):
        name, _, rest = path.name.rpartition(OLD_MARK)
        pid_text, _, tail = rest.partition("-")
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        if tail.endswith(".index"):  # a kept old bundle: back under its name, or gone
            _restore_backup(dst_dir, name, path.name[: -len(".index")])
            removed.append(path)
        elif not Path(f"{str(path).split('.data-', 1)[0]}.index").exists():
            path.unlink(missing_ok=True)  # shards of a second name with no index: no checkpoint
    return removed


def _bundle_files(dst_dir: Location, name: str) -> list[Location]:
    """The data shards of bundle ``name`` in ``dst_dir``, then its index (if there)."""
    files: list[Location] = sorted(dst_dir.glob(f"{_glob_escape(name)}.data-*"), key=str)
    index = dst_dir / f"{name}.index"
    return [*files, index] if index.exists() else files


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _give_names(dst_dir: Location, files: list[Location], old: str, new: str) -> None:
    """Give each file of bundle ``old`` a second name under bundle ``new`` (the index last);
    at a URL, a copy inside the store (nothing moves through this machine)."""
    for path in files:
        dest = dst_dir / (new + path.name[len(old) :])
        _pause()
        if isinstance(path, RemotePath) and isinstance(dest, RemotePath):
            path.store.copy(path, dest)
            continue
        assert isinstance(path, Path) and isinstance(dest, Path)
        dest.unlink(missing_ok=True)
        try:
            os.link(path, dest)
        except OSError:  # a filesystem without hard links: copy
            shutil.copyfile(path, dest)


def _remove_bundle(files: list[Location]) -> None:
    """Remove a bundle's files, index first: it stops being a checkpoint before anything else."""
    for path in sorted(files, key=lambda p: not p.name.endswith(".index")):
        _pause()
        path.unlink(missing_ok=True)


def _rename_in_state(dst_dir: Location, old: str, new: str) -> None:
    """Make the ``checkpoint`` state file of ``dst_dir`` name ``new`` wherever it named ``old``."""
    from ckptbridge.format import read_state_file, write_state_file

    with _STATE_LOCK:
        if not (dst_dir / "checkpoint").exists():
            return
        state = read_state_file(dst_dir)
        if state is None:
            return

        def swap(path: str) -> str:
            return str(Path(path).with_name(new)) if Path(path).name == old else path

        every = [swap(p) for p in state.all_model_checkpoint_paths]
        current = swap(state.model_checkpoint_path)
        if (
            every != list(state.all_model_checkpoint_paths)
            or current != state.model_checkpoint_path
        ):
            _pause()
            write_state_file(dst_dir, current, every)


def publish_over(
    stage: Path, dst_dir: Location, name: str, names: Iterable[str], last: str
) -> None:
    """:func:`publish` the staged bundle ``name`` where one may already be, so that a complete
    checkpoint named by the state file exists at every moment (see the module docstring)."""
    old = _bundle_files(dst_dir, name)
    if not (dst_dir / f"{name}.index").exists():
        _remove_bundle(old)  # shards without an index are no checkpoint
        publish(stage, dst_dir, names, last)
        return
    backup = f"{name}{OLD_MARK}{os.getpid()}-{os.urandom(4).hex()}"
    _give_names(dst_dir, old, name, backup)
    _rename_in_state(dst_dir, name, backup)
    _remove_bundle(old)
    publish(stage, dst_dir, names, last)
    _rename_in_state(dst_dir, backup, name)
    _remove_bundle(_bundle_files(dst_dir, backup))


def _restore_backup(dst_dir: Location, name: str, backup: str) -> None:
    """Finish a replacement that a killed run left: the backup returns when ``name`` is gone."""
    if not (dst_dir / f"{name}.index").exists():
        _remove_bundle(_bundle_files(dst_dir, name))
        _give_names(dst_dir, _bundle_files(dst_dir, backup), backup, name)
    _rename_in_state(dst_dir, backup, name)
    _remove_bundle(_bundle_files(dst_dir, backup))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(stage: Path, dst_dir: Location, names: Iterable[str], last: str) -> None:
    """Rename ``names`` (then ``last``) from ``stage`` into ``dst_dir``, replacing stale files;
    at a URL, upload them in that order (each object appears whole or not at all)."""
    for name in [*[n for n in names if n != last], last]:
        _pause()
        if isinstance(dst_dir, RemotePath):
            dst_dir.store.put(stage / name, dst_dir / name)
        else:
            os.replace(stage / name, dst_dir / name)


def _pause() -> None:
    delay = os.environ.get(_DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def fingerprint_path(dst_dir: Location, name: str) -> Location:
    """Where the record of how output ``name`` was made lives (a hidden file beside it)."""
    return dst_dir / f".{name}.ckptbridge.json"


def write_fingerprint(stage: Path, name: str, data: dict[str, Any]) -> str:
    """Write the record into ``stage``; return its file name (published with the output)."""
    path = stage / fingerprint_path(stage, name).name
    path.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
    return path.name


def read_fingerprint(dst_dir: Location, name: str) -> dict[str, Any] | None:
    """The record of an earlier conversion into ``dst_dir/name``, or None."""
    path = fingerprint_path(dst_dir, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def source_stamp(files: Iterable[Location]) -> list[list[Any]]:
    """Name, size and mtime of each source file: enough to tell an unchanged source."""
    stamp: list[list[Any]] = []
    for f in sorted(files, key=str):
        st = f.stat()
        stamp.append([f.name, st.st_size, st.st_mtime_ns])
    return stamp
