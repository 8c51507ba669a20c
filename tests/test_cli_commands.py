"""The plan, convert, diff and schema subcommands: exit codes, one JSON document, one-line errors."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckptbridge._errors import CkptBridgeError
from ckptbridge.cli import _commands as commands
from ckptbridge.format import BundleWriter, open_checkpoint
from ckptbridge.rules import load_rules

REPO = Path(__file__).resolve().parents[1]

# The console script's main (ckptbridge.cli._main) once these commands are registered there; until then
# the same wiring: one line on stderr and exit 2 for a CkptBridgeError or a bad path.
RUNNER = """
import argparse, sys
from ckptbridge.cli import _commands as c, _main as _cli
from ckptbridge._errors import CkptBridgeError
def local_main(argv):
    parser = argparse.ArgumentParser(prog="ckptbridge")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("plan", "convert", "diff", "schema"):
        getattr(c, "add_" + name)(sub)
        sub.choices[name].set_defaults(run=getattr(c, "run_" + name))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        return args.run(args)
    except (CkptBridgeError, OSError) as exc:
        print(f"ckptbridge: error: {exc}", file=sys.stderr)
        return 2
main = _cli.main if "convert" in getattr(_cli, "COMMANDS", {}) else local_main
"""


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run a command in-process; return (exit code, stdout, stderr)."""
    namespace: dict[str, object] = {}
    exec(RUNNER, namespace)
    try:
        code = namespace["main"](argv)  # type: ignore[operator]
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


