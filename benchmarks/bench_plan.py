"""Benchmark: ``derive`` for 2,000 and 20,000 variables plus their Adam slots (by hand, not in CI).

Target (issue 3): 20,000 variables (60,000 source entries with the slots) under 5 s, and 10x the
variables in at most 15x the time. Two synthetic cases, literal VarSpecs, no TensorFlow:

- ``names``: TF1 keys under an outer scope (``net/dense_7/weights``) vs Keras 3 paths
  (``sequential/dense_7/kernel``): decided by vocabulary + unique common suffix.
- ``structure``: TF-slim-like keys that share nothing with the Keras names
  (``net/block7/fc/weights`` vs ``dense_7/kernel``): decided by creation order + shape.

Run:  python benchmarks/bench_plan.py [--repeat 3]

``--cli`` measures what users wait for (issue 11): ``ckptbridge plan SRC --target TEMPLATE --json``
as a whole process, SRC a TF1 checkpoint of N variables plus Adam slots (names share nothing with
the template's), TEMPLATE a TF2 checkpoint of a ``tf.Module`` of N variables (written once with
TensorFlow into ``benchmarks/_data/plan/``). Anchor in the same run: ``--baseline OLD/src`` times
the same command on another source tree (e.g. ``git archive <rev> src | tar -x -C OLD``),
alternated run by run, as a ratio; the start-up floor (importing the CLI and conversion) is printed
beside it. Target: 20,000 variables <= 2 s, 10x variables <= 15x time::

    python benchmarks/bench_plan.py --cli [--sizes 2000 20000] [--baseline OLD/src]
"""

from __future__ import annotations

import argparse
import time

from ckptbridge.engine import VarSpec, derive
from ckptbridge.engine._names import normalise, strip_key


def _layer_name(i: int) -> str:
    return "dense" if i == 0 else f"dense_{i}"


