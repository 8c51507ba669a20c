"""The standing fuzz suite of the format layer: its regression corpus, and a bounded campaign.

Every input must give a clean :class:`ckptbridge.CkptBridgeError` or correct values: never a
signal, a hang, a memory blow-up, a foreign exception or a wrong value. Cases run in a child with
``RLIMIT_AS`` and a timeout (tests/fuzz_harness.py), so a breach fails a test instead of the run.

* ``tests/fuzz_corpus/<case>/``: the files of one finding (a few kB) and ``case.json``: the path to
  open, file kinds to set up (FIFO, symlink loop, ...), and the expected outcome (an error class,
  TensorFlow's value digests, or none: the contract alone). Replayed one test each.
* A bounded hypothesis run over the structure-aware mutators (tests/fuzz_mutate.py: every CRC
  recomputed) of checkpoints written by real TF1 code, a ``tf.train.Checkpoint`` of a Keras model,
  a Keras 3 ``.weights.h5`` and small corpus files; values must equal the seed's when the mutation
  keeps them. The long run with TensorFlow's reader as oracle: tests/fuzz_campaign.py.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fuzz_harness as fh
from fuzz_mutate import Case, mutate
from fuzz_seeds import Seed, build_seeds, corpus_seeds

CORPUS_DIR = Path(__file__).resolve().parent / "fuzz_corpus"
CASES = sorted(p.name for p in CORPUS_DIR.iterdir() if (p / "case.json").is_file())
OPS = ["inspect", "load", "verify", "graph", "cli_inspect", "cli_verify", "state"]
EXAMPLES = int(os.environ.get("CKPTBRIDGE_FUZZ_EXAMPLES", "300"))

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def worker() -> Iterator[fh.Worker]:
    with fh.Worker() as child:
        yield child


def _setup(folder: Path, steps: list[dict[str, str]]) -> None:
    """File kinds git cannot hold: {"fifo": name}, {"symlink": name, "to": target}, {"dir": name},
    {"sparse": name, "size": bytes}."""
    for step in steps:
        kind, name = next(iter(step.items()))
        path = folder / name
        if path.exists() or path.is_symlink():
            path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "symlink":
            os.symlink(step["to"], path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "sparse":
            with path.open("wb") as handle:
                handle.truncate(int(step["size"]))


def _expect(case: dict[str, Any], result: dict[str, Any]) -> None:
    assert fh.problems(result) == [], case["class"]
    expect = case["expect"]
    load = next(op for op in result["results"] if op["op"] == "load")
    if "error" in expect:
        assert (load["outcome"], load.get("type")) == ("error", expect["error"]), load
    elif "values" in expect:  # TensorFlow's reader's values for the same files
        assert load["outcome"] == "ok", load
        assert fh.compare(load["value"], expect["values"]) == []


@pytest.mark.parametrize("name", CASES)
def test_regression_corpus(name: str, worker: fh.Worker, tmp_path: Path) -> None:
    case = json.loads((CORPUS_DIR / name / "case.json").read_text())
    for path in (CORPUS_DIR / name).iterdir():
        if path.name != "case.json":
            shutil.copyfile(path, tmp_path / path.name)
    _setup(tmp_path, case.get("setup", []))
    result = worker.run(tmp_path / case["open"], OPS, timeout=30)
    _expect(case, result)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory, corpus: Path, corpus2: Path) -> list[Seed]:
    built = build_seeds(tmp_path_factory.mktemp("seeds"))
    return built + corpus_seeds([corpus, corpus2])


@pytest.fixture(scope="module")
def baselines(
    seeds: list[Seed], worker: fh.Worker, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Each seed's values as ckptbridge reads them unmutated (checked against TF by test_format_corpus)."""
    out = {}
    for seed in seeds:
        case = Case.from_seed(seed, tmp_path_factory.mktemp("base"))
        out[seed.name] = fh.loaded(worker.run(case.path, ["load"], timeout=60))
    return out


class _Run:
    """Seeds, their values and the worker, with a short repr (hypothesis prints the arguments)."""

    def __init__(self, seeds: list[Seed], baselines: dict[str, Any], worker: fh.Worker) -> None:
        self.seeds, self.baselines, self.worker = seeds, baselines, worker

    def __repr__(self) -> str:
        return f"<{len(self.seeds)} seeds>"


@pytest.fixture(scope="module")
def run(seeds: list[Seed], baselines: dict[str, Any], worker: fh.Worker) -> _Run:
    return _Run(seeds, baselines, worker)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],  # case seeds do not shrink; the case is printed
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
@given(pick=st.integers(0, 2**16), case_seed=st.integers(0, 2**32 - 1))
def test_mutated_checkpoints_keep_the_contract(
    pick: int, case_seed: int, run: _Run, tmp_path_factory: pytest.TempPathFactory
) -> None:
    seed = run.seeds[pick % len(run.seeds)]
    rng = random.Random(case_seed)
    folder = tmp_path_factory.mktemp("case")
    try:
        case = Case.from_seed(seed, folder)
        steps = mutate(case, rng)
        result = run.worker.run(case.path, OPS, timeout=30)
        assert fh.problems(result) == [], (seed.name, steps)
        values = fh.loaded(result)
        if case.preserving and values is not None and run.baselines[seed.name] is not None:
            assert fh.compare(values, run.baselines[seed.name]) == [], (seed.name, steps)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
