"""Conv + BatchNorm families restored without rules, proven by equal outputs.

The TF1 side is TF-slim's own code (``tf_slim.nets``: ResNet v1, Inception v3) and
``tf.compat.v1.layers``; the Keras side is what a user writes (a hand-written ResNet, a Sequential)
or ``keras.applications.InceptionV3``. Slim keeps a conv's ``weights`` and its ``BatchNorm/*`` under
one scope where Keras has two layers; without a ``.meta`` the checkpoint lists its keys
alphabetically, and slim's names (or the ``conv2d_N`` counters) give the creation order back.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import ckptbridge
from slim_builders import (
    RESNET_BLOCKS,
    RESNET_CLASSES,
    SlimCheckpoint,
    write_inception_v3,
    write_resnet_v1,
)

pytestmark = pytest.mark.tf
v1 = tf.compat.v1
L = keras.layers


@pytest.fixture(autouse=True)
def fresh_layer_names() -> Iterator[None]:
    """Leave Keras's name counters as they were found: later tests expect ``dense``, not ``dense_93``."""
    yield
    keras.backend.clear_session()


def _conv_bn(x: Any, filters: int, size: int, stride: int = 1) -> Any:
    """slim's ``conv2d`` (+ ``conv2d_same``'s explicit padding when strided) and its BatchNorm."""
    if stride > 1 and size > 1:
        begin = (size - 1) // 2
        x = L.ZeroPadding2D(((begin, size - 1 - begin), (begin, size - 1 - begin)))(x)
    pad = "valid" if stride > 1 and size > 1 else "same"
    x = L.Conv2D(filters, size, strides=stride, padding=pad, use_bias=False)(x)
    return L.BatchNormalization(epsilon=1e-5)(x)


def keras_resnet(*, shortcut_last: bool = False) -> keras.Model:
    """A user's ResNet v1: Conv2D(use_bias=False) + BatchNormalization units, a Dense head."""
    inputs = keras.Input((32, 32, 3))
    x = L.MaxPooling2D(3, 2, padding="same")(L.ReLU()(_conv_bn(inputs, 64, 7, 2)))
    for depth, units, block_stride in RESNET_BLOCKS:
        for unit in range(units):
            stride = block_stride if unit == units - 1 else 1
            project = x.shape[-1] != 4 * depth
            shortcut = _conv_bn(x, 4 * depth, 1, stride) if project and not shortcut_last else x
            r = L.ReLU()(_conv_bn(x, depth, 1))
            r = L.ReLU()(_conv_bn(r, depth, 3, stride))
            r = _conv_bn(r, 4 * depth, 1)
            if project and shortcut_last:
                shortcut = _conv_bn(x, 4 * depth, 1, stride)
            elif not project and stride > 1:
                shortcut = L.MaxPooling2D(1, stride)(x)
            x = L.ReLU()(L.Add()([shortcut, r]))
    return keras.Model(inputs, L.Dense(RESNET_CLASSES)(L.GlobalAveragePooling2D()(x)))


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SlimCheckpoint]:
    """One slim ResNet-v1 saved three ways: V2 with .meta, V2 without, one V1 file without."""
    return write_resnet_v1(tmp_path_factory.mktemp("resnet"))


@pytest.mark.parametrize("saved", ["meta", "no-meta", "v1-file"])
def test_slim_resnet_v1_into_a_hand_written_keras_resnet(
    resnet: dict[str, SlimCheckpoint], saved: str
) -> None:
    ckpt = resnet[saved]
    if saved == "v1-file":
        assert [p.name for p in ckpt.prefix.parent.iterdir()] == ["resnet_v1_50.ckpt"]
    model = keras_resnet()
    report = ckptbridge.restore(model, ckpt.prefix)
    assert report.complete and report.unused == []
    got = np.asarray(model(ckpt.inputs))
    np.testing.assert_allclose(got, ckpt.outputs.reshape(got.shape), rtol=1e-5, atol=1e-4)
    plan = report.plan
    assert plan is not None
    assert plan.family == (None if saved == "meta" else "TF-slim ResNet v1 (resnet_v1_50)")
    head = plan.match_for(model.layers[-1].kernel.path)
    assert head is not None and head.source == "resnet_v1_50/logits/weights"


