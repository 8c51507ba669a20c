"""The conversion driver: sources (prefixes or training directories) -> items -> outputs + state.

``src`` a prefix converts that checkpoint; ``src`` a directory converts every step its
``checkpoint`` state file lists (every prefix in it when it has none), in the same order, and the
output directory's state file names the same current step. Items run one after another, or in a
thread pool (``jobs``); a failed item is reported and the batch carries on.

Sources and the output directory may be URLs (``s3://bucket/runs/exp1``); a source with glob
characters that names nothing as written is expanded (``s3://bucket/runs/*/``, ``runs/exp*``).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from ckptbridge._errors import CheckpointNotFoundError, ConversionError
from ckptbridge.conversion import _stage
from ckptbridge.conversion._item import SINGLE_FILE, convert_item, output_name
from ckptbridge.conversion._report import ConversionReport, ItemReport
from ckptbridge.conversion._target import Target, resolve_target
from ckptbridge.engine._names import natural_key
from ckptbridge.format._storage import Location, as_location, glob_locations, is_url
from ckptbridge.format._types import KERAS_SUFFIXES

if TYPE_CHECKING:
    from ckptbridge.rules import Rules, RulesLike
    from ckptbridge.sides._target import TargetLike


_GLOB = re.compile(r"[*?\[]")


def _by_name(path: Location) -> tuple[tuple[int, int | str], ...]:
    return natural_key(path.name)


class SourceSet(NamedTuple):
    """The checkpoints of one ``src``, in order, and which of them is current (or None)."""

    prefixes: tuple[Location, ...]
    current: Location | None
    warnings: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()  # entries of the state file that are not on disk


def _exists(prefix: Location) -> bool:
    return prefix.with_name(f"{prefix.name}.index").is_file() or prefix.is_file()


def expand_sources(sources: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Each source as given, or, when it has glob characters and names nothing as written, the
    paths it matches (sorted; a trailing ``/`` keeps only directories).

    Example: ``expand_sources(["s3://bucket/runs/*/"])`` -> ``["s3://bucket/runs/a", ...]``.
    """
    out: list[str] = []
    for source in sources:
        text = os.fspath(source)
        if not _GLOB.search(text) or as_location(text).exists():
            out.append(text)
            continue
        found = glob_locations(text)
        if not found:
            raise CheckpointNotFoundError(
                f"source pattern {text!r} matches nothing. Check the pattern, or quote it so "
                "that the shell does not expand it"
            )
        out.extend(str(p) for p in found)
    return out


def list_sources(src: str | os.PathLike[str]) -> SourceSet:
    """The checkpoints ``src`` stands for (see the module docstring).

    Example: ``list_sources("runs/exp1").prefixes`` -> ``(runs/exp1/model.ckpt-100, ...)``.
    """
    path = as_location(src)
    if not path.is_dir():
        from ckptbridge.format import resolve_checkpoint

        prefix, warnings = resolve_checkpoint(path)
        return SourceSet((prefix,), prefix, tuple(warnings))
    from ckptbridge.format import read_state_file

    state = read_state_file(path)
    absent: list[str] = []
    if state is not None:
        listed = [*state.all_model_checkpoint_paths]
        if state.model_checkpoint_path and state.model_checkpoint_path not in listed:
            listed.append(state.model_checkpoint_path)
        prefixes: list[Location] = []
        for name in listed:
            found = _locate(path, name)
            if found is None:
                absent.append(f"{path}/checkpoint: {name}")
            elif found not in prefixes:
                prefixes.append(found)
        current = (
            _locate(path, state.model_checkpoint_path) if state.model_checkpoint_path else None
        )
        if prefixes:
            return SourceSet(tuple(prefixes), current or prefixes[-1], (), tuple(absent))
    found_all = sorted((p.with_suffix("") for p in path.glob("*.index")), key=_by_name)
    if not found_all:
        found_all = _v1_files(path)
    if not found_all:
        found_all = sorted(
            (
                p
                for p in list[Location](path.iterdir())
                if p.is_file() and p.name.endswith(KERAS_SUFFIXES)
            ),
            key=_by_name,
        )
    notes: tuple[str, ...] = ()
    if not found_all:
        from ckptbridge.format._resolve import LOOKS_LIKE, saved_model_variables

        saved = saved_model_variables(path)
        if saved is None:
            raise CheckpointNotFoundError(
                f"no checkpoint in directory {str(path)!r}: expected a 'checkpoint' state file, "
                f"<prefix>.index files or a SavedModel's variables/. {LOOKS_LIKE}"
            )
        found_all = [saved]
        notes = (f"{path} is a SavedModel directory: converting its variables bundle {saved}",)
    return SourceSet(tuple(found_all), found_all[-1], notes, tuple(absent))


