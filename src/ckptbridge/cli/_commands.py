"""The ``plan``, ``convert``, ``diff``, ``verify`` and ``schema`` subcommands of the ``ckptbridge`` CLI.

Each command is an ``add_<cmd>(subparsers)`` that declares it and a ``run_<cmd>(args) -> int``
that runs it; the main parser (:mod:`ckptbridge.cli._main`) wires them in and turns any
``CkptBridgeError`` into one line on stderr and exit code 2. Exit codes: 0 success; 1 an
incomplete plan, or some converted items failed; 2 bad usage or unusable input.

None of these needs TensorFlow. A model target (``package.module:factory``) on Keras's TensorFlow
backend, or ``--to keras``, imports it first and quietly when it is installed, so that its start-up
notices do not reach the terminal; a Keras 3 model on JAX, PyTorch or NumPy never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptbridge._errors import ConversionError, RulesError
from ckptbridge._optional import has_module, import_tensorflow

if TYPE_CHECKING:
    from ckptbridge._progress import ByteBar
    from ckptbridge.rules import Rules

__all__ = [
    "add_convert",
    "add_diff",
    "add_plan",
    "add_schema",
    "add_verify",
    "positive",
    "progress_bar",
    "run_convert",
    "run_diff",
    "run_plan",
    "run_schema",
    "run_verify",
]


def _target_arg(value: str) -> Any:
    """A CLI target: a checkpoint path or ``.meta`` file as given, or a model from a factory."""
    from ckptbridge.sides import is_factory_spec, load_factory

    if is_factory_spec(value):
        _quiet_tensorflow()
        return load_factory(value)
    return value


def _quiet_tensorflow() -> None:
    """Import TensorFlow silently before a model factory or Keras does it noisily: only when it
    is installed and Keras would use it (``KERAS_BACKEND`` unset or ``tensorflow``)."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow" and has_module("tensorflow"):
        import_tensorflow("a model target")


def _print_report(report: Any, as_json: bool) -> None:
    sys.stdout.write((report.to_json() if as_json else str(report)) + "\n")


# -- plan ------------------------------------------------------------------------------------


def add_plan(subparsers: Any) -> None:
    """Declare ``ckptbridge plan SRC --target T [--rules F] [--emit-rules F] [--json]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "plan",
        help="show how a checkpoint's entries map onto a target",
        description="Derive the mapping from SRC onto a target (template checkpoint, .meta file "
        "or package.module:factory model). Exit 0 when every target variable is matched, 1 if not.",
    )
    p.add_argument("src", metavar="SRC", help="checkpoint prefix, directory or V1 file")
    p.add_argument(
        "--target", "-t", required=True, metavar="T", help="template, .meta or module:factory"
    )
    p.add_argument("--rules", metavar="F", help="rules file (YAML/TOML/JSON) or preset:NAME")
    p.add_argument(
        "--emit-rules", metavar="F", help="write rules that reproduce this plan (.yaml/.json)"
    )
    p.add_argument(
        "--to", choices=("tf1", "tf2", "keras", "safetensors"), help="output format, as for convert"
    )
    p.add_argument("--json", action="store_true", help="print the plan as one JSON document")


def run_plan(args: argparse.Namespace) -> int:
    """Run ``plan``: print the plan; 0 when complete, 1 when some target variable is unmatched.

    Example: ``ckptbridge plan old/model.ckpt-1000 --target new/ckpt-1 --emit-rules rules.yaml``.
    """
    from ckptbridge.conversion import plan_conversion
    from ckptbridge.format._gc import collector_paused

    target = _target_arg(args.target)  # a factory's model is built with the collector on
    # Reading both sides, deriving and writing make 100,000s of small acyclic objects: one pause
    # for the command instead of a generational pass over them after each step (~40 at 20k).
    with collector_paused():
        plan = plan_conversion(args.src, target, args.rules, args.to)
        if args.emit_rules:
            write_rules(plan.to_rules(), Path(args.emit_rules))
        if args.json:  # one line, written without a dict per match: 12 MB plans quickly
            sys.stdout.write(plan.to_json(indent=None) + "\n")
        else:
            _print_report(plan, False)
        return 0 if plan.complete else 1


def write_rules(rules: Rules, path: Path) -> None:
    """Write a Rules document as YAML (``.yaml``/``.yml``) or JSON (``.json``), atomically.

    Example: ``write_rules(plan.to_rules(), Path("rules.yaml"))``.
    """
    data = rules.model_dump(mode="json", exclude_defaults=True)
    data.setdefault("version", 1)
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    elif suffix == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        raise RulesError(
            f"--emit-rules {str(path)!r}: unknown extension {suffix or '(none)'!r}; "
            "expected .yaml, .yml or .json"
        )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# -- convert ---------------------------------------------------------------------------------


def add_convert(subparsers: Any) -> None:
    """Declare ``ckptbridge convert SRC... --target T --out DIR [options] [-- BEAM_OPTIONS]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "convert",
        help="re-save checkpoints in the target's format",
        description="Convert each SRC (a prefix, or a directory: every step of its state file) "
        "into DIR. A batch carries on past failures: exit 1 if some items failed. SRC and DIR "
        "may be URLs (s3://, gs://, http(s)://, any fsspec protocol) and SRC a glob "
        "('s3://bucket/runs/*/'). With --runner beam the batch runs as an Apache Beam pipeline; "
        "arguments after -- are Beam pipeline options (e.g. -- --runner=DataflowRunner).",
    )
    p.add_argument("src", nargs="+", metavar="SRC", help="checkpoint prefixes or directories")
    p.add_argument(
        "--target", "-t", required=True, metavar="T", help="template, .meta or module:factory"
    )
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--to",
        choices=("tf1", "tf2", "keras", "safetensors"),
        help="output format (default: the target's)",
    )
    p.add_argument("--rules", metavar="F", help="rules file (YAML/TOML/JSON) or preset:NAME")
    p.add_argument("--jobs", "-j", type=positive, default=1, metavar="N", help="items in parallel")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--link", action="store_true", help="hard-link untouched source shards")
    p.add_argument("--verify", action="store_true", help="re-read and compare every tensor")
    p.add_argument("--json", action="store_true", help="print the report as one JSON document")
    p.add_argument(
        "--runner",
        choices=("local", "beam"),
        default="local",
        help="local: threads in this process (--jobs); beam: an Apache Beam pipeline",
    )