def test_a_shortcut_made_after_the_residual_is_a_tie_not_a_guess(
    resnet: dict[str, SlimCheckpoint],
) -> None:
    """Slim makes a unit's shortcut conv first; this model makes it last. Creation order no
    longer lines up and shapes alone cannot tell the units' 1x1 convs apart: refused, reported."""
    plan = ckptbridge.plan(resnet["no-meta"].prefix, keras_resnet(shortcut_last=True))
    assert not plan.complete
    assert any(u.why.startswith("ambiguous: ") for u in plan.missing)
    wrong = [m for m in plan.matches if "creation order" in m.reason]
    assert wrong == []
    with pytest.raises(
        ckptbridge.NotFoundError,
        match=r"^\d+ model '\w+' variable\(s\) have no match in '.*model\.ckpt' \(\d+ matched\)\.\n"
        r"model '\w+' variable 'batch_normalization(_\d+)?/gamma' \(\d+,\) has no match in .*\n"
        r"    why: ambiguous: .*\n"
        r"  also 'batch_normalization(_\d+)?/beta' .*: the same reason\.\n"
        r"\.\.\. and \d+ more unmatched model '\w+' variable\(s\) in \d+ more layer\(s\) "
        r"\(ckptbridge\.plan\(checkpoint, model\) lists them all\)\.\n(?s:.*)$",
    ) as info:
        ckptbridge.restore(keras_resnet(shortcut_last=True), resnet["no-meta"].prefix)
    assert len(str(info.value)) < 2000  # one entry per tied variable made 20,000 characters


def test_slim_inception_v3_into_keras_applications(tmp_path: Path) -> None:
    ckpt = write_inception_v3(tmp_path)
    model = keras.applications.InceptionV3(include_top=False, weights=None, input_shape=(75, 75, 3))
    report = ckptbridge.restore(model, ckpt.prefix)
    assert report.complete and report.unused == []
    assert report.plan is not None and report.plan.family == "TF-slim Inception (InceptionV3)"
    got = np.asarray(model(ckpt.inputs))
    np.testing.assert_allclose(got, ckpt.outputs, rtol=1e-4, atol=1e-4)


def _tf_layers(directory: Path, *, meta: bool) -> SlimCheckpoint:
    """conv2d 4 + batch_normalization + ReLU, conv2d 8 (stride 2) + batch_normalization + ReLU,
    flatten, dense 5: what ``tf.compat.v1.layers`` users wrote."""
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    stats = {"moving_mean_initializer": v1.random_normal_initializer(0.0, 0.3),
             "moving_variance_initializer": v1.random_uniform_initializer(0.5, 1.5),
             "beta_initializer": v1.random_normal_initializer(0.0, 0.3),
             "gamma_initializer": v1.random_normal_initializer(1.0, 0.3)}  # fmt: skip
    with tf.Graph().as_default(), v1.Session() as sess, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "tf.layers is deprecated": the point here
        v1.set_random_seed(3)
        x = v1.placeholder(tf.float32, inputs.shape)
        h = v1.layers.conv2d(x, 4, 3, padding="same", use_bias=False)
        h = tf.nn.relu(v1.layers.batch_normalization(h, training=False, **stats))
        h = v1.layers.conv2d(h, 8, 3, strides=2, padding="same", use_bias=False)
        h = tf.nn.relu(v1.layers.batch_normalization(h, training=False, **stats))
        out = v1.layers.dense(v1.layers.flatten(h), 5)
        sess.run(v1.global_variables_initializer())
        outputs = sess.run(out, {x: inputs})
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"), write_meta_graph=meta)
    return SlimCheckpoint(Path(prefix), inputs, outputs)


def keras_sequential() -> keras.Sequential:
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        L.Conv2D(4, 3, padding="same", use_bias=False),
        L.BatchNormalization(epsilon=1e-3),
        L.ReLU(),
        L.Conv2D(8, 3, strides=2, padding="same", use_bias=False),
        L.BatchNormalization(epsilon=1e-3),
        L.ReLU(),
        L.Flatten(),
        L.Dense(5),
    ])  # fmt: skip


@pytest.mark.parametrize("meta", [True, False], ids=["meta", "no-meta"])
def test_tf_layers_conv_batch_norm_into_keras_sequential(tmp_path: Path, meta: bool) -> None:
    ckpt = _tf_layers(tmp_path, meta=meta)
    model = keras_sequential()
    report = ckptbridge.restore(model, ckpt.prefix)
    assert report.complete and report.unused == []
    np.testing.assert_allclose(np.asarray(model(ckpt.inputs)), ckpt.outputs, rtol=1e-5, atol=1e-5)
    second_conv = model.layers[3].kernel.path
    kernel = report.plan.match_for(second_conv) if report.plan else None
    assert kernel is not None and kernel.source == "conv2d_1/kernel"