def _v1_files(directory: Location) -> list[Location]:
    """The V1 single-file checkpoints of a directory (LevelDB tables that are not indexes)."""
    from ckptbridge.format._resolve import has_table_magic

    files = [
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.endswith(".index") and has_table_magic(p)
    ]
    return sorted(files, key=_by_name)


def _locate(directory: Location, name: str) -> Location | None:
    """A state-file entry as a prefix that exists: as written, else its basename beside the file."""
    candidate = as_location(name) if os.path.isabs(name) or is_url(name) else directory / name
    if _exists(candidate):
        return candidate
    beside = directory / PurePosixPath(name.replace("\\", "/")).name
    return beside if _exists(beside) else None


def run_conversion(
    sources: Sequence[str | os.PathLike[str]],
    dst_dir: str | os.PathLike[str],
    *,
    target: TargetLike,
    rules: RulesLike = None,
    to: str | None = None,
    overwrite: bool = False,
    link: bool = False,
    verify: bool = False,
    jobs: int = 1,
    progress: bool | None = None,
) -> ConversionReport:
    """Convert every source into ``dst_dir`` (each directory into its own sub-directory when
    there are several sources); the engine behind :func:`ckptbridge.convert` and the CLI.
    """
    out_root = as_location(dst_dir)
    if out_root.exists() and not out_root.is_dir():
        raise ConversionError(
            f"output {str(out_root)!r} is a file: --out/dst_dir names a directory (created when "
            "absent). Pass a directory path"
        )
    loaded = _load_rules(rules)
    resolved = resolve_target(target, to)
    try:
        expanded = expand_sources(sources)
        return convert_batch(
            expanded, out_root, resolved, loaded, nested=len(expanded) > 1,
            source_dirs=source_directories(expanded), overwrite=overwrite, link=link,
            verify=verify, jobs=jobs, progress=progress,
        )  # fmt: skip
    finally:
        resolved.close()


def convert_batch(
    sources: Sequence[str],
    out_root: Location,
    target: Target,
    rules: Rules | None,
    *,
    nested: bool,
    source_dirs: set[Location],
    overwrite: bool = False,
    link: bool = False,
    verify: bool = False,
    jobs: int = 1,
    progress: bool | None = None,
) -> ConversionReport:
    """Convert ``sources`` (already expanded) with a resolved target and rules: the body of
    :func:`run_conversion`, and one unit of work of a Beam pipeline (:mod:`ckptbridge.beam`).

    ``nested``: each directory source goes into ``out_root/<its name>`` (several sources);
    ``source_dirs``: the directories of every source of the batch, which no output may be.
    """
    groups = [(list_sources(s), out_dir_for(as_location(s), out_root, nested)) for s in sources]
    report = ConversionReport(output_dir=str(out_root), to=target.to)
    for sset, _ in groups:
        report.warnings.extend(sset.warnings)
        report.absent.extend(sset.absent)
    work = [(p, out) for sset, out in groups for p in sset.prefixes]
    for out in {out for _, out in groups}:
        out.mkdir(parents=True, exist_ok=True)
        _stage.clean_stale_stages(out)
    items = _run_items(work, target, rules, overwrite, link, verify, jobs, progress, source_dirs)
    report.items.extend(items)
    for sset, out in groups:
        state = _update_state(sset, out, target.to, items)
        if state is not None:
            report.state_file = str(state)
    return report


def _load_rules(rules: RulesLike) -> Rules | None:
    """Validated rules, or None when there are none: then Pydantic is never imported."""
    if rules is None:
        return None
    from ckptbridge.rules import load_rules

    return load_rules(rules)


def plan_conversion(
    src: str | os.PathLike[str], target: TargetLike, rules: RulesLike = None, to: str | None = None
) -> Any:
    """The plan :func:`run_conversion` follows for ``src`` (its current step, for a directory).

    The target is described exactly as the conversion sees it, so ``plan.to_rules()`` reproduces
    the conversion. Example: ``plan_conversion("old/model.ckpt-5", "template/ckpt-1").complete``.
    """
    from ckptbridge.engine import derive
    from ckptbridge.format import open_checkpoint
    from ckptbridge.sides._checkpoint import checkpoint_specs

    loaded = _load_rules(rules)
    resolved = resolve_target(target, to)
    try:
        sset = list_sources(src)
        prefix = sset.current or sset.prefixes[-1]
        with open_checkpoint(prefix) as ckpt:
            specs = checkpoint_specs(ckpt)
        return derive(
            specs, resolved.specs, loaded, source_label=str(prefix), target_label=resolved.label
        )
    finally:
        resolved.close()