def positive(text: str) -> int:
    """An argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def run_convert(args: argparse.Namespace) -> int:
    """Run ``convert``: print the report; 0 when every item converted or was skipped, else 1.

    Example: ``ckptbridge convert runs/exp1 --target template/ckpt-1 --out converted/``.

    One local checkpoint into a local bundle: its big data shards start copying at once, before
    the conversion is even imported; the conversion adopts the copies it would make anyway
    (:mod:`ckptbridge.conversion._speculate`) and every other one is deleted.
    """
    beam_options = list(getattr(args, "beam_options", None) or [])
    speculation = None
    if args.runner == "local" and not beam_options and not args.link and args.to in BUNDLES:
        from ckptbridge.conversion import _speculate  # the package imports nothing until asked

        speculation = _speculate.begin(
            list(args.src), args.out, args.target, rules=args.rules, overwrite=args.overwrite
        )
    try:
        code = _run_convert(args, beam_options)
    except BaseException:
        if speculation is not None:
            speculation.close(failed=True)
        raise
    if speculation is not None:
        speculation.close(failed=False)
    return code


BUNDLES = (None, "tf1", "tf2")  # --to values whose output is a bundle (None: the target's kind)


def _run_convert(args: argparse.Namespace, beam_options: list[str]) -> int:
    from ckptbridge.conversion import run_conversion

    if args.runner == "beam":
        return _run_convert_beam(args, beam_options)
    if beam_options:
        raise ConversionError(
            f"arguments after -- ({' '.join(beam_options)[:80]}) are Beam pipeline options; "
            "add --runner beam, or drop them"
        )
    if args.to == "keras":
        _quiet_tensorflow()
    report = run_conversion(
        args.src, args.out, target=_target_arg(args.target), rules=args.rules, to=args.to,
        overwrite=args.overwrite, link=args.link, verify=args.verify, jobs=args.jobs,
        progress=False if args.json else None,
    )  # fmt: skip
    _print_report(report, args.json)
    return 0 if report.ok else 1


def _run_convert_beam(args: argparse.Namespace, beam_options: list[str]) -> int:
    """``convert --runner beam``: the same batch and report, as a Beam pipeline."""
    try:
        from ckptbridge.beam import run_beam
    except ImportError as exc:
        raise ConversionError(f"--runner beam: {exc}") from None
    report = run_beam(
        args.src, args.out, target=args.target, rules=args.rules, to=args.to,
        overwrite=args.overwrite, link=args.link, verify=args.verify, pipeline_args=beam_options,
    )  # fmt: skip
    _print_report(report, args.json)
    return 0 if report.ok else 1


# -- diff ------------------------------------------------------------------------------------


def add_diff(subparsers: Any) -> None:
    """Declare ``ckptbridge diff A B [--json] [--exit-code]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "diff",
        help="compare two checkpoints entry by entry",
        description="Keys only in A or only in B, dtype/shape differences, and the largest "
        "absolute difference per common key (streamed, one tensor at a time).",
    )
    p.add_argument("a", metavar="A", help="checkpoint prefix, directory or V1 file")
    p.add_argument("b", metavar="B", help="checkpoint prefix, directory or V1 file")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON document")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when the checkpoints differ")
    p.add_argument(
        "--mapped", action="store_true", help="map A onto B as `plan` does (B the target), apply "
        "the transforms and compare values across formats; exit 0 equal, 1 different",
    )  # fmt: skip
    p.add_argument("--rules", metavar="F", help="with --mapped: rules file or preset:NAME")


