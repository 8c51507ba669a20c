"""Convert one source checkpoint into one output, atomically, or skip it when already done."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptbridge._errors import CkptBridgeError, ConversionError, OutputExistsError
from ckptbridge._progress import advance, set_total
from ckptbridge.conversion import _stage
from ckptbridge.conversion._actions import ActionList, plan_actions, step_from_name
from ckptbridge.conversion._report import ItemReport
from ckptbridge.conversion._target import Target
from ckptbridge.conversion._write import INT_FORMATS, verify_output
from ckptbridge.format._storage import Location, iter_range
from ckptbridge.format._types import OBJECT_GRAPH_KEY

if TYPE_CHECKING:
    from ckptbridge.engine._plan import MappingPlan
    from ckptbridge.format import Checkpoint
    from ckptbridge.format._types import RawLocation
    from ckptbridge.rules import Rules

FORMAT_VERSION = 1


SINGLE_FILE = {"keras": ".weights.h5", "safetensors": ".safetensors"}  # outputs that are one file


def output_name(source: Location, to: str) -> str:
    """File name of the output for ``source``: the same prefix name (``.weights.h5`` for Keras,
    ``.safetensors`` for safetensors); a Keras source loses its ``.weights.h5``/``.keras``.

    >>> output_name(Path("run/model.ckpt-5"), "keras")
    'model.ckpt-5.weights.h5'
    """
    stem = source.name
    for suffix in (".weights.h5", ".keras"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    return stem + SINGLE_FILE.get(to, "")


def _visible_file(out_dir: Location, name: str, to: str) -> Location:
    return out_dir / (name if to in SINGLE_FILE else f"{name}.index")


def convert_item(
    source: Location,
    out_dir: Location,
    target: Target,
    rules: Rules | None,
    *,
    overwrite: bool,
    link: bool,
    verify: bool,
) -> ItemReport:
    """Convert the checkpoint at prefix ``source`` into ``out_dir``; never raises for the item.

    Example: ``convert_item(Path("run/model.ckpt-5"), Path("out"), target, None, ...)``.
    """
    name = output_name(source, target.to)
    report = ItemReport(source=str(source), output=str(out_dir / name))
    try:
        stamp = _source_stamp(source)
        fingerprint = {
            "version": FORMAT_VERSION,
            "source": str(source.resolve()),
            "source_files": stamp,
            "target": target.identity,
            "to": target.to,
            "rules": rules.model_dump_json() if rules is not None else None,
        }
        if _visible_file(out_dir, name, target.to).exists():
            if not overwrite and _stage.read_fingerprint(out_dir, name) == fingerprint:
                report.status = "skipped"
                report.reason = (
                    "already converted: same source files, target, rules and output kind "
                    f"(recorded in {_stage.fingerprint_path(out_dir, name).name})"
                )
                return report
            if not overwrite:
                raise OutputExistsError(
                    f"{_visible_file(out_dir, name, target.to)} already exists and was not written "
                    f"by this same conversion of {str(source)!r}. Pass overwrite=True "
                    "(--overwrite) to replace it, or choose another output directory"
                )
        _convert(
            source, out_dir, name, target, rules, fingerprint, report, link=link, verify=verify
        )
    except CkptBridgeError as exc:
        report.status, report.error = "failed", str(exc)
    except Exception as exc:  # a batch carries on past any failure of one item, and reports it
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
    return report


def _source_stamp(source: Location) -> list[list[Any]]:
    siblings: list[Location] = list(source.parent.iterdir())
    files = [
        p for p in siblings if p.name.startswith(f"{source.name}.") and not p.name.endswith(".meta")
    ]
    if source.is_file():
        files.append(source)
    return _stage.source_stamp(files)


def _convert(
    source: Location,
    out_dir: Location,
    name: str,
    target: Target,
    rules: Rules | None,
    fingerprint: dict[str, Any],
    report: ItemReport,
    *,
    link: bool,
    verify: bool,
) -> None:
    from ckptbridge.engine import derive
    from ckptbridge.format import open_checkpoint
    from ckptbridge.sides._checkpoint import checkpoint_specs

    with open_checkpoint(source) as src:
        source_specs = checkpoint_specs(src)  # TF2 names that are paths: src.read resolves them
        plan = derive(
            source_specs, target.specs, rules, source_label=str(source), target_label=target.label
        )
        report.matched, report.unused = len(plan.matches), len(plan.unused)
        report.auxiliary = len(plan.auxiliary)
        report.notes = list(plan.notes)
        actions = plan_actions(
            plan, target.specs, rules, has_template=target.template is not None,
            source_label=str(source), sources={s.name: s for s in source_specs}, keys=target.keys,
        )  # fmt: skip
        report.dropped, report.kept = list(actions.dropped), list(actions.kept)
        report.missing = len(actions.dropped)
        step = _source_step(src, plan, source)
        set_total(sum(_nbytes(a) for a in actions.actions))
        stage = _stage.new_stage(out_dir)
        try:
            if target.to == "keras":
                files = _write_keras(src, actions, target, stage, name, step, verify=verify)
            elif target.to == "safetensors":
                files = _write_safetensors(src, plan, actions, target, stage, name, report,
                                           verify=verify)  # fmt: skip
            else:
                files = _write_bundle(
                    src, actions, target, stage, name, step, report, link=link, verify=verify
                )
            fp = _stage.write_fingerprint(stage, name, fingerprint)
            if target.to in SINGLE_FILE:  # one file: the rename replaces it atomically
                _stage.publish(stage, out_dir, [*files, fp], last=files[-1])
            else:
                _stage.publish_over(stage, out_dir, name, [*files, fp], last=files[-1])
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    report.verified = verify


def _nbytes(action: Any) -> int:
    """The bytes ``action`` writes (strings count as none: their size is not known up front)."""
    import math

    from ckptbridge.format._dtypes import itemsize

    if action.dtype == "string":
        return 0
    return int(math.prod(action.shape)) * itemsize(action.dtype)


def _source_step(src: Checkpoint, plan: MappingPlan, source: Location) -> int | None:
    """The training step of the source: its global_step entry, else the number in its name."""
    for aux in plan.auxiliary:
        if aux.kind == "global_step" and aux.name in src.entries:
            loc = src.raw_location(aux.name)
            if loc is not None and loc.dtype in INT_FORMATS:  # read without numpy
                found = _raw_int(loc, aux.name)
                if found is not None:
                    return found
                continue
            value = src.read(aux.name)
            if value.size == 1 and value.dtype.kind in "iu":
                return int(value.reshape(-1)[0])
    return step_from_name(source.name)


def _raw_int(loc: RawLocation, name: str) -> int | None:
    """The one integer stored at ``loc`` (CRC checked), or None when it holds several or none."""
    import struct

    import google_crc32c

    fmt = INT_FORMATS[loc.dtype]
    if loc.size != struct.calcsize(fmt):
        return None
    data = b"".join(iter_range(loc.path, loc.offset, loc.size, loc.size))
    loc.check_read(google_crc32c.value(data), len(data), name)
    return int(struct.unpack(fmt, data)[0])


def _write_bundle(
    src: Checkpoint,
    actions: ActionList,
    target: Target,
    stage: Path,
    name: str,
    step: int | None,
    report: ItemReport,
    *,
    link: bool,
    verify: bool,
) -> list[str]:
    """Write the bundle into ``stage``; return its file names, the index last."""
    from ckptbridge.format import open_checkpoint

    template = open_checkpoint(target.template) if target.template is not None else None
    try:
        graph = _object_graph(template, actions) if target.to == "tf2" else None
        from ckptbridge.conversion._link import write_linked

        stats = write_linked(
            stage / name, src, actions.actions, template, step, graph, target.partitions,
            mode="link" if link else "copy",
        )  # fmt: skip
        report.bytes_copied, report.bytes_transformed = stats.bytes_copied, stats.bytes_transformed
        report.bytes_linked = stats.bytes_linked
        if verify:
            verify_output(stage / name, src, actions.actions, template=template, step=step)
    finally:
        if template is not None:
            template.close()
    files = sorted(p.name for p in stage.iterdir() if p.name.startswith(f"{name}."))
    index = f"{name}.index"
    if index not in files:
        raise ConversionError(f"writing {name!r} produced no index file in {stage}")
    return [f for f in files if f != index] + [index]


def _object_graph(template: Checkpoint | None, actions: ActionList) -> bytes:
    """The template's object graph, pruned of the entries left out of the output."""
    from ckptbridge.conversion._objgraph import prune_object_graph

    if template is None or OBJECT_GRAPH_KEY not in template.entries:
        raise ConversionError("the TF2 template has no _CHECKPOINTABLE_OBJECT_GRAPH entry")
    return prune_object_graph(template.read_strings(OBJECT_GRAPH_KEY)[0], set(actions.dropped))


