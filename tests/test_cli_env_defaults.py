"""The command line starts numpy's OpenBLAS with one thread unless the environment sizes it, and
Pydantic looks for no plugins unless the environment says."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ckptbridge.cli._main import BLAS_THREADS

SCRIPT = """
import os, runpy, sys
{before}
sys.argv = ["ckptbridge", "--version"]
try:
    {run}
except SystemExit:
    pass
print(os.environ.get("PYDANTIC_DISABLE_PLUGINS"))
print(os.environ.get("OPENBLAS_NUM_THREADS"))
"""
MAIN = "from ckptbridge.cli import main; main()"  # the console script's call
MODULE = "runpy.run_module('ckptbridge', run_name='__main__')"  # python -m ckptbridge


def _child(env: dict[str, str], run: str = MAIN, before: str = "", line: int = -1) -> str:
    unset = (*BLAS_THREADS, "PYDANTIC_DISABLE_PLUGINS")
    base = {k: v for k, v in os.environ.items() if k not in unset}
    code = SCRIPT.format(before=before, run=run)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()[line]


@pytest.mark.parametrize("run", [MAIN, MODULE], ids=["script", "module"])
def test_the_command_line_sets_one_blas_thread_when_unset(run: str) -> None:
    assert _child({}, run) == "1"
    assert _child({"OPENBLAS_NUM_THREADS": ""}, run) == "1"  # empty: OpenBLAS ignores it too


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"OPENBLAS_NUM_THREADS": "4"}, "4"),
        ({"GOTO_NUM_THREADS": "2"}, "None"),  # OpenBLAS reads these when its own is unset
        ({"OMP_NUM_THREADS": "3"}, "None"),
    ],
)
def test_a_size_the_user_chose_is_kept(env: dict[str, str], want: str) -> None:
    assert _child(env) == want


def test_not_set_once_numpy_is_loaded() -> None:  # too late to matter: nothing to change
    assert _child({}, before="import numpy") == "None"


def test_not_set_when_main_is_called_with_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in BLAS_THREADS:  # a library caller's main([...]) leaves its environment alone
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "numpy", raising=False)  # as if numpy were not loaded yet
    from ckptbridge.cli import main

    assert main(["--version"]) == 0
    assert "OPENBLAS_NUM_THREADS" not in os.environ


@pytest.mark.parametrize("run", [MAIN, MODULE], ids=["script", "module"])
def test_the_command_line_disables_pydantic_plugins_unless_told(run: str) -> None:
    assert _child({}, run, line=-2) == "__all__"
    assert _child({"PYDANTIC_DISABLE_PLUGINS": "logfire"}, run, line=-2) == "logfire"
    assert _child({"PYDANTIC_DISABLE_PLUGINS": ""}, run, line=-2) == ""


def test_main_with_arguments_leaves_pydantic_plugins_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    from ckptbridge.cli import main

    assert main(["--version"]) == 0
    assert "PYDANTIC_DISABLE_PLUGINS" not in os.environ
