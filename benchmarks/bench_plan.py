"""Benchmark: ``derive`` for 2,000 and 20,000 variables plus their Adam slots (by hand, not in CI).

Target (issue 3): 20,000 variables (60,000 source entries with the slots) under 5 s, and 10x the
variables in at most 15x the time. Two synthetic cases, literal VarSpecs, no TensorFlow:

- ``names``: TF1 keys under an outer scope (``net/dense_7/weights``) vs Keras 3 paths
  (``sequential/dense_7/kernel``): decided by vocabulary + unique common suffix.
- ``structure``: TF-slim-like keys that share nothing with the Keras names
  (``net/block7/fc/weights`` vs ``dense_7/kernel``): decided by creation order + shape.

Run:  python benchmarks/bench_plan.py [--repeat 3]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for case in ("names", "structure"):
        small = run(2_000, case, args.repeat)
        large = run(20_000, case, args.repeat)
        verdict = "ok" if large < 5.0 and large / small <= 15.0 else "TOO SLOW"
        print(f"{case:9s} 10x variables -> {large / small:.1f}x time  [{verdict}]")


if __name__ == "__main__":
    main()
