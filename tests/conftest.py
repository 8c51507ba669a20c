"""Shared fixtures. TensorFlow is configured here, before any test imports it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# tf-keras provides the TF1 layers and RNN cells (tf.compat.v1.layers, tf.compat.v1.nn.rnn_cell);
# Keras 3 stays importable as `keras`. Must be set before TensorFlow is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

REPO_ROOT = Path(__file__).resolve().parents[1]


def _corpus_dir() -> Path:
    env = os.environ.get("CKPTBRIDGE_CORPUS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"


CORPUS = _corpus_dir()


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