def source_directories(sources: Sequence[str]) -> set[Location]:
    """The directories of the sources: an output directory must be none of them."""
    found: set[Location] = set()
    for path in map(as_location, sources):
        found.add((path if path.is_dir() else path.parent).resolve())
    return found


def out_dir_for(src: Location, out_root: Location, nested: bool) -> Location:
    """Where the outputs of source ``src`` go: ``out_root``, or ``out_root/<name>`` for a
    directory among several sources."""
    return out_root / src.name if nested and src.is_dir() else out_root


def _run_items(
    work: list[tuple[Location, Location]],
    target: Target,
    rules: Rules | None,
    overwrite: bool,
    link: bool,
    verify: bool,
    jobs: int,
    progress: bool | None,
    source_dirs: set[Location],
) -> list[ItemReport]:
    lock = threading.Lock() if target.to == "keras" else None  # one model, assigned per item

    clashes = _clashing_outputs(work, target.to)

    def one(job: tuple[Location, Location]) -> ItemReport:
        prefix, out = job
        name = output_name(prefix, target.to)
        error = None
        if out.resolve() == prefix.parent.resolve() and name == prefix.name:
            error = ConversionError(f"output {out / name} would replace its own source {prefix}")
        elif out.resolve() in (prefix.parent.resolve(), *source_dirs):
            error = ConversionError(
                f"output directory {out} is the directory of the source {prefix}: its "
                "'checkpoint' state file would be replaced. Choose another output directory"
            )
        elif job in clashes:
            error = ConversionError(
                f"output {out / name} is also the output of {clashes[job]}; convert sources "
                "with the same checkpoint name into different output directories"
            )
        if error is not None:
            return ItemReport(str(prefix), str(out / name), status="failed", error=str(error))
        kw = {"overwrite": overwrite, "link": link, "verify": verify}
        if lock is None:
            return convert_item(prefix, out, target, rules, **kw)
        with lock:
            return convert_item(prefix, out, target, rules, **kw)

    if len(work) == 1:  # one checkpoint: a byte bar for it (tensor by tensor) instead
        from ckptbridge._progress import byte_bar, wanted

        with byte_bar(f"convert {work[0][0].name}", wanted(progress)):
            return [one(work[0])]
    bar = _progress_bar(len(work), progress)
    try:
        if jobs <= 1 or len(work) < 2:
            results = []
            for job in work:
                results.append(one(job))
                bar.update(1)
            return results
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(one, job) for job in work]
            results = []
            for fut in futures:
                results.append(fut.result())
                bar.update(1)
            return results
    finally:
        bar.close()


def _clashing_outputs(
    work: list[tuple[Location, Location]], to: str
) -> dict[tuple[Location, Location], Location]:
    """Items whose output path an earlier item of the batch already claims -> that item's source."""
    claimed: dict[Location, Location] = {}
    clashes: dict[tuple[Location, Location], Location] = {}
    for prefix, out in work:
        dest = (out / output_name(prefix, to)).resolve()
        if dest in claimed and claimed[dest] != prefix:
            clashes[(prefix, out)] = claimed[dest]
        claimed.setdefault(dest, prefix)
    return clashes


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool | None) -> Any:
    """A tqdm bar on a terminal (stderr) for batches; nothing (and no tqdm import) otherwise."""
    show = sys.stderr.isatty() if progress is None else progress
    if not show or total < 2:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="ckpt", file=sys.stderr)


def _update_state(
    sset: SourceSet, out: Location, to: str, items: list[ItemReport]
) -> Location | None:
    """Write ``out/checkpoint`` naming the outputs (source order, same current), when it changes.

    Single-file outputs (Keras ``.weights.h5``, ``.safetensors``) get none: TensorFlow's
    ``latest_checkpoint`` would return a file it cannot read.
    """
    from ckptbridge.format import read_state_file, write_state_file

    if to in SINGLE_FILE:
        return None
    done = {it.source: PurePosixPath(it.output).name for it in items if it.status != "failed"}
    names = [done[str(p)] for p in sset.prefixes if str(p) in done]
    if not names:
        return None
    current = done.get(str(sset.current)) if sset.current is not None else None
    state = read_state_file(out) if (out / "checkpoint").exists() else None
    old = (
        [PurePosixPath(p).name for p in state.all_model_checkpoint_paths]
        if state is not None
        else []
    )
    keep = [n for n in old if n not in names and _exists(out / n)]
    wanted_all = [*keep, *names]
    wanted_current = current or names[-1]
    if (
        state is not None
        and old == wanted_all
        and PurePosixPath(state.model_checkpoint_path).name == wanted_current
    ):
        return out / "checkpoint"
    return write_state_file(out, wanted_current, wanted_all)
