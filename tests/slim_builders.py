"""TF1 checkpoints written by TF-slim's own nets (``tf_slim.nets``), as the slim model zoo made them.

tf-slim 1.1 runs on TensorFlow 2.21 in graph mode, except that TensorFlow's
``tensorflow.python.layers.normalization`` lazily imports ``tf_keras.legacy_tf_layers``, a module
tf-keras 2.21 moved to ``tf_keras.src.legacy_tf_layers``: :func:`_slim` points the old name at it.
Every variable gets a random value (BatchNorm's moving statistics too), so that a wrong pairing
changes the output; the output is computed by the TF1 graph itself (``is_training=False``).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1

# Small ResNet-v1 blocks under resnet_v1_50's names: (base depth, units, stride).
RESNET_BLOCKS = ((4, 2, 2), (8, 2, 2), (16, 2, 1))
RESNET_CLASSES = 10


@dataclass(frozen=True)
class SlimCheckpoint:
    """``prefix`` (bundle prefix or V1 file), the input fed and what the TF1 graph computed."""

    prefix: Path
    inputs: np.ndarray
    outputs: np.ndarray


def _slim() -> Any:
    import tf_keras.src.legacy_tf_layers as legacy
    import tf_keras.src.legacy_tf_layers.normalization as legacy_normalization

    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy)
    sys.modules.setdefault("tf_keras.legacy_tf_layers.normalization", legacy_normalization)
    import tf_slim

    return tf_slim


@contextmanager
def _quiet() -> Iterator[None]:
    """slim builds on the deprecated ``tf.layers``, which says so on every layer: the point here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _random_statistics(slim: Any) -> Any:
    """BatchNorm parameters and statistics drawn at random instead of zeros and ones."""
    return slim.arg_scope(
        [slim.batch_norm],
        param_initializers={
            "beta": v1.random_normal_initializer(0.0, 0.3),
            "gamma": v1.random_normal_initializer(1.0, 0.3),
            "moving_mean": v1.random_normal_initializer(0.0, 0.3),
            "moving_variance": v1.random_uniform_initializer(0.5, 1.5),
        },
    )


def _save(sess: Any, prefix: Path, *, version: int = 2, meta: bool = True) -> Path:
    """A TF1 ``Saver`` save; a V1 file without ``.meta`` is left alone in its folder."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    write_version = v1.train.SaverDef.V1 if version == 1 else v1.train.SaverDef.V2
    saver = v1.train.Saver(write_version=write_version)
    path = Path(saver.save(sess, str(prefix), write_meta_graph=meta))
    if version == 1:
        (prefix.parent / "checkpoint").unlink()
    return path


def write_resnet_v1(directory: Path) -> dict[str, SlimCheckpoint]:
    """``tf_slim.nets.resnet_v1.resnet_v1`` with :data:`RESNET_BLOCKS` under ``resnet_v1_50``.

    Input ``(2, 32, 32, 3)``; output the logits ``(2, 1, 1, 10)`` of the 1x1 ``logits`` conv (with
    biases) after global average pooling. Saved three ways: ``"meta"`` (V2 bundle and ``.meta``),
    ``"no-meta"`` (V2 bundle alone) and ``"v1-file"`` (one V1 file ``resnet_v1_50.ckpt``, as the
    slim model zoo shipped it).
    """
    slim = _slim()
    from tf_slim.nets import resnet_v1

    inputs = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(5)
        x = v1.placeholder(tf.float32, inputs.shape)
        blocks = [
            resnet_v1.resnet_v1_block(f"block{i + 1}", base_depth=d, num_units=n, stride=s)
            for i, (d, n, s) in enumerate(RESNET_BLOCKS)
        ]
        biases = v1.random_normal_initializer(0.0, 0.3)
        with (
            _quiet(),
            slim.arg_scope(resnet_v1.resnet_arg_scope()),
            _random_statistics(slim),
            slim.arg_scope([slim.conv2d], biases_initializer=biases),
        ):
            logits, _ = resnet_v1.resnet_v1(
                x, blocks, num_classes=RESNET_CLASSES, is_training=False, scope="resnet_v1_50"
            )
        sess.run(v1.global_variables_initializer())
        outputs = sess.run(logits, {x: inputs})
        prefixes = {
            "meta": _save(sess, directory / "meta" / "model.ckpt"),
            "no-meta": _save(sess, directory / "no-meta" / "model.ckpt", meta=False),
            "v1-file": _save(sess, directory / "v1" / "resnet_v1_50.ckpt", version=1, meta=False),
        }
    return {k: SlimCheckpoint(p, inputs, outputs) for k, p in prefixes.items()}


def write_inception_v3(directory: Path) -> SlimCheckpoint:
    """``tf_slim.nets.inception_v3.inception_v3_base`` (no heads), one V1 file without ``.meta``.

    Input ``(2, 75, 75, 3)`` (the smallest InceptionV3 takes); output ``Mixed_7c`` ``(2, 1, 1, 2048)``.
    """
    slim = _slim()
    from tf_slim.nets import inception_v3

    inputs = np.random.default_rng(1).normal(size=(2, 75, 75, 3)).astype(np.float32)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(6)
        x = v1.placeholder(tf.float32, inputs.shape)
        with (
            _quiet(),
            slim.arg_scope(inception_v3.inception_v3_arg_scope()),
            _random_statistics(slim),
            slim.arg_scope([slim.batch_norm], is_training=False),
        ):
            net, _ = inception_v3.inception_v3_base(x)
        sess.run(v1.global_variables_initializer())
        outputs = sess.run(net, {x: inputs})
        prefix = _save(sess, directory / "inception_v3.ckpt", version=1, meta=False)
    return SlimCheckpoint(prefix, inputs, outputs)