def cli_process(argv: list[str], *extra: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a command in a fresh Python; ``extra`` lines run after it (e.g. check sys.modules)."""
    code = RUNNER + "code = main(sys.argv[1:])\n" + "\n".join(extra) + "\nsys.exit(code)\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=cwd, timeout=180,
        env=env,
    )  # fmt: skip


def _write(prefix: Path, tensors: dict[str, np.ndarray]) -> Path:
    with BundleWriter(prefix) as w:
        for key, value in tensors.items():
            w.add(key, value)
    return prefix


@pytest.fixture()
def tf1_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A TF1 checkpoint and a template that names the same weights differently."""
    rng = np.random.default_rng(0)
    src = _write(
        tmp_path / "src" / "model.ckpt-7",
        {
            "conv1/weights": rng.normal(size=(3, 3, 1, 4)).astype(np.float32),
            "conv1/biases": rng.normal(size=4).astype(np.float32),
            "fc/weights": rng.normal(size=(16, 2)).astype(np.float32),
            "fc/biases": rng.normal(size=2).astype(np.float32),
            "global_step": np.array(7, np.int64),
        },
    )
    tpl = _write(
        tmp_path / "tpl" / "model.ckpt",
        {
            "net/conv1/kernel": np.zeros((3, 3, 1, 4), np.float32),
            "net/conv1/bias": np.zeros(4, np.float32),
            "net/fc/kernel": np.zeros((16, 2), np.float32),
            "net/fc/bias": np.zeros(2, np.float32),
            "global_step": np.array(0, np.int64),
        },
    )
    return src, tpl


RENAME = {"rename": [{"pattern": "(conv1|fc)/weights", "replace": r"net/\1/kernel"},
                     {"pattern": "(conv1|fc)/biases", "replace": r"net/\1/bias"}]}  # fmt: skip


def test_schema_prints_the_rules_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(["schema"], capsys)
    schema = json.loads(out)
    assert code == 0
    assert {"rename", "map", "transforms"} <= set(schema["properties"])


def test_plan_emit_rules_then_convert_with_them(
    tf1_pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, tpl = tf1_pair
    rules = tmp_path / "rename.json"
    rules.write_text(json.dumps(RENAME))
    emitted = tmp_path / "emitted.yaml"
    code, out, err = cli(
        [
            "plan",
            str(src),
            "--target",
            str(tpl),
            "--rules",
            str(rules),
            "--emit-rules",
            str(emitted),
        ],
        capsys,
    )
    assert (code, err) == (0, "")
    assert "net/fc/kernel" in out
    assert load_rules(emitted).map  # explicit pairs that reproduce the plan
    code, out, err = cli(
        ["convert", str(src), "--target", str(tpl), "--out", str(tmp_path / "out"),
         "--rules", str(emitted), "--verify", "--json"],
        capsys,
    )  # fmt: skip
    report = json.loads(out)
    assert (code, err, report["ok"]) == (0, "", True)
    with open_checkpoint(src) as a, open_checkpoint(tmp_path / "out" / "model.ckpt-7") as b:
        assert sorted(b.entries) == sorted(open_checkpoint(tpl).entries)
        assert a.read("fc/weights").tobytes() == b.read("net/fc/kernel").tobytes()
        assert int(b.read("global_step")) == 7


def test_plan_json_is_one_document_and_exit_1_when_incomplete(
    tf1_pair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src, tpl = tf1_pair
    code, out, _ = cli(["plan", str(src), "--target", str(tpl), "--json"], capsys)
    json.loads(out)
    assert code in (0, 1)
    bigger = _write(tpl.parent / "bigger", {"unrelated/kernel": np.zeros((5, 5, 5), np.float32)})
    code, out, _ = cli(["plan", str(src), "--target", str(bigger), "--json"], capsys)
    assert code == 1
    assert json.loads(out)


def test_convert_batch_carries_on_past_failures(
    tf1_pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, tpl = tf1_pair
    bad = _write(tmp_path / "bad" / "model.ckpt-9", {"something": np.zeros(3, np.float32)})
    rules = tmp_path / "rename.json"
    rules.write_text(json.dumps(RENAME))
    code, out, err = cli(
        ["convert", str(src), str(bad), "--target", str(tpl), "--out", str(tmp_path / "out"),
         "--rules", str(rules), "--json", "--jobs", "2"],
        capsys,
    )  # fmt: skip
    report = json.loads(out)
    assert code == 1 and err == ""
    assert [i["status"] for i in report["items"]] == ["converted", "failed"]
    assert "no source" in report["items"][1]["error"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["convert", "{tmp}/nothing", "--target", "{tpl}", "--out", "{tmp}/o"], "nothing"),
        (["convert", "{src}", "--target", "{tmp}/nothing", "--out", "{tmp}/o"], "nothing"),
        (
            [
                "convert",
                "{src}",
                "--target",
                "{tpl}",
                "--out",
                "{tmp}/o",
                "--rules",
                "{tmp}/typo.yaml",
            ],
            "typo.yaml",
        ),
        (
            [
                "convert",
                "{src}",
                "--target",
                "{tpl}",
                "--out",
                "{tmp}/o",
                "--rules",
                "{tmp}/badre.yaml",
            ],
            "badre.yaml",
        ),
        (["plan", "{src}", "--target", "no_such_module_xyz:factory"], "no_such_module_xyz"),
        (["diff", "{src}", "{tmp}/nothing"], "nothing"),
        (["convert", "{src}", "--target", "{tpl}", "--out", "{tmp}/o", "--to", "keras"], "keras"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tf1_pair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    src, tpl = tf1_pair
    (tmp_path / "typo.yaml").write_text("renme: []\n")
    (tmp_path / "badre.yaml").write_text("rename:\n  - {pattern: '(', replace: x}\n")
    args = [a.format(tmp=tmp_path, src=src, tpl=tpl) for a in argv]
    code, out, err = cli(args, capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("ckptbridge: error: ")
    assert message in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["convert", "x", "--target", "t"], capsys)  # no --out
    assert code == 2 and "--out" in err


def test_file_only_commands_do_not_import_tensorflow(
    tf1_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    src, tpl = tf1_pair
    rules = tmp_path / "rename.json"
    rules.write_text(json.dumps(RENAME))
    check = "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'"
    for argv in (
        ["schema"],
        ["diff", str(src), str(tpl), "--json"],
        ["plan", str(src), "--target", str(tpl), "--rules", str(rules)],
        [
            "convert",
            str(src),
            "--target",
            str(tpl),
            "--out",
            str(tmp_path / "o"),
            "--rules",
            str(rules),
        ],
    ):
        proc = cli_process(argv, check)
        assert proc.returncode == 0, (argv, proc.stderr)
        assert proc.stderr == ""


def test_bad_input_in_a_fresh_process_has_no_traceback(tmp_path: Path) -> None:
    proc = cli_process(["diff", str(tmp_path / "a"), str(tmp_path / "b")])
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_write_rules_rejects_unknown_extension(tmp_path: Path) -> None:
    from ckptbridge.rules import Rules

    with pytest.raises(CkptBridgeError, match=r"expected \.yaml, \.yml or \.json$"):
        commands.write_rules(Rules(), tmp_path / "rules.txt")


def test_parsers_declare_every_option() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    commands.add_convert(sub)
    argv = ["convert", "a", "b", "--target", "t", "--out", "o", "--to", "tf1", "-j", "3"]
    args = parser.parse_args([*argv, "--overwrite", "--link", "--verify", "--json"])
    assert (args.src, args.jobs, args.to, args.link) == (["a", "b"], 3, "tf1", True)


FACTORY = """
def build():
    import keras
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
"""


@pytest.mark.tf
def test_model_factory_target_to_keras_without_log_noise(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(4, 3)).astype(np.float32)
    src = _write(
        tmp_path / "src" / "model.ckpt-3",
        {"dense/kernel": kernel, "dense/bias": np.ones(3, np.float32)},
    )
    (tmp_path / "mymodels.py").write_text(FACTORY)
    out = tmp_path / "out"
    proc = cli_process(
        ["convert", str(src), "--target", "mymodels:build", "--out", str(out), "--json"],
        cwd=tmp_path,
    )
    assert (proc.returncode, proc.stderr) == (0, ""), proc.stderr
    assert json.loads(proc.stdout)["to"] == "keras"
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.load_weights(str(out / "model.ckpt-3.weights.h5"))
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernel)


# Modules a plan or conversion of a TF1 pair (no RNN cell, attention block, optimizer, .meta,
# Keras or safetensors file on either side, complete plan) must not import.
UNUSED_BY_TF1_PAIR = (
    "ckptbridge.engine._diagnose",
    "ckptbridge.engine.converters._attention",
    "ckptbridge.engine.converters._cells",
    "ckptbridge.engine.converters._lstm",
    "ckptbridge.engine.converters._propose",
    "ckptbridge.engine.families._bert",
    "ckptbridge.engine.optim",
    "ckptbridge.format._graph",
    "ckptbridge.format._keras",
    "ckptbridge.format._meta",
    "ckptbridge.format._objgraph",
    "ckptbridge.format._safetensors",
    "ckptbridge.sides._graph_facts",
    "ckptbridge.sides._live",
    "ckptbridge.sides._tf2_optimizer",
    "zipfile",
)


def test_start_up_imports_only_what_the_command_uses(
    tf1_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """Start-up is most of a small command's time: numpy only once tensors are decoded (a listing,
    a plan and a rename-only conversion by whole-shard copy need none), pydantic only when there
    are rules to validate (plan steps and options are plain values), tqdm and yaml only for a
    progress bar or a YAML rules file. Nor do they load what a TF1 pair without cells, a .meta or
    an optimizer never uses (last line of stderr): the RNN/attention converters, optimizer state,
    Keras and safetensors readers, explanations of missing targets, live models, .meta graphs."""
    src, tpl = tf1_pair
    report = (
        "print(sorted(m for m in ('numpy', 'pydantic', 'tqdm', 'yaml') if m in sys.modules), "
        "file=sys.stderr)\n"
        f"print(sorted(m for m in {UNUSED_BY_TF1_PAIR!r} if m in sys.modules), file=sys.stderr)"
    )
    cases = {
        ("inspect", str(src)): ["[]", "[]"],
        ("plan", str(src), "--target", str(tpl)): ["[]", "[]"],
        ("plan", str(src), "--target", str(tpl), "--json"): ["[]", "[]"],
        (
            "plan",
            str(src),
            "--target",
            str(tpl),
            "--rules",
            "preset:tf1-rnn",
        ): ["['pydantic', 'yaml']", "['zipfile']"],  # zipfile: importlib.metadata, for Pydantic
    }
    for argv, loaded in cases.items():
        done = cli_process([*argv], report)
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip().splitlines()[-2:] == loaded, argv
    for extra in ((), ("--link",)):
        out = tmp_path / f"o{len(extra)}"
        argv = ["convert", str(src), "--target", str(tpl), "--out", str(out), *extra]
        done = cli_process(argv, report)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.strip().splitlines()
        assert lines[-2:] == ["[]", "[]"], extra  # whole shards: no numpy
        with open_checkpoint(out / src.name) as converted, open_checkpoint(src) as source:
            assert converted.read("global_step").item() == 7
            assert converted.read("net/fc/kernel").tolist() == source.read("fc/weights").tolist()

    bare = subprocess.run(
        [sys.executable, "-c", "import sys, ckptbridge.conversion, ckptbridge.cli._main, "
         "ckptbridge.tools\n" + report],
        capture_output=True, text=True, cwd=REPO, timeout=180,
    )  # fmt: skip
    assert bare.stderr.strip().splitlines() == ["[]", "[]"]
