"""Shared fixtures. TensorFlow is configured here, before any test imports it.

The suite runs with and without TensorFlow (tox envs ``py`` and ``notf``). Without it, tests marked
``tf`` are skipped and test modules that import TensorFlow (or the TF1 builders) at their top are not
collected, both said in the header. ``CKPTBRIDGE_EXPECT_TF=1`` (set by the TensorFlow envs) turns a
missing TensorFlow into an error, so that no TF test is skipped where it must run; likewise
``CKPTBRIDGE_EXPECT_JAX=1`` for the tests that restore into Keras on JAX in a subprocess.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import sys
from pathlib import Path

import pytest


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


HAVE_TF = _installed("tensorflow") and _installed("tf_keras")
EXPECT_TF = os.environ.get("CKPTBRIDGE_EXPECT_TF") == "1"
TF_HINT = "needs TensorFlow and tf-keras (pip install 'ckptbridge[tf]')"

# tf-keras provides the TF1 layers and RNN cells (tf.compat.v1.layers, tf.compat.v1.nn.rnn_cell);
# Keras 3 stays importable as `keras`. Must be set before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault(
    "KERAS_BACKEND", "tensorflow" if HAVE_TF else ("jax" if _installed("jax") else "numpy")
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _corpus_dir() -> Path:
    env = os.environ.get("CKPTBRIDGE_CORPUS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"


CORPUS = _corpus_dir()

# Top-level imports that mean "this whole module needs TensorFlow".
_TF_MODULES = {
    "tensorflow",
    "tf_keras",
    "keras_hub",
    "tf1_builders",
    "rnn_builders",
    "optim_builders",
}
_not_collected: list[str] = []


def _needs_tf(path: Path) -> bool:
    """A test module that imports TensorFlow at its top or is marked ``tf`` as a whole."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] in _TF_MODULES for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _TF_MODULES:
            return True
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
            and "mark.tf" in ast.unparse(node.value)
        ):
            return True
    return False


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--keras-backend",
        choices=["jax", "numpy", "torch", "tensorflow"],
        help="Keras 3 backend for this run (sets KERAS_BACKEND before Keras is imported)",
    )


def pytest_configure(config: pytest.Config) -> None:
    backend = config.getoption("--keras-backend")
    if backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != backend:
            raise pytest.UsageError("--keras-backend given after Keras was imported")
        os.environ["KERAS_BACKEND"] = backend
    if EXPECT_TF and not HAVE_TF:
        raise pytest.UsageError(f"CKPTBRIDGE_EXPECT_TF=1 but this environment {TF_HINT}")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if HAVE_TF or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if _needs_tf(collection_path):
        _not_collected.append(collection_path.name)
        return True
    return None


def _fixture_needs_tf(func: object) -> bool:
    try:
        source = inspect.getsource(func)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False
    return any(f"import {m}" in source or f"from {m} " in source for m in _TF_MODULES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without TensorFlow: skip tests marked ``tf`` and tests whose fixtures import TensorFlow."""
    if HAVE_TF:
        return
    skip = pytest.mark.skip(reason=TF_HINT)
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        defs = info.name2fixturedefs.values() if info is not None else ()
        if "tf" in item.keywords or any(_fixture_needs_tf(d[-1].func) for d in defs if d):
            item.add_marker(skip)


def pytest_report_header(config: pytest.Config) -> str:
    backend = os.environ.get("KERAS_BACKEND")
    if HAVE_TF:
        return f"ckptbridge: TensorFlow installed; Keras backend {backend}"
    return f"ckptbridge: no TensorFlow; Keras backend {backend}; TF tests skipped"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _not_collected:
        terminalreporter.write_line(
            f"ckptbridge: {len(set(_not_collected))} test modules not collected (each {TF_HINT}): "
            + ", ".join(sorted(set(_not_collected)))  # pytest may ask twice per module
        )


def require(module: str) -> None:
    """Skip unless ``module`` is installed; fail instead where CKPTBRIDGE_EXPECT_<MODULE>=1."""
    if _installed(module):
        return
    if os.environ.get(f"CKPTBRIDGE_EXPECT_{module.upper()}") == "1":
        pytest.fail(f"CKPTBRIDGE_EXPECT_{module.upper()}=1 but {module} is not installed")
    pytest.skip(f"needs {module}")


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The read-only real-world checkpoint corpus (../shared/corpus). Never copy from it."""
    if not CORPUS.is_dir():
        pytest.fail(f"the checkpoint corpus is missing at {CORPUS}; set CKPTBRIDGE_CORPUS")
    return CORPUS


def _corpus2_dir() -> Path:
    env = os.environ.get("CKPTBRIDGE_CORPUS2")
    return Path(env) if env else CORPUS.parent / "corpus2"


@pytest.fixture(scope="session")
def corpus2() -> Path:
    """The read-only second corpus (../shared/corpus2: TF2, SavedModel variables). Never copy."""
    path = _corpus2_dir()
    if not path.is_dir():
        pytest.fail(f"the second checkpoint corpus is missing at {path}; set CKPTBRIDGE_CORPUS2")
    return path