def _write_keras(
    src: Checkpoint,
    actions: ActionList,
    target: Target,
    stage: Path,
    name: str,
    step: int | None,
    *,
    verify: bool = False,
) -> list[str]:
    from ckptbridge.conversion._write import expected_value
    from ckptbridge.sides._live import assign_values, check_values

    live = target.live
    assert live is not None  # a keras output always has a model target
    values = {
        _spec_name(target, a.key): expected_value(src, a, None, step)
        for a in actions.actions
        if a.kind == "match"
    }
    check_values(live, values)
    assign_values(live, values)
    target.model.save_weights(str(stage / name))
    advance(sum(int(getattr(v, "nbytes", 0)) for v in values.values()))
    if verify:
        _verify_keras(target, stage / name, values)
    return [name]


def _verify_keras(target: Target, path: Path, values: dict[str, Any]) -> None:
    """Clear the assigned variables, load ``path`` back, and compare every value bit for bit."""
    import numpy as np

    from ckptbridge.sides._live import assign_values

    live = target.live
    assert live is not None  # a keras output always has a model target
    assign_values(live, {k: np.zeros_like(np.asarray(v)) for k, v in values.items()})
    target.model.load_weights(str(path))
    wrong = [
        key
        for key, value in values.items()
        if np.asarray(live.variables[key]).tobytes() != np.asarray(value).tobytes()
    ]
    assign_values(live, values)
    if wrong:
        raise ConversionError(
            f"verify: {len(wrong)} variable(s) read back from {path.name} differ from the values "
            f"written: {', '.join(wrong[:5])}. The model's layers do not save these variables in "
            ".weights.h5; convert with to='tf2' instead"
        )


