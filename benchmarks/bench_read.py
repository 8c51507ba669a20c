"""Benchmark the native reader on the VGG-16-sized checkpoint of ``make_vgg16.py``.

Targets (issues 2 and 11):
1. reading every tensor into numpy at least as fast as ``tf.train.load_checkpoint().get_tensor``
   in the same process (warm page cache, best of ``--rounds``, alternated): materialised as owned
   arrays (``read(key, copy=True)``: ``pread`` + CRC32C) >= 1.0x, mmap views faster still;
2. ``ckptbridge inspect`` as a whole process at least 4x faster than a whole-process
   ``tf.train.list_variables``;
3. peak RSS of ``ckptbridge inspect`` under 100 MB.

Run by hand (after ``python benchmarks/make_vgg16.py``)::

    python benchmarks/bench_read.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ckptbridge.format import open_checkpoint

PREFIX = Path(__file__).resolve().parent / "_data" / "vgg16" / "model.ckpt"
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def best(rounds: int, func: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def read_ckptbridge(copy: bool) -> int:
    total = 0
    with open_checkpoint(PREFIX) as ckpt:
        for key in ckpt.entries:
            total += ckpt.read(key, copy=copy).nbytes
    return total


def read_tensorflow() -> int:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(PREFIX))
    return sum(reader.get_tensor(key).nbytes for key in reader.get_variable_to_shape_map())


def run_process(argv: list[str]) -> tuple[float, int]:
    """Wall time (s) and peak RSS (kB, from ``/usr/bin/time -v``) of one child process.

    (``wait4``'s ru_maxrss would include this benchmark's own RSS, which survives fork + exec.)
    """
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *argv], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{argv} failed with exit code {done.returncode}")
    line = next(x for x in done.stderr.splitlines() if "Maximum resident set size" in x)
    return elapsed, int(line.rsplit(":", 1)[1])


def main() -> int:
    parser = argparse.ArgumentParser(description="native reader benchmark")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not PREFIX.with_name("model.ckpt.index").exists():
        raise SystemExit(f"missing {PREFIX}; run python benchmarks/make_vgg16.py first")
    size = read_ckptbridge(copy=False)  # warm the page cache
    read_tensorflow()
    times: dict[str, list[float]] = {"view": [], "copy": [], "tf": []}
    for _ in range(args.rounds):  # alternated, so all three see the same machine load
        times["view"].append(best(1, lambda: read_ckptbridge(copy=False)))
        times["copy"].append(best(1, lambda: read_ckptbridge(copy=True)))
        times["tf"].append(best(1, read_tensorflow))
    ours, ours_copy, theirs = (min(times[k]) for k in ("view", "copy", "tf"))
    print(f"read all {size / 1e6:.0f} MB, same process, best of {args.rounds}:")
    print(
        f"  ckptbridge read(copy=True) (owned, pread)  {ours_copy:7.3f} s  {size / ours_copy / 1e9:5.2f} GB/s"
    )
    print(
        f"  ckptbridge read() (mmap view)              {ours:7.3f} s  {size / ours / 1e9:5.2f} GB/s"
    )
    print(
        f"  tf.train.load_checkpoint().get_tensor      {theirs:7.3f} s  {size / theirs / 1e9:5.2f} GB/s"
    )
    print(
        f"  speed vs TensorFlow: {theirs / ours_copy:.2f}x (owned copy), {theirs / ours:.2f}x (view)"
    )

    inspect = [sys.executable, "-m", "ckptbridge", "inspect", str(PREFIX)]
    listing = [
        sys.executable,
        "-c",
        f"import tensorflow as tf; tf.train.list_variables({str(PREFIX)!r})",
    ]
    runs_ours, runs_tf = [], []
    for _ in range(args.rounds):
        runs_ours.append(run_process(inspect))
        runs_tf.append(run_process(listing))
    t_ours, t_tf = min(t for t, _ in runs_ours), min(t for t, _ in runs_tf)
    rss = max(r for _, r in runs_ours)
    print(f"whole process, best of {args.rounds}:")
    print(f"  ckptbridge inspect       {t_ours:6.3f} s   peak RSS {rss / 1024:6.1f} MB")
    print(
        f"  tf.train.list_variables  {t_tf:6.3f} s   peak RSS {max(r for _, r in runs_tf) / 1024:6.1f} MB"
    )
    print(f"  speed-up: {t_tf / t_ours:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