def build(n_vars: int, case: str) -> tuple[list[VarSpec], list[VarSpec]]:
    """``n_vars`` model variables (kernel + bias per layer); the checkpoint adds Adam slots."""
    src: list[VarSpec] = []
    tgt: list[VarSpec] = []
    for i in range(n_vars // 2):
        width = 32 + (i * 7) % 97
        shapes = {"kernel": (width, 64), "bias": (64,)}
        for leaf, tf1_leaf in (("kernel", "weights"), ("bias", "biases")):
            key = (f"net/{_layer_name(i)}/{tf1_leaf}" if case == "names"
                   else f"net/block{i}/fc/{tf1_leaf}")  # fmt: skip
            shape = shapes[leaf]
            src += [
                VarSpec(key, shape),
                VarSpec(f"{key}/Adam", shape),
                VarSpec(f"{key}/Adam_1", shape),
            ]
            tgt.append(VarSpec(f"sequential/{_layer_name(i)}/{leaf}", shape, order=len(tgt)))
    src += [
        VarSpec("beta1_power", ()),
        VarSpec("beta2_power", ()),
        VarSpec("global_step", (), "int64"),
    ]
    return src, tgt


def run(n_vars: int, case: str, repeat: int) -> float:
    src, tgt = build(n_vars, case)
    best = float("inf")
    for _ in range(repeat):
        normalise.cache_clear()  # measure a cold call, not a warm name cache
        strip_key.cache_clear()
        start = time.process_time()  # CPU time: the machine is shared, wall time is noisy
        plan = derive(src, tgt)
        best = min(best, time.process_time() - start)
    if not plan.complete or len(plan.matches) != n_vars:
        raise SystemExit(f"{case} {n_vars}: plan incomplete ({len(plan.missing)} missing)")
    print(f"{case:9s} {n_vars:6d} variables, {len(src):6d} source entries: {best:6.3f} s CPU")
    return best


MAKE = """
import os, sys
from pathlib import Path
import numpy as np
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from ckptbridge.format import BundleWriter
n_layers, out = int(sys.argv[1]) // 2, Path(sys.argv[2])
def shape(i, leaf): return (2 + (i * 7) % 97, 4) if leaf == "kernel" else (4 + (i * 5) % 13,)
with BundleWriter(out / "src" / "model.ckpt-1") as w:
    for i in range(n_layers):
        for leaf, tf1 in (("kernel", "weights"), ("bias", "biases")):
            z = np.zeros(shape(i, leaf), np.float32)
            for k in ("", "/Adam", "/Adam_1"):
                w.add(f"net/block{i}/fc/{tf1}{k}", z)
    w.add("beta1_power", np.float32(0.9)); w.add("beta2_power", np.float32(0.99))
    w.add("global_step", np.int64(1))
import tensorflow as tf
class Layer(tf.Module):
    def __init__(self, i):
        super().__init__()
        self.kernel = tf.Variable(tf.zeros(shape(i, "kernel")))
        self.bias = tf.Variable(tf.zeros(shape(i, "bias")))
class Net(tf.Module):
    def __init__(self):
        super().__init__()
        self.layers = [Layer(i) for i in range(n_layers)]
tf.train.Checkpoint(model=Net()).write(str(out / "template" / "ckpt"))
"""


def cli(sizes: list[int], repeat: int, baseline: str | None) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = Path(__file__).resolve().parent / "_data" / "plan"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(data / "pycache")
    trees = {"this tree": env}
    if baseline is not None:  # the anchor: the same command on another source tree, alternated
        trees["baseline"] = {**env, "PYTHONPATH": baseline}

    def timed(argv: list[str]) -> dict[str, float]:
        best = dict.fromkeys(trees, float("inf"))
        for tree_env in trees.values():  # a first run of each writes its bytecode cache
            subprocess.run(argv, env=tree_env, check=False, stdout=subprocess.DEVNULL)
        for _ in range(repeat):
            for name, tree_env in trees.items():
                start = time.perf_counter()
                subprocess.run(argv, env=tree_env, check=False, stdout=subprocess.DEVNULL)
                best[name] = min(best[name], time.perf_counter() - start)
        return best

    floor = timed([sys.executable, "-c", "import ckptbridge.cli._main, ckptbridge.conversion"])
    times = {}
    for n in sizes:
        where = data / f"{n}"
        if not (where / "template" / "ckpt.index").exists():
            subprocess.run([sys.executable, "-c", MAKE, str(n), str(where)], env=env, check=True)
        argv = [sys.executable, "-m", "ckptbridge", "plan", str(where / "src" / "model.ckpt-1"),
                "--target", str(where / "template" / "ckpt"), "--json"]  # fmt: skip
        got = timed(argv)
        times[n] = got["this tree"]
        line = (f"plan CLI {n:6d} variables ({3 * n + 3} entries): {times[n]:6.2f} s wall, best of "
                f"{repeat}; start-up floor {floor['this tree']:.2f} s")  # fmt: skip
        if baseline is not None:
            line += f"; baseline tree {got['baseline']:.2f} s -> {times[n] / got['baseline']:.2f}x"
        print(line)
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        print(f"{hi // lo}x variables -> {times[hi] / times[lo]:.1f}x time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cli", action="store_true", help="whole-process `ckptbridge plan --json`")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument(
        "--baseline", metavar="SRC", help="with --cli: also time another tree's src/ (the anchor)"
    )
    args = parser.parse_args()
    if args.cli:
        cli(args.sizes, args.repeat, args.baseline)
        return
    for case in ("names", "structure"):
        small = run(2_000, case, args.repeat)
        large = run(20_000, case, args.repeat)
        verdict = "ok" if large < 5.0 and large / small <= 15.0 else "TOO SLOW"
        print(f"{case:9s} 10x variables -> {large / small:.1f}x time  [{verdict}]")


if __name__ == "__main__":
    main()
