"""Benchmark: ``ckptbridge.restore`` of a VGG-16-sized TF1 checkpoint into ``keras.applications.VGG16``
against TensorFlow's own ``tf.train.Checkpoint(model=...).restore`` of the equivalent TF2 checkpoint.

Target (issue 3): ckptbridge within 1.3x of TensorFlow. Run by hand::

    python benchmarks/bench_restore.py [--rounds 3]

Uses the TF-slim-named checkpoint of ``benchmarks/make_vgg16.py`` when ``benchmarks/_data`` has
one; otherwise writes its own (``benchmarks/_data/restore_vgg16``, ~530 MB, TF1 graph + Saver).
Rounds alternate the two restores into the same model, so both see a warm page cache.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf
from make_vgg16 import vgg16_shapes  # beside this script: benchmarks run as scripts

DATA = Path(__file__).resolve().parent / "_data"


def _existing_checkpoint() -> str | None:
    for index in sorted(DATA.glob("**/*.index")):
        if "restore_vgg16" in str(index) or "tf2" in str(index):
            continue
        names = {n for n, _ in tf.train.list_variables(str(index)[: -len(".index")])}
        if "vgg_16/fc6/weights" in names:
            return str(index)[: -len(".index")]
    return None


def write_slim_vgg16(directory: Path) -> str:
    """A TF-slim ``vgg_16`` checkpoint written by a TF1 graph and Saver (random values)."""
    v1 = tf.compat.v1
    directory.mkdir(parents=True, exist_ok=True)
    with tf.Graph().as_default(), v1.Session() as sess:
        init = v1.random_normal_initializer(stddev=0.01)
        for name, shape in vgg16_shapes():
            v1.get_variable(name, shape, initializer=init)
        v1.train.get_or_create_global_step()
        sess.run(v1.global_variables_initializer())
        return str(v1.train.Saver().save(sess, str(directory / "model.ckpt")))


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import keras

    import ckptbridge

    prefix = _existing_checkpoint() or str(DATA / "restore_vgg16" / "model.ckpt")
    if not Path(prefix + ".index").exists():
        print(f"writing a VGG-16-sized TF1 checkpoint to {prefix} ...")
        write_slim_vgg16(Path(prefix).parent)
    size = sum(f.stat().st_size for f in Path(prefix).parent.glob(Path(prefix).name + ".data-*"))
    model = keras.applications.VGG16(weights=None)
    tf2_prefix = tf.train.Checkpoint(model=model).write(str(DATA / "restore_vgg16_tf2" / "ckpt"))

    plan_s = _timed(lambda: ckptbridge.plan(prefix, model))
    print(str(ckptbridge.restore(model, prefix)).splitlines()[0])  # also warms the page cache
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(args.rounds):
        ours.append(_timed(lambda: ckptbridge.restore(model, prefix)))
        theirs.append(_timed(lambda: tf.train.Checkpoint(model=model).restore(tf2_prefix)))
    a, b = statistics.median(ours), statistics.median(theirs)
    print(f"checkpoint: {prefix} ({size / 1e6:.0f} MB of tensors)")
    print(f"plan only:                            {plan_s:.3f} s")
    print(f"ckptbridge.restore (TF1 -> Keras 3):  median {a:.3f} s  {[round(t, 3) for t in ours]}")
    print(
        f"tf.train.Checkpoint.restore (TF2):    median {b:.3f} s  {[round(t, 3) for t in theirs]}"
    )
    print(f"ratio: {a / b:.2f}x (target <= 1.30x)")


if __name__ == "__main__":
    main()
