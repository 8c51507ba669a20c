"""Speculative whole-shard copies: start copying the source's big data shards at once, adopt later.

A rename-only conversion ends up copying each source data shard whole (:mod:`._link`, ``copy``
mode), but only once the indexes are read and the plan is made (imports included, ~0.15 s). The
CLI's ``convert`` (:func:`begin`) guesses cheaply, before importing the conversion, which data
shards one local checkpoint going to a local bundle output will copy, and starts copying them
(``copy_file_range``, in pieces, cancellable between pieces) into a staging directory inside the
output directory. When the conversion reaches the copy of a shard it :func:`adopt`\\ s the
speculative copy instead (waits for it to end, then renames it): only when it was copied whole from
the same file (device, inode, size, mtime, ctime) as the one being converted, before and after the
copy. Nothing else changes: the CRC32C of every entry is still checked in the source, and a copy
never adopted only costs its I/O. Copies found unused are cancelled and deleted (:func:`discard`),
and all of them at the end of the command (:meth:`Session.close`); a killed process leaves a
staging directory that the next run removes (``_stage.clean_stale_stages``: same name prefix).

This module imports nothing heavy: the CLI imports it before the conversion (see
:func:`load_early`), so the copy overlaps the imports, the index reads and the plan.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

STAGE_PREFIX = ".ckptbridge-tmp-"  # the name of every staging directory (``_stage`` uses this)
MIN_SIZE = 64 << 20  # smaller shards are not worth a speculative copy
PIECE = 64 << 20  # bytes per copy_file_range call: the cancel flag is checked between pieces

Identity = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Speculation:
    """One background copy of ``source`` into ``file``.

    ``state``: copying -> copied | cancelled | failed; copied -> adopted | cancelled.
    """

    def __init__(self, source: Path, file: Path, key: tuple[int, int]) -> None:
        self.source, self.file = source, file
        self.key = key  # st_dev, st_ino of ``source`` when the copy was planned
        self.state = "copying"
        self.before: Identity | None = None  # fstat of the descriptor copied from, at the start
        self.after: Identity | None = None  # and once the copy ended
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ckptbridge-speculate", daemon=True)

    def _run(self) -> None:
        copied = False
        try:
            with self.source.open("rb") as fin, self.file.open("xb") as fout:
                self.before = identity(os.fstat(fin.fileno()))
                size, done = self.before[2], 0
                while done < size and not self._cancel.is_set():
                    n = os.copy_file_range(fin.fileno(), fout.fileno(), min(PIECE, size - done))
                    if n == 0:
                        break
                    done += n
                self.after = identity(os.fstat(fin.fileno()))
                copied = done == size and not self._cancel.is_set()
        except OSError:
            pass  # e.g. no copy_file_range here: the conversion copies the shard itself
        finally:
            with _LOCK:
                if self.state == "copying":
                    self.state = "copied" if copied else "failed"
                if self.state != "copied":
                    self.file.unlink(missing_ok=True)
            self._done.set()

    def cancel(self) -> None:
        """Stop the copy (at the end of the current piece) and delete what it wrote."""
        with _LOCK:
            if self.state in ("copying", "copied"):
                self.state = "cancelled"
        self._cancel.set()
        self._done.wait()
        with _LOCK:
            if self.state != "adopted":
                self.file.unlink(missing_ok=True)


class Session:
    """The speculative copies of one command, in ``stage`` inside the output directory."""

    def __init__(self, stage: Path, created: list[Path]) -> None:
        self.stage = stage
        self.created = created  # directories made for the output (deepest last)
        self.copies: list[Speculation] = []

    def close(self, *, failed: bool) -> None:
        """Cancel and delete every copy not adopted, remove the staging directory, and, when the
        command failed, the output directories made for it if they are still empty."""
        for spec in self.copies:
            spec.cancel()
        with _LOCK:
            for spec in self.copies:
                if spec in _ACTIVE:
                    _ACTIVE.remove(spec)
        with contextlib.suppress(OSError):  # only our copies are in it (no shutil: start-up)
            for name in os.listdir(self.stage):
                (self.stage / name).unlink(missing_ok=True)
            self.stage.rmdir()
        if failed:
            _remove_empty(self.created)


_LOCK = threading.Lock()
_ACTIVE: list[Speculation] = []  # copies that may still be adopted
LAST: list[Session] = []  # the most recent session (inspected by tests)


def begin(
    sources: list[str], out: str, target: str, *, rules: str | None = None, overwrite: bool = False
) -> Session | None:
    """Start speculative copies for ``convert SOURCES --out OUT --target TARGET [--rules RULES]``
    when the job is plainly one local checkpoint into a local bundle not already there, and its
    rules (if any) transform nothing; else None.

    The caller has already excluded ``--link``, ``--runner beam`` and single-file outputs.
    """
    if not hasattr(os, "copy_file_range") or len(sources) != 1 or _remote(out):
        return None
    if not (os.path.isdir(target) or os.path.isfile(f"{target}.index") or target.endswith(".meta")):
        return None  # a model factory (or no target at all): maybe a Keras output
    try:
        if rules is not None and _may_transform(rules):
            return None
        prefix = _single_prefix(sources[0])
        if prefix is None:
            return None
        out_dir = Path(out)
        if out_dir.exists() and (
            not out_dir.is_dir()
            or out_dir.resolve() == prefix.parent.resolve()
            or (not overwrite and (out_dir / f"{prefix.name}.index").exists())
        ):
            return None  # the item fails or is skipped: nothing will be copied
        shards = [
            prefix.parent / name
            for name in os.listdir(prefix.parent)
            if name.startswith(f"{prefix.name}.data-")
        ]
        stats = [(p, p.stat()) for p in sorted(shards)]
        big = [(p, st) for p, st in stats if stat.S_ISREG(st.st_mode) and st.st_size >= MIN_SIZE]
        if not big:
            return None
        created = _make_dirs(out_dir)
    except (OSError, ValueError):
        return None
    stage = out_dir / f"{STAGE_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
    try:
        stage.mkdir()
    except OSError:
        _remove_empty(created)
        return None
    session = Session(stage, created)
    for shard, st in big:
        spec = Speculation(shard, stage / shard.name, (st.st_dev, st.st_ino))
        session.copies.append(spec)
        with _LOCK:
            _ACTIVE.append(spec)
        spec._thread.start()
    LAST[:] = [session]
    return session


def adopt(source: Path, dest: Path) -> bool:
    """Rename the speculative copy of ``source`` to ``dest`` when there is one, complete and made
    from this very file unchanged (waiting for it to end); False: the caller copies ``source``."""
    now = identity(os.stat(source))
    with _LOCK:
        found = [s for s in _ACTIVE if s.key == now[:2]]
    if not found:
        return False
    spec = found[0]
    spec._done.wait()
    now = identity(os.stat(source))
    with _LOCK:
        if spec.state != "copied" or not spec.before == spec.after == now:
            found = []
        else:
            try:
                os.rename(spec.file, dest)
            except OSError:  # e.g. another filesystem: copy as usual
                found = []
            else:
                spec.state = "adopted"
            if spec in _ACTIVE:
                _ACTIVE.remove(spec)
    if not found:
        spec.cancel()
        return False
    return True


def discard(keep: Iterable[Path] = ()) -> None:
    """Cancel and delete every speculative copy except those of the files ``keep`` (which the
    conversion is about to copy whole)."""
    wanted = set()
    for path in keep:
        with contextlib.suppress(OSError):
            wanted.add(identity(os.stat(path))[:2])
    with _LOCK:
        unused = [s for s in _ACTIVE if s.key not in wanted]
        for spec in unused:
            _ACTIVE.remove(spec)
    for spec in unused:
        spec.cancel()


def _may_transform(rules: str) -> bool:
    """Whether a rules file might transform tensors (then their shards are not copied whole)."""
    if rules.startswith("preset:") or _remote(rules):
        return True
    text = Path(rules).read_text(encoding="utf-8", errors="replace")
    return "transforms" in text or "presets" in text


def _remote(path: str) -> bool:
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.replace("+", "").replace(".", "").replace("-", "").isalnum()


def _single_prefix(src: str) -> Path | None:
    """The one checkpoint prefix ``src`` stands for, when that is plain to see; else None."""
    if _remote(src) or any(c in src for c in "*?["):
        return None
    path = Path(src)
    if not path.is_dir():
        return path if Path(f"{src}.index").is_file() else None
    state = path / "checkpoint"
    if not state.exists():
        indexes = [n for n in os.listdir(path) if n.endswith(".index")]
        return path / indexes[0][: -len(".index")] if len(indexes) == 1 else None
    names = set()
    for line in state.read_text(encoding="utf-8").splitlines():
        field, sep, value = line.strip().partition(":")
        value = value.strip()
        if not line.strip():
            continue
        if field not in ("model_checkpoint_path", "all_model_checkpoint_paths") or not sep:
            return None
        if len(value) < 2 or value[0] != '"' or value[-1] != '"' or "\\" in value:
            return None  # escapes, odd quoting: leave it to the real parser
        names.add(value[1:-1])
    if len(names) != 1:
        return None  # several steps (several items) or none
    name = names.pop()
    for candidate in (Path(name) if os.path.isabs(name) else path / name, path / Path(name).name):
        if Path(f"{candidate}.index").is_file():
            return candidate
    return None


def _make_dirs(out_dir: Path) -> list[Path]:
    """``mkdir -p out_dir``; return the directories made, outermost first (none on failure)."""
    missing: list[Path] = []
    probe = out_dir
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        _remove_empty(missing[::-1])
        raise
    return missing[::-1]


def _remove_empty(created: list[Path]) -> None:
    """Remove the directories ``created`` (outermost first), deepest first, while empty."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            if directory.exists():
                break  # not empty: the conversion made it its own
