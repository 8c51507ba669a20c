"""Benchmark ``ckptbridge inspect`` on a 200,000-entry TF1 checkpoint (issue 11).

``--make`` writes ``benchmarks/_data/inspect200k/model.ckpt`` with ckptbridge's ``BundleWriter``:
50,000 small variables with two Adam slots and an EMA shadow each (200,000 entries, a 13 MB index
of the kind a large model's training checkpoint has). Then, in the same run, each figure beside its
anchor:

1. ``python -m ckptbridge inspect PREFIX`` vs ``tf.train.list_variables(PREFIX)``, whole processes
   (wall time and peak RSS from ``/usr/bin/time -v``; target <= 1.5 s and < 200 MB);
2. opening the index in process (``open_checkpoint``) vs ``tf.train.list_variables`` in process.

Run by hand::

    python benchmarks/bench_inspect.py --make        # once, ~30 s
    python benchmarks/bench_inspect.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ckptbridge.format import BundleWriter, open_checkpoint

PREFIX = Path(__file__).resolve().parent / "_data" / "inspect200k" / "model.ckpt"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
_SHAPES = [(16,), (4, 4), (2, 3, 4), (8, 2), (1,), (3, 3, 1, 2)]
_SUFFIXES = ["", "/Adam", "/Adam_1", "/ExponentialMovingAverage"]


def make(prefix: Path, variables: int = 50_000) -> None:
    """Write ``variables`` x 4 entries (value, two Adam slots, EMA shadow), float32."""
    rng = np.random.default_rng(11)
    with BundleWriter(prefix) as writer:
        for i in range(variables):
            shape = _SHAPES[i % len(_SHAPES)]
            name = f"model/block_{i // 500:03d}/layer_{i % 500:03d}/" + ("kernel", "bias")[i % 2]
            value = rng.standard_normal(shape).astype(np.float32)
            for suffix in _SUFFIXES:
                writer.add(name + suffix, value)


def best(rounds: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def run_process(argv: list[str]) -> tuple[float, int]:
    """Wall time (s) and peak RSS (kB, ``/usr/bin/time -v``) of one child process."""
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *argv], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{argv} failed with exit code {done.returncode}: {done.stderr[-500:]}")
    line = next(x for x in done.stderr.splitlines() if "Maximum resident set size" in x)
    return elapsed, int(line.rsplit(":", 1)[1])


def open_index() -> int:
    with open_checkpoint(PREFIX) as ckpt:
        return len(ckpt.entries)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--make", action="store_true", help="write the checkpoint and exit")
    args = parser.parse_args()
    if args.make:
        start = time.perf_counter()
        make(PREFIX)
        print(f"wrote {PREFIX} in {time.perf_counter() - start:.1f} s")
        return 0
    if not PREFIX.with_name("model.ckpt.index").exists():
        raise SystemExit(f"missing {PREFIX}; run python benchmarks/bench_inspect.py --make first")
    import tensorflow as tf

    count = open_index()
    listed = len(tf.train.list_variables(str(PREFIX)))
    assert count == listed, (count, listed)
    ours = best(args.rounds, open_index)
    theirs = best(args.rounds, lambda: tf.train.list_variables(str(PREFIX)))
    print(f"{count} entries, in process, best of {args.rounds}:")
    print(f"  open_checkpoint (index decoded)  {ours:6.3f} s")
    print(f"  tf.train.list_variables          {theirs:6.3f} s")
    print(f"  ratio ckptbridge / TensorFlow: {ours / theirs:.2f}")

    inspect = [sys.executable, "-m", "ckptbridge", "inspect", str(PREFIX)]
    listing = [sys.executable, "-c",
               f"import tensorflow as tf; print(tf.train.list_variables({str(PREFIX)!r}))"]  # fmt: skip
    runs_ours, runs_tf = [], []
    for _ in range(args.rounds):  # alternated, so both see the same machine load
        runs_ours.append(run_process(inspect))
        runs_tf.append(run_process(listing))
    t_ours, t_tf = min(t for t, _ in runs_ours), min(t for t, _ in runs_tf)
    rss_ours, rss_tf = max(r for _, r in runs_ours), max(r for _, r in runs_tf)
    print(f"whole process, best of {args.rounds}:")
    print(f"  ckptbridge inspect       {t_ours:6.3f} s   peak RSS {rss_ours / 1024:6.1f} MB")
    print(f"  tf.train.list_variables  {t_tf:6.3f} s   peak RSS {rss_tf / 1024:6.1f} MB")
    print(
        f"  ratio ckptbridge / TensorFlow: {t_ours / t_tf:.2f} (time), {rss_ours / rss_tf:.2f} (RSS)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