def run_diff(args: argparse.Namespace) -> int:
    """Run ``diff``: print the comparison; 0 (or, with ``--exit-code``, 1 when they differ).
    With ``--mapped``: 0 when B equals A mapped onto it, else 1.

    Example: ``ckptbridge diff old/model.ckpt-5 converted/model.ckpt-5 --mapped``.
    """
    if args.mapped:
        from ckptbridge.tools import diff_mapped

        mapped = diff_mapped(args.a, args.b, args.rules)
        _print_report(mapped, args.json)
        return 0 if mapped.equal else 1
    if args.rules:
        raise RulesError("--rules applies to diff --mapped only; add --mapped")
    from ckptbridge.tools._diff import diff

    report = diff(args.a, args.b)
    _print_report(report, args.json)
    return 1 if args.exit_code and not report.identical else 0


# -- verify ----------------------------------------------------------------------------------


def add_verify(subparsers: Any) -> None:
    """Declare ``ckptbridge verify PATH... [--json]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="check every checksum and read every entry",
        description="Check each checkpoint's index blocks and every entry's CRC32C, reading every "
        "entry through the decoder ckptbridge uses. Exit 0 when all are intact, 2 when something "
        "is damaged (each damaged entry named with its file and byte range).",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="checkpoint prefixes, dirs or files")
    p.add_argument("--json", action="store_true", help="print the reports as one JSON document")


def run_verify(args: argparse.Namespace) -> int:
    """Run ``verify``: one report per PATH; 0 when every checkpoint is intact, else 2.

    Example: ``ckptbridge verify converted/model.ckpt-5 --json``.
    """
    from ckptbridge.tools import verify

    reports = []
    for path in args.paths:
        bar = progress_bar(not args.json, f"verify {Path(path).name}")
        try:
            reports.append(verify(path, progress=bar.bytes if bar is not None else None))
        finally:
            if bar is not None:
                bar.close()
    if args.json:
        doc = {"ok": all(r.ok for r in reports), "checkpoints": [r.to_dict() for r in reports]}
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write("\n".join(str(r) for r in reports) + "\n")
    return 0 if all(r.ok for r in reports) else 2


def progress_bar(wanted: bool, desc: str) -> ByteBar | None:
    """A byte bar when ``wanted`` (no --json) and stderr is a terminal, else None.

    Example: ``bar = progress_bar(not args.json, "verify")``.
    """
    from ckptbridge._progress import ByteBar
    from ckptbridge._progress import wanted as on_terminal

    return ByteBar(desc) if wanted and on_terminal(None) else None


# -- schema ----------------------------------------------------------------------------------


def add_schema(subparsers: Any) -> None:
    """Declare ``ckptbridge schema``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of rules files",
        description="Print the JSON Schema of ckptbridge rules (for editors and validators).",
    )
    p.add_argument(
        "--json", action="store_true", help="accepted for symmetry: output is JSON anyway"
    )


def run_schema(args: argparse.Namespace) -> int:
    """Run ``schema``: print the rules' JSON Schema as one JSON document.

    Example: ``ckptbridge schema > rules.schema.json``.
    """
    from ckptbridge.rules import rules_json_schema

    sys.stdout.write(json.dumps(rules_json_schema(), indent=2, sort_keys=True) + "\n")
    return 0
