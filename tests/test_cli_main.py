"""The command line: `ckptbridge inspect PATH [--json]`, errors as one line and exit code 2."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ckptbridge.cli._main import main


def test_inspect_table(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(corpus / "TheButlah__makrl" / "model")]) == 0
    out = capsys.readouterr().out
    assert "conv2d_1/kernel" in out and "(3, 3, 32, 32)" in out


def test_inspect_json_is_one_document(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(corpus / "Miao0O__hori_verti_line_recognization"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["kind"] == "tf1"
    assert [e["key"] for e in document["entries"]] == [
        "OptimizeLoss/learning_rate",
        "Variable",
        "global_step",
    ]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, r"^ckptbridge: error: no checkpoint at .*missing\.ckpt: looked for"),
        (
            lambda d: (d / "missing.ckpt.index").write_bytes(b"junk"),
            r"^ckptbridge: error: .*missing\.ckpt\.index is not a readable checkpoint index",
        ),
        (
            lambda d: (d / "missing.ckpt").write_bytes(b"\x00" * 100),
            r"^ckptbridge: error: .*missing\.ckpt is not a checkpoint",
        ),
    ],
)
def test_errors_are_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: object, message: str
) -> None:
    setup(tmp_path)  # type: ignore[operator]
    assert main(["inspect", str(tmp_path / "missing.ckpt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert __import__("re").match(message, err)


def test_debug_shows_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "inspect", str(tmp_path / "nothing")]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect"]) == 2
    assert main(["frobnicate"]) == 2
    assert "usage: ckptbridge" in capsys.readouterr().err


def test_subprocess_inspect_imports_no_tensorflow(corpus: Path, tmp_path: Path) -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['ckptbridge', 'inspect', sys.argv[1], '--json']\n"
        "try:\n    runpy.run_module('ckptbridge', run_name='__main__')\n"
        "except SystemExit as exc:\n    print('EXIT', exc.code, 'tensorflow' in sys.modules, file=sys.stderr)\n"
    )
    ok = subprocess.run(
        [sys.executable, "-c", code, str(corpus / "Aplain__rnnRepo")],
        capture_output=True,
        text=True,
    )
    assert json.loads(ok.stdout)["kind"] == "tf1"
    assert ok.stderr.strip() == "EXIT 0 False"
    bad = subprocess.run(
        [sys.executable, "-m", "ckptbridge", "inspect", str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert (
        bad.stderr.startswith("ckptbridge: error: no checkpoint at") and bad.stderr.count("\n") == 1
    )


def test_inspect_leaves_the_garbage_collector_as_it_found_it(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert gc.isenabled()
    assert main(["inspect", str(corpus / "TheButlah__makrl" / "model")]) == 0
    assert gc.isenabled() and "kind        tf1" in capsys.readouterr().out
