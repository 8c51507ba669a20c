"""The ``ckptbridge`` command line (also ``python -m ckptbridge``).

Each command is a pair registered in :data:`COMMANDS`: ``_add_<cmd>(subparsers)`` declares its
arguments and ``_run_<cmd>(args) -> int`` does the work. To add a command, write the pair and add it
to ``COMMANDS``. Errors from ckptbridge (and OSError on user paths) print one line on stderr and
exit 2; ``--debug`` shows the traceback::

    $ ckptbridge inspect old/model.ckpt-1000 --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ckptbridge import __version__
from ckptbridge._errors import CkptBridgeError
from ckptbridge._text import DEFAULT_MAX_ELEMENTS  # not from tools: convert needs no tools
from ckptbridge.cli import _commands as _cmd

if TYPE_CHECKING:
    from ckptbridge.tools import CheckpointInfo

EXIT_OK, EXIT_ERROR = 0, 2

Subparsers = Any  # argparse's _SubParsersAction is private


def _add_inspect(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="list what a checkpoint holds (kind, entries, object graph, .meta facts)",
        description="List a checkpoint's kind, entries (key, dtype, shape, bytes), object-graph "
        "variables and .meta facts. Accepts a prefix, a directory, or a V1 file.",
    )
    parser.add_argument("path", help="checkpoint prefix, training directory, or V1 checkpoint file")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON document instead of a table"
    )
    parser.add_argument(
        "--tensor", action="append", metavar="KEY", help="print this entry's values and statistics "
        "(min, max, mean, std, NaN/Inf counts); repeat for more",
    )  # fmt: skip
    parser.add_argument("--all-tensors", action="store_true", help="print every entry's values")
    parser.add_argument(
        "--max-elements", type=_cmd.positive, default=DEFAULT_MAX_ELEMENTS, metavar="N",
        help=f"with --json: values of tensors up to N elements (default {DEFAULT_MAX_ELEMENTS}); "
        "larger ones get \"values\": null, \"truncated\": true",
    )  # fmt: skip


def _run_inspect(args: argparse.Namespace) -> int:
    if args.tensor or args.all_tensors:
        from ckptbridge.tools import tensor_values

        tensors = tensor_values(args.path, None if args.all_tensors else args.tensor)
        if args.json:
            doc = {"path": args.path, "tensors": [t.to_dict(args.max_elements) for t in tensors]}
            print(json.dumps(doc, indent=2))
        else:
            print("\n\n".join(str(t) for t in tensors))
        return EXIT_OK
    from ckptbridge.format._gc import collector_paused
    from ckptbridge.tools import inspect

    with collector_paused():  # a listing makes no cycles: the collector would only rescan it
        _list(inspect(args.path), args.json)  # freed before the collector resumes
    return EXIT_OK


def _list(info: CheckpointInfo, as_json: bool) -> None:
    if as_json:
        info.write_json(sys.stdout)
    else:
        info.write_text(sys.stdout)


# name -> (add arguments, run), in the order `ckptbridge --help` lists them.
COMMANDS: dict[str, tuple[Callable[[Subparsers], None], Callable[[argparse.Namespace], int]]] = {
    "inspect": (_add_inspect, _run_inspect),
    "plan": (_cmd.add_plan, _cmd.run_plan),
    "convert": (_cmd.add_convert, _cmd.run_convert),
    "diff": (_cmd.add_diff, _cmd.run_diff),
    "verify": (_cmd.add_verify, _cmd.run_verify),
    "schema": (_cmd.add_schema, _cmd.run_schema),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser with every registered command, or with ``command`` alone when
    it names one (what :func:`main` parses: declaring the other commands' arguments only costs
    start-up time; ``--help``, no command or an unknown one get them all, as before).

    Example::

        build_parser().parse_args(["inspect", "m.ckpt"]).command   # 'inspect'
    """
    parser = argparse.ArgumentParser(
        prog="ckptbridge",
        description="Read, map, restore and convert TensorFlow checkpoints across TF1/TF2.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (add, _) in COMMANDS.items():
        if command not in COMMANDS or name == command:
            add(subparsers)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (no top-level option
    takes a value), or None."""
    return next((word for word in argv if not word.startswith("-")), None)


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; for ``convert``, what follows ``--`` is kept aside as Beam options."""
    if "--" in argv:
        cut = argv.index("--")
        head = parser.parse_args(argv[:cut])
        if head.command == "convert":
            head.beam_options = argv[cut + 1 :]
            return head
    return parser.parse_args(argv)


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")  # OpenBLAS reads


def _one_blas_thread() -> None:
    """Start numpy's OpenBLAS with no thread pool, unless the user chose a size or numpy is loaded.

    OpenBLAS starts a pool of (cores - 1) threads when numpy is imported, which spin for a while
    waiting for work: CPU time taken from the transform stream's two threads. ckptbridge does no
    matrix algebra (its numbers are added, cast, compared, summarised), so one thread costs it
    nothing. Only ``OPENBLAS_NUM_THREADS`` is set: ``OMP_NUM_THREADS`` would also size the
    thread pools of TensorFlow or JAX when a model factory imports them.
    """
    if "numpy" not in sys.modules and not any(os.environ.get(k) for k in BLAS_THREADS):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"


def _no_pydantic_plugins() -> None:
    """Tell Pydantic not to look for plugins, unless the user set ``PYDANTIC_DISABLE_PLUGINS``.

    Building the first model (the Rules, every convert and plan) reads the entry points of every
    installed distribution for Pydantic plugins (observability hooks on validation), 27.6M
    instructions in this venv (134 distributions); the command line has no use for them.
    """
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 success, 1 some items failed or unmatched,
    2 error or usage error). Without ``argv`` (the command line itself), numpy's OpenBLAS starts
    with one thread unless the environment sizes it (see :func:`_one_blas_thread`), and Pydantic
    looks for no plugins unless the environment says (:func:`_no_pydantic_plugins`).

    Example::

        main(["inspect", "old/model.ckpt-1000", "--json"])
    """
    os.environ.setdefault(
        "TF_CPP_MIN_LOG_LEVEL", "2"
    )  # quiet if a model factory imports TensorFlow
    if argv is None:  # the command line itself: the script or ``python -m ckptbridge``
        _one_blas_thread()
        _no_pydantic_plugins()
    given = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(given))
    try:
        args = _parse(parser, given)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    try:
        return COMMANDS[args.command][1](args)
    except BrokenPipeError:  # e.g. `ckptbridge inspect x | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown quiet
        return EXIT_OK
    except (CkptBridgeError, OSError) as exc:
        if args.debug:
            import traceback  # only here: it costs more start-up than argparse

            traceback.print_exc()
        message = str(exc)
        print(
            f"ckptbridge: error: {message.splitlines()[0] if message else type(exc).__name__}",
            file=sys.stderr,
        )
        return EXIT_ERROR
