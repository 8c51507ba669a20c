"""The package's one-way layers (pyproject.toml [tool.importlinter]) hold, checked by import-linter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BROKEN" not in out.stdout


def test_no_private_module_left_at_the_package_top() -> None:
    top = sorted(p.name for p in (REPO / "src" / "ckptbridge").glob("_*.py"))
    assert top == [
        "__init__.py",
        "__main__.py",
        "_bridge.py",
        "_errors.py",
        "_optional.py",
        "_progress.py",
        "_text.py",
    ]
