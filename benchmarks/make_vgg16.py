"""Generate a VGG-16-sized TF1 checkpoint (TF-slim names, float32, ~553 MB) for the benchmarks.

Writes ``benchmarks/_data/vgg16/model.ckpt`` (+ ``checkpoint`` state file) with ckptbridge's
streaming :class:`~ckptbridge.format.BundleWriter` (one tensor in memory at a time), then checks
that TensorFlow lists it. Other benchmarks reuse it. Run by hand::

    python benchmarks/make_vgg16.py [--out benchmarks/_data/vgg16] [--force]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ckptbridge.format import BundleWriter, write_state_file

DATA = Path(__file__).resolve().parent / "_data"

_CONV = [
    ("conv1", [(3, 64), (64, 64)]),
    ("conv2", [(64, 128), (128, 128)]),
    ("conv3", [(128, 256), (256, 256), (256, 256)]),
    ("conv4", [(256, 512), (512, 512), (512, 512)]),
    ("conv5", [(512, 512), (512, 512), (512, 512)]),
]
_FC = [("fc6", (7, 7, 512, 4096)), ("fc7", (1, 1, 4096, 4096)), ("fc8", (1, 1, 4096, 1000))]


def vgg16_shapes() -> Iterator[tuple[str, tuple[int, ...]]]:
    """Yield ``(name, shape)`` of every variable of TF-slim's ``vgg_16``."""
    for block, layers in _CONV:
        for i, (cin, cout) in enumerate(layers, 1):
            yield f"vgg_16/{block}/{block}_{i}/weights", (3, 3, cin, cout)
            yield f"vgg_16/{block}/{block}_{i}/biases", (cout,)
    for name, shape in _FC:
        yield f"vgg_16/{name}/weights", shape
        yield f"vgg_16/{name}/biases", (shape[-1],)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA / "vgg16")
    parser.add_argument("--force", action="store_true", help="rewrite even if it exists")
    args = parser.parse_args()
    prefix = args.out / "model.ckpt"
    if prefix.with_name("model.ckpt.index").exists() and not args.force:
        print(f"{prefix} exists (use --force to rewrite)")
        return 0
    rng = np.random.default_rng(16)
    start = time.perf_counter()
    total = 0
    with BundleWriter(prefix) as writer:
        for name, shape in vgg16_shapes():
            value = rng.standard_normal(shape, dtype=np.float32) * 0.01
            writer.add(name, value)
            total += value.nbytes
        writer.add("global_step", np.int64(1000))
    write_state_file(args.out, "model.ckpt", ["model.ckpt"])
    print(f"wrote {prefix}: {total / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")
    check = "import sys, tensorflow as tf; print(len(tf.train.list_variables(sys.argv[1])))"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    listed = subprocess.run(
        [sys.executable, "-c", check, str(prefix)], capture_output=True, text=True, env=env
    )
    print(f"TensorFlow lists {listed.stdout.strip()} variables")
    return 0 if listed.stdout.strip() == "33" else 1


if __name__ == "__main__":
    raise SystemExit(main())
