"""Benchmark: ``ckptbridge.restore`` of a TF-slim VGG-16 TF1 checkpoint into
``keras.applications.VGG16`` on each Keras backend, beside the same restore on TensorFlow.

Each backend runs in its own process (``KERAS_BACKEND`` is fixed at import); the anchor is the
TensorFlow backend, measured in the same run. TensorFlow may live in another environment than JAX
and PyTorch: give each backend its interpreter. Run by hand::

    python benchmarks/bench_backends.py --rounds 3 \\
        --python tensorflow=/work/venv/bin/python \\
        --python jax=/work/venv-notf/bin/python --python numpy=/work/venv-notf/bin/python \\
        --python torch=/work/venv-notf/bin/python

One backend alone: ``python benchmarks/bench_backends.py --backend jax`` (prints its median).
The checkpoint (random values, ~530 MB) is written once by ckptbridge's own BundleWriter to
``benchmarks/_data/backends_vgg16`` (no TensorFlow needed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "_data" / "backends_vgg16"
PREFIX = DATA / "model.ckpt"


def _write_checkpoint() -> None:
    from make_vgg16 import vgg16_shapes  # beside this script: benchmarks run as scripts

    from ckptbridge.format import BundleWriter

    rng = np.random.default_rng(0)
    with BundleWriter(PREFIX) as writer:
        for name, shape in vgg16_shapes():
            writer.add(name, rng.standard_normal(shape, dtype=np.float32) * 0.01)


def _one_backend(rounds: int) -> dict[str, object]:
    import keras

    import ckptbridge

    model = keras.applications.VGG16(weights=None)
    first = ckptbridge.restore(model, PREFIX, rules="preset:slim-vgg16")  # warms the page cache
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        ckptbridge.restore(model, PREFIX, rules="preset:slim-vgg16")
        times.append(time.perf_counter() - start)
    return {
        "backend": keras.backend.backend(),
        "median_s": statistics.median(times),
        "complete": first.complete,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", help="run one backend in this process and print JSON")
    parser.add_argument("--python", action="append", default=[], metavar="BACKEND=PATH")
    args = parser.parse_args()
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
        print(json.dumps(_one_backend(args.rounds)))
        return
    if not Path(f"{PREFIX}.index").exists():
        print(f"writing a VGG-16-sized TF1 checkpoint to {PREFIX} ...")
        _write_checkpoint()
    pythons = dict(p.split("=", 1) for p in args.python) or {
        b: sys.executable for b in ("tensorflow", "jax", "numpy", "torch")
    }
    results = {}
    for backend, python in pythons.items():
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        out = subprocess.run(
            [python, __file__, "--backend", backend, "--rounds", str(args.rounds)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        results[backend] = json.loads(out.stdout.strip().splitlines()[-1])
    anchor = results.get("tensorflow", {}).get("median_s")
    for backend, r in results.items():
        ratio = f"{r['median_s'] / anchor:.2f}x TF" if anchor else "no TF anchor"
        print(f"{backend:<10} restore VGG-16 median {r['median_s']:.3f} s  ({ratio})  "
              f"complete={r['complete']} tensorflow imported={r['tensorflow_imported']}")  # fmt: skip


if __name__ == "__main__":
    main()
