"""Benchmark the native V1 reader against TensorFlow's own V1 reader (run by hand).

Writes a V1 file with ``Saver(write_version=V1)`` (float32 weights and int64 ids, ~40 MB: packed
floats and varints), then reads every tensor with ckptbridge and with
``tf.compat.v1.train.NewCheckpointReader(...).get_tensor``, alternating, best of N rounds, in the
same process. Target: at least as fast as TensorFlow::

    python benchmarks/bench_v1.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from ckptbridge.format import open_checkpoint

DATA = Path(__file__).resolve().parent / "_data" / "v1"


def make() -> Path:
    path = DATA / "model.ckpt"
    if path.is_file():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as sess:
        for i in range(4):
            with v1.variable_scope(f"layer{i}"):
                v1.Variable(rng.standard_normal((1024, 2048), dtype=np.float32), name="kernel")
        v1.Variable(rng.integers(-(2**40), 2**40, 1_000_000), name="ids")
        sess.run(v1.global_variables_initializer())
        saver = v1.train.Saver(write_version=v1.train.SaverDef.V1)
        saver.save(sess, str(path), write_meta_graph=False, write_state=False)
    return path


def ours(path: Path) -> float:
    start = time.perf_counter()
    with open_checkpoint(path) as ckpt:
        for key in ckpt.entries:
            ckpt.read(key)
    return time.perf_counter() - start


def theirs(path: Path) -> float:
    start = time.perf_counter()
    reader = tf.compat.v1.train.NewCheckpointReader(str(path))
    for key in reader.get_variable_to_shape_map():
        reader.get_tensor(key)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    path = make()
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(ours(path))
        b.append(theirs(path))
    size = path.stat().st_size / 1e6
    print(f"{path} ({size:.1f} MB), best of {rounds}")
    print(f"ckptbridge V1Reader: {min(a):.3f} s   TensorFlow reader: {min(b):.3f} s")
    print(f"ratio (TensorFlow / ckptbridge): {min(b) / min(a):.2f}x")


if __name__ == "__main__":
    main()
