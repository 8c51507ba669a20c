"""examples/*.py: every example runs and ends with its numeric proof.

The quickstart runs as a real subprocess (as the README tells a new user to); the others run in
this process through runpy, which is faster because TensorFlow is already imported.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.tf

EXAMPLES = REPO_ROOT / "examples"


def _run(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_quickstart_as_a_new_user_runs_it() -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "Restored 4 of 4 variables" in out
    assert "hidden/weights" in out
    assert "Keras output == TF1 graph output" in out


def test_linear_regression(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("linear_regression.py", capsys)
    assert "Restored 2 of 2 variables" in out
    assert "== W*x + b" in out


def test_convnet_scopes(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("convnet_scopes.py", capsys)
    assert "Restored 8 of 8 variables" in out
    assert "Auxiliary, not restored (19)" in out
    assert "Keras CNN output == TF1 conv net output" in out


def test_error_handling(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("error_handling.py", capsys)
    assert "Caught tf.errors.NotFoundError" in out
    assert "fc2/weights" in out
    assert "Model untouched after the failed restore: True" in out


def test_recover_variables(capsys: pytest.CaptureFixture[str]) -> None:
    out = _run("recover_variables.py", capsys)
    assert "layer1: W (6, 5), b (5,)" in out
    assert "numpy forward pass == TF1 graph output" in out


def test_every_example_is_tested() -> None:
    tested = {"quickstart.py", "linear_regression.py", "convnet_scopes.py", "error_handling.py",
              "recover_variables.py"}  # fmt: skip
    mine = {p.name for p in EXAMPLES.glob("*.py")} & (tested | {"batch_convert.py"})
    assert tested <= mine
