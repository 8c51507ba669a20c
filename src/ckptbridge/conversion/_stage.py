"""Atomic output: a hidden staging directory inside the output directory, renamed into place.

A conversion writes every file of one output checkpoint into ``DST/.ckptbridge-tmp-<pid>-<hex>/``,
then renames them into ``DST`` one by one, data shards first and the ``.index`` (or the
``.weights.h5``) last: a checkpoint is visible to TensorFlow only once its index is, so a
``kill -9`` at any moment leaves either nothing or a complete checkpoint. Staging directories of
dead processes are removed by the next run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

STAGE_PREFIX = ".ckptbridge-tmp-"
_DELAY_ENV = "CKPTBRIDGE_DEBUG_PUBLISH_DELAY"  # seconds to sleep before each rename (kill tests)


def new_stage(dst_dir: Path) -> Path:
    """Create and return a fresh staging directory inside ``dst_dir``."""
    stage = dst_dir / f"{STAGE_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    stage.mkdir(parents=True)
    return stage


def clean_stale_stages(dst_dir: Path) -> list[Path]:
    """Remove staging directories left by processes that no longer run; return what was removed.

    Example: ``clean_stale_stages(Path("out"))`` after a killed conversion into ``out``.
    """
    removed: list[Path] = []
    if not dst_dir.is_dir():
        return removed
    for child in dst_dir.iterdir():
        if not child.name.startswith(STAGE_PREFIX) or not child.is_dir():
            continue
        pid_text = child.name[len(STAGE_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and (int(pid_text) == os.getpid() or _alive(int(pid_text))):
            continue  # ours (another item of this run) or another live process's
        shutil.rmtree(child, ignore_errors=True)
        removed.append(child)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish(stage: Path, dst_dir: Path, names: Iterable[str], last: str) -> None:
    """Rename ``names`` (then ``last``) from ``stage`` into ``dst_dir``, replacing stale files."""
    for name in [*[n for n in names if n != last], last]:
        _pause()
        os.replace(stage / name, dst_dir / name)
    _fsync_dir(dst_dir)


def _pause() -> None:
    delay = os.environ.get(_DELAY_ENV)
    if delay:
        time.sleep(float(delay))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def fingerprint_path(dst_dir: Path, name: str) -> Path:
    """Where the record of how output ``name`` was made lives (a hidden file beside it)."""
    return dst_dir / f".{name}.ckptbridge.json"


def write_fingerprint(stage: Path, name: str, data: dict[str, Any]) -> str:
    """Write the record into ``stage``; return its file name (published with the output)."""
    path = fingerprint_path(stage, name)
    path.write_text(json.dumps(data, sort_keys=True, indent=1), encoding="utf-8")
    return path.name


def read_fingerprint(dst_dir: Path, name: str) -> dict[str, Any] | None:
    """The record of an earlier conversion into ``dst_dir/name``, or None."""
    path = fingerprint_path(dst_dir, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def source_stamp(files: Iterable[Path]) -> list[list[Any]]:
    """Name, size and mtime of each source file: enough to tell an unchanged source."""
    stamp: list[list[Any]] = []
    for f in sorted(files):
        st = f.stat()
        stamp.append([f.name, st.st_size, st.st_mtime_ns])
    return stamp
