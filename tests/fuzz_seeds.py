"""Seed checkpoints for the fuzz suite: written by real TensorFlow code, or read from the corpora.

A seed is a folder of files plus the path a user would pass (``open``) and what kind it is. Real
TF1 code (``tf.compat.v1`` graph, a partitioned variable, Adam slots, a string and an int64, the
``Saver`` in both the V2 bundle and the V1 single-file format, with its ``.meta`` and ``checkpoint``
state file), ``tf.train.Checkpoint`` of a Keras model with its optimizer, and a Keras 3
``.weights.h5`` are built once (:func:`build_seeds`, which imports TensorFlow); small corpus
checkpoints are read in place (:func:`corpus_seeds`) and only ever copied into temporary folders::

    seeds = build_seeds(Path("/tmp/seeds")) + corpus_seeds([Path("/work/shared/corpus")])
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

_MAX_SEED_BYTES = 120_000  # every file of a corpus seed together; keeps each case fast
_DATA = re.compile(r"\.data-\d{5}-of-\d{5}$")
_NOT_V1 = re.compile(
    r"(\.(index|meta|txt|md|pb|pbtxt|json|py|h5|keras)|checkpoint|\.data-\d{5}-of-\d{5})$"
)


@dataclass(frozen=True)
class Seed:
    """A checkpoint to mutate: ``files`` (absolute paths) copied flat into a case folder.

    ``open`` is the name passed to ckptbridge inside that folder (``""`` = the folder itself);
    ``kind`` is ``bundle``, ``v1``, ``keras`` or ``dir`` (a training folder with its state file).
    """

    name: str
    kind: str
    files: tuple[str, ...]
    open: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _bundle_files(prefix: Path) -> list[Path]:
    found = [prefix.with_name(prefix.name + ".index")]
    found += sorted(p for p in prefix.parent.glob(prefix.name + ".data-*") if _DATA.search(p.name))
    meta = prefix.with_name(prefix.name + ".meta")
    return found + ([meta] if meta.is_file() else [])


def corpus_seeds(roots: list[Path]) -> list[Seed]:
    """Small bundles and V1 files found under ``roots`` (read in place, never modified)."""
    seeds: list[Seed] = []
    for root in roots:
        if not root.is_dir():
            continue
        for index in sorted(root.rglob("*.index")):
            prefix = index.with_name(index.name[: -len(".index")])
            files = _bundle_files(prefix)
            if sum(f.stat().st_size for f in files) > _MAX_SEED_BYTES:
                continue
            name = f"{index.parent.relative_to(root)}/{prefix.name}".replace("/", "~")
            seeds.append(Seed(name, "bundle", tuple(map(str, files)), prefix.name))
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.stat().st_size > _MAX_SEED_BYTES:
                continue
            if _NOT_V1.search(path.name):
                continue
            with path.open("rb") as handle:
                handle.seek(max(path.stat().st_size - 8, 0))
                magic = handle.read(8)
            if magic == (0xDB4775248B80FB57).to_bytes(8, "little"):
                name = f"{path.parent.relative_to(root)}/{path.name}".replace("/", "~")
                seeds.append(Seed(name, "v1", (str(path),), path.name))
    return seeds


def _write_tf1(folder: Path, version: int) -> Path:
    import tensorflow as tf

    v1 = tf.compat.v1
    rng = np.random.default_rng(5)
    inputs = rng.normal(size=(4, 6)).astype(np.float32)
    labels = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(5)
        x = v1.placeholder(tf.float32, [None, 6], name="x")
        y = v1.placeholder(tf.float32, [None, 3], name="y")
        with v1.variable_scope("hidden"):
            w1 = v1.get_variable(
                "weights", [6, 5], partitioner=v1.fixed_size_partitioner(2),
                initializer=v1.truncated_normal_initializer(0.0, 0.3),
            )  # fmt: skip
            b1 = v1.get_variable("biases", [5], initializer=v1.zeros_initializer())
        with v1.variable_scope("logits"):
            w2 = v1.get_variable("weights", [5, 3])
            b2 = v1.get_variable("biases", [3], dtype=tf.float64)
        v1.get_variable(
            "vocab", initializer=tf.constant([b"alpha", b"", b"gamma"]), trainable=False
        )
        v1.get_variable("half", initializer=tf.constant([1.5, -2.0], tf.float16), trainable=False)
        step = v1.train.get_or_create_global_step()
        h = tf.nn.relu(tf.matmul(x, w1) + b1)
        logits = tf.matmul(h, w2) + tf.cast(b2, tf.float32)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=logits))
        train = v1.train.AdamOptimizer(0.01).minimize(loss, global_step=step)
        sess.run(v1.global_variables_initializer())
        sess.run(train, {x: inputs, y: labels})
        write_version = v1.train.SaverDef.V1 if version == 1 else v1.train.SaverDef.V2
        saver = v1.train.Saver(write_version=write_version)
        return Path(saver.save(sess, str(folder / "model.ckpt"), global_step=step))


def _write_tf2(folder: Path) -> Path:
    import tensorflow as tf

    model = tf.keras.Sequential(
        [
            tf.keras.Input((4,)),
            tf.keras.layers.Dense(3, activation="relu"),
            tf.keras.layers.Dense(2),
        ]
    )
    optimizer = tf.keras.optimizers.Adam(0.01)
    data = np.random.default_rng(6).normal(size=(8, 4)).astype(np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(data) ** 2)
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                  model.trainable_variables, strict=True))  # fmt: skip
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)
    return Path(ckpt.save(str(folder / "ckpt")))


def _write_keras(folder: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    path = folder / "model.weights.h5"
    model.save_weights(path)
    return path


def build_seeds(folder: Path) -> list[Seed]:
    """Write the TensorFlow-made seeds under ``folder`` once (cached in ``seeds.json``)."""
    listing = folder / "seeds.json"
    if listing.is_file():
        return [Seed(**{**s, "files": tuple(s["files"])}) for s in json.loads(listing.read_text())]
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    seeds: list[Seed] = []
    for name, version in (("tf1_saver", 2), ("tf1_saver_v1", 1)):
        sub = folder / name
        sub.mkdir(parents=True, exist_ok=True)
        prefix = _write_tf1(sub, version)
        files = sorted(p for p in sub.iterdir() if p.is_file())
        if version == 2:
            seeds.append(Seed(name, "bundle", tuple(map(str, _bundle_files(prefix))), prefix.name))
        else:
            seeds.append(Seed(name, "v1", (str(prefix),), prefix.name))
        seeds.append(Seed(name + "_dir", "dir", tuple(map(str, files)), ""))
    sub = folder / "tf2_keras"
    sub.mkdir(parents=True, exist_ok=True)
    prefix = _write_tf2(sub)
    seeds.append(Seed("tf2_keras", "bundle", tuple(map(str, _bundle_files(prefix))), prefix.name))
    sub = folder / "keras3"
    sub.mkdir(parents=True, exist_ok=True)
    path = _write_keras(sub)
    seeds.append(Seed("keras3_weights", "keras", (str(path),), path.name))
    listing.write_text(json.dumps([s.to_json() for s in seeds], indent=1))
    return seeds