def _write_safetensors(
    src: Any,
    plan: Any,
    actions: ActionList,
    target: Target,
    stage: Path,
    name: str,
    report: ItemReport,
    *,
    verify: bool,
) -> list[str]:
    """The plan's matches as one safetensors file, tensors named by the target's variable paths."""
    from ckptbridge.conversion._safetensors import plan_fingerprint, tensor_name, write_safetensors

    weights = {id(m) for m in plan.matches}
    tensors = [
        (tensor_name(a.match.target), a)
        for a in actions.actions
        if a.kind == "match" and a.match is not None and id(a.match) in weights
    ]
    metadata = {
        "format": "pt",  # what transformers' loaders expect; the values are framework-neutral
        "ckptbridge.source": str(src.prefix),
        "ckptbridge.target": target.label,
        "ckptbridge.plan_sha256": plan_fingerprint(plan),
    }
    stats = write_safetensors(stage / name, src, tensors, metadata, progress=advance)
    report.bytes_copied, report.bytes_transformed = stats.bytes_copied, stats.bytes_transformed
    if verify:
        _verify_safetensors(stage / name, src, tensors)
    return [name]


def _verify_safetensors(path: Path, src: Any, tensors: list[tuple[str, Any]]) -> None:
    """Re-read ``path`` (header checked, as the safetensors library checks it) and compare every
    tensor bit for bit; the ``safetensors`` package is not needed."""
    import numpy as np

    from ckptbridge.conversion._write import expected_value
    from ckptbridge.format import open_checkpoint

    with open_checkpoint(path) as handle:
        for tname, action in tensors:
            if tname not in handle.entries:
                raise ConversionError(f"verify: {tname!r} is missing from {path.name}")
            got, want = handle.read(tname), expected_value(src, action, None, None)
            if got.shape != want.shape or got.tobytes() != np.ascontiguousarray(want).tobytes():
                raise ConversionError(f"verify: {tname!r} in {path.name} differs from its source")


def _spec_name(target: Target, key: str) -> str:
    for spec in target.specs:
        if spec.name == key or spec.name == f"{key}:0":
            return spec.name
    return key
