"""Batch conversion as an Apache Beam pipeline: one source (a training run or one checkpoint) is
one unit of work, converted exactly as the local batch converts it.

Each unit runs :func:`ckptbridge.conversion._run.convert_batch` on a worker: outputs appear
atomically, a rerun skips what its fingerprint says is done (nothing is rewritten), a failed
checkpoint is reported in its item and the pipeline carries on. Sources that share an output
directory (several checkpoints into one directory) form one unit, so that one worker writes that
directory's ``checkpoint`` state file. In your own pipeline::

    import apache_beam as beam
    from ckptbridge.beam import ConvertCheckpoints

    with beam.Pipeline() as p:
        reports = (
            p
            | beam.Create(["s3://bucket/runs/a", "s3://bucket/runs/b"])
            | ConvertCheckpoints("s3://bucket/converted", target="s3://bucket/template/ckpt-1")
        )  # one ConversionReport dict per unit

or from the command line, ``ckptbridge convert 's3://bucket/runs/*/' --target T --out DIR
--runner beam -- --runner=DataflowRunner --project=...`` (:func:`run_beam`). Needs the ``beam``
extra (``pip install 'ckptbridge[beam]'``); the target is a path, URL or ``module:factory``
string, resolved on each worker.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

from ckptbridge._errors import CkptBridgeError, ConversionError
from ckptbridge.conversion._report import ConversionReport, ItemReport
from ckptbridge.conversion._run import (
    convert_batch,
    expand_sources,
    out_dir_for,
    source_directories,
)
from ckptbridge.format._storage import as_location

try:
    import apache_beam as beam
except ImportError:  # pragma: no cover - exercised where Beam is not installed
    raise ImportError("ckptbridge.beam needs Apache Beam: pip install 'ckptbridge[beam]'") from None

__all__ = ["ConvertCheckpoints", "merge_reports", "run_beam"]


class _ConvertUnit(beam.DoFn):  # type: ignore[misc]
    """Convert one unit ``(output dir, [sources])``; yield its ConversionReport as a dict."""

    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__()
        self.settings = settings
        self._target: Any = None
        self._rules: Any = None

    def setup(self) -> None:
        from ckptbridge.conversion._target import resolve_target
        from ckptbridge.rules import load_rules

        s = self.settings
        self._rules = load_rules(s["rules"])
        self._target = resolve_target(s["target"], s["to"])

    def teardown(self) -> None:
        if self._target is not None:
            self._target.close()

    def process(self, unit: tuple[str, Sequence[str]]) -> Iterator[dict[str, Any]]:
        out_dir, sources = unit
        s = self.settings
        ordered = sorted(sources, key=lambda src: s["order"].get(src, len(s["order"])))
        try:
            report = convert_batch(
                ordered, as_location(s["out_dir"]), self._target, self._rules,
                nested=s["nested"], source_dirs={as_location(d) for d in s["source_dirs"]},
                overwrite=s["overwrite"], link=s["link"], verify=s["verify"], progress=False,
            )  # fmt: skip
        except CkptBridgeError as exc:  # a source that cannot even be listed: its items fail
            report = ConversionReport(output_dir=s["out_dir"], to=self._target.to)
            report.items = [
                ItemReport(source=src, output=out_dir, status="failed", error=str(exc))
                for src in ordered
            ]
        data = report.to_dict()
        data["order"] = min((s["order"].get(src, 0) for src in ordered), default=0)
        yield data


class ConvertCheckpoints(beam.PTransform):  # type: ignore[misc]
    """``PCollection[str]`` of sources -> ``PCollection[dict]``: one ConversionReport dict per
    unit of work (see the module docstring); :func:`merge_reports` joins them into one report.

    ``nested`` (default: True) puts each directory source in ``out_dir/<its name>``, as the local
    batch does for several sources; ``source_dirs`` lists every source directory of the batch
    (none may be an output directory; default: each unit's own).
    """

    def __init__(
        self,
        out_dir: str,
        *,
        target: str,
        rules: Any = None,
        to: str | None = None,
        overwrite: bool = False,
        link: bool = False,
        verify: bool = False,
        nested: bool = True,
        order: Sequence[str] = (),
        source_dirs: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if not isinstance(target, str):
            raise ConversionError(
                f"ConvertCheckpoints target must be a path, URL or 'module:factory' string that "
                f"every worker resolves, got {type(target).__name__}"
            )
        self.settings = {
            "out_dir": str(as_location(out_dir)), "target": target, "rules": rules, "to": to,
            "overwrite": overwrite, "link": link, "verify": verify, "nested": nested,
            "order": {src: i for i, src in enumerate(order)}, "source_dirs": list(source_dirs),
        }  # fmt: skip

    def expand(self, sources: Any) -> Any:
        out_root = as_location(self.settings["out_dir"])
        nested = self.settings["nested"]

        def keyed(src: str) -> tuple[str, str]:
            return str(out_dir_for(as_location(src), out_root, nested)), src

        return (
            sources
            | "Key by output directory" >> beam.Map(keyed)
            | "One unit per output directory" >> beam.GroupByKey()
            | "Convert" >> beam.ParDo(_ConvertUnit(self.settings))
        )


def merge_reports(reports: Sequence[dict[str, Any]], out_dir: str, to: str) -> ConversionReport:
    """Join the per-unit report dicts of :class:`ConvertCheckpoints` into one report, items in
    the order of the sources.

    Example: ``merge_reports(results, "s3://bucket/converted", "tf2").counts()``.
    """
    merged = ConversionReport(output_dir=out_dir, to=to)
    for data in sorted(reports, key=lambda d: int(d.get("order", 0))):
        merged.items += [ItemReport(**item) for item in data["items"]]
        merged.warnings += list(data["warnings"])
        merged.state_file = data["state_file"] or merged.state_file
    return merged


def run_beam(
    sources: Sequence[str],
    dst_dir: str,
    *,
    target: str,
    rules: Any = None,
    to: str | None = None,
    overwrite: bool = False,
    link: bool = False,
    verify: bool = False,
    pipeline_args: Sequence[str] = (),
) -> ConversionReport:
    """Run the batch as a Beam pipeline (DirectRunner unless ``pipeline_args`` name another) and
    return the same :class:`ConversionReport` as :func:`ckptbridge.convert`.

    The joined report travels back through a hidden object in ``dst_dir``
    (``.ckptbridge-beam-<hex>.json``, deleted after reading), so ``dst_dir`` must be reachable by
    the workers and the launcher alike (a bucket, for a distributed runner).

    Example::

        report = run_beam(["s3://b/runs/*/"], "s3://b/out", target="s3://b/template/ckpt-1")
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    from ckptbridge.conversion._target import resolve_target

    resolved = resolve_target(target, to)  # fail fast, in one line, before any worker starts
    to_kind = resolved.to
    resolved.close()
    expanded = expand_sources(sources)
    out_root = as_location(dst_dir)
    out_root.mkdir(parents=True, exist_ok=True)
    result = out_root / f".ckptbridge-beam-{os.getpid()}-{secrets.token_hex(6)}.json"
    convert = ConvertCheckpoints(
        str(out_root), target=target, rules=rules, to=to, overwrite=overwrite, link=link,
        verify=verify, nested=len(expanded) > 1, order=expanded,
        source_dirs=[str(d) for d in source_directories(expanded)],
    )  # fmt: skip
    result_url, out_text = str(result), str(out_root)

    def write(reports: list[dict[str, Any]]) -> None:
        merged = merge_reports(reports, out_text, to_kind)
        as_location(result_url).write_text(merged.to_json())

    options = PipelineOptions(list(pipeline_args))
    with beam.Pipeline(options=options) as pipeline:
        _ = (
            pipeline
            | "Sources" >> beam.Create(expanded)
            | "Spread" >> beam.Reshuffle()
            | convert
            | "All reports" >> beam.combiners.ToList()
            | "Write report" >> beam.Map(write)
        )
    try:
        data = json.loads(result.read_text())
    finally:
        result.unlink(missing_ok=True)
    report = ConversionReport(output_dir=data["output_dir"], to=data["to"])
    report.items = [ItemReport(**item) for item in data["items"]]
    report.warnings, report.state_file = list(data["warnings"]), data["state_file"]
    return report
