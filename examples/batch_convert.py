"""Batch-convert TF1 training runs into TF2 checkpoints that plain TensorFlow loads.

A migration happens once: every step of every run is re-saved in the new model's format, on a
machine that needs only the template the new model wrote (``tf.train.Checkpoint(model=m).write``).
Untouched tensors are copied byte for byte; outputs appear atomically; a rerun skips what is done.

Run the self-contained demo (writes two small TF1 runs in a temporary directory)::

    python examples/batch_convert.py

or convert your own runs::

    python examples/batch_convert.py runs/exp1 runs/exp2 --target template/ckpt --out converted/
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import ckptbridge
from ckptbridge._optional import import_tensorflow


def convert_runs(
    runs: list[Path], target: str, out: Path, rules: str | None = None
) -> list[ckptbridge.ConversionReport]:
    """Convert each run directory (every step of its state file) into ``out/<run name>``."""
    bridge = ckptbridge.Bridge(rules=rules)
    reports = []
    for run in runs:
        report = bridge.convert(run, out / run.name, target=target, verify=True)
        print(report)
        reports.append(report)
    return reports


def _write_tf1_run(directory: Path, seed: int) -> None:
    """A TF1-style training loop (variable scopes, Saver) saving steps 100, 200, 300."""
    import numpy as np
    tf = import_tensorflow()

    v1 = tf.compat.v1
    directory.mkdir(parents=True, exist_ok=True)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(seed)
        x = v1.placeholder(tf.float32, [None, 8], name="x")
        with v1.variable_scope("hidden"):
            w1 = v1.get_variable("weights", [8, 16])
            b1 = v1.get_variable("biases", [16], initializer=v1.zeros_initializer())
        with v1.variable_scope("output"):
            w2 = v1.get_variable("weights", [16, 2])
            b2 = v1.get_variable("biases", [2], initializer=v1.zeros_initializer())
        logits = tf.matmul(tf.nn.relu(tf.matmul(x, w1) + b1), w2) + b2
        step = v1.train.get_or_create_global_step()
        train = v1.train.AdamOptimizer(0.01).minimize(tf.reduce_sum(logits**2), global_step=step)
        saver = v1.train.Saver(max_to_keep=5)
        sess.run(v1.global_variables_initializer())
        feed = {x: np.random.default_rng(seed).normal(size=(4, 8)).astype(np.float32)}
        for save_at in (100, 200, 300):
            while sess.run(step) < save_at:
                sess.run(train, feed)
            saver.save(sess, str(directory / "model.ckpt"), global_step=save_at)


def demo() -> int:
    import keras
    import numpy as np
    tf = import_tensorflow()

    def new_model() -> keras.Model:
        return keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
        )

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = [root / "runs" / "exp1", root / "runs" / "exp2"]
        for seed, run in enumerate(runs):
            _write_tf1_run(run, seed)
        template = tf.train.Checkpoint(model=new_model()).write(str(root / "template" / "ckpt"))
        out = root / "converted"
        reports = convert_runs(runs, template, out)
        print("\nRerun of the same command:")
        again = convert_runs(runs, template, out)
        skipped = sum(r.counts()["skipped"] for r in again)
        print(f"\n{skipped} checkpoints skipped on the rerun: nothing rewritten")
        newest = tf.train.latest_checkpoint(str(out / "exp2"))
        model = new_model()
        tf.train.Checkpoint(model=model).read(newest).assert_existing_objects_matched()
        old = tf.train.load_checkpoint(str(runs[1] / "model.ckpt-300"))
        same = np.array_equal(model.layers[0].kernel.numpy(), old.get_tensor("hidden/weights"))
        print(f"Newest converted step {Path(newest).name}: plain TensorFlow restores it; "
              f"kernel == TF1 hidden/weights: {same}")  # fmt: skip
        return 0 if all(r.ok for r in reports) and same else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="training directories (none: demo)")
    parser.add_argument("--target", help="template checkpoint, .meta file")
    parser.add_argument("--out", type=Path, help="output directory")
    parser.add_argument("--rules", help="rules file (YAML/TOML/JSON)")
    args = parser.parse_args(argv)
    if not args.runs:
        return demo()
    if not args.target or not args.out:
        parser.error("--target and --out are required with run directories")
    reports = convert_runs(args.runs, args.target, args.out, args.rules)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
