"""Shipped presets (src/ckptbridge/presets/*.yaml): each one proven by a TF1 graph == Keras model test.

TF1 checkpoints are written here with real TF1-style code (``tf.compat.v1`` graph mode, variable
scopes, ``get_variable``) mimicking the family's own code (TF-slim's ``nets/vgg.py``,
``tf.compat.v1.layers``, ``tf.contrib.layers``); the corpus estimator checkpoints are covered in
tests/test_corpus_families.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import ckptbridge
from ckptbridge.engine import VarSpec, derive
from ckptbridge.rules import Reshape, available_presets, load_rules

v1 = tf.compat.v1

VGG_BLOCKS = (2, 2, 3, 3, 3)  # convolutions per block, as in vgg_16
SMALL = {
    "size": 64,
    "channels": (4, 4, 8, 8, 8),
    "fc": 16,
    "classes": 5,
}  # 64 / 2**5 = 2: fc6 is 2x2


@dataclass(frozen=True)
class Written:
    prefix: Path
    inputs: np.ndarray
    outputs: np.ndarray


@pytest.fixture(autouse=True)
def fresh_layer_names() -> None:
    keras.backend.clear_session()  # Keras numbers auto-named layers per session (dense, dense_1...)
    tf_keras.backend.clear_session()


def test_the_shipped_presets() -> None:
    assert {"slim-vgg16", "estimator-dnn", "estimator-linear", "tf-layers", "tf1-rnn"} <= set(
        available_presets()
    )
    for name in ("slim-vgg16", "estimator-dnn", "estimator-linear", "tf-layers", "tf1-rnn"):
        assert load_rules(f"preset:{name}").presets == ()  # every preset file validates


# -- slim-vgg16 ----------------------------------------------------------------------------------


def _slim_conv(
    x: Any, scope: str, shape: list[int], padding: str = "SAME", relu: bool = True
) -> Any:
    """``slim.conv2d``: ``<scope>/weights`` [kh, kw, in, out] and ``<scope>/biases`` [out]."""
    with v1.variable_scope(scope):
        w = v1.get_variable("weights", shape, initializer=v1.truncated_normal_initializer(0, 0.3))
        b = v1.get_variable("biases", shape[-1:], initializer=v1.random_normal_initializer(0, 0.1))
        h = tf.nn.conv2d(x, w, strides=1, padding=padding) + b
        return tf.nn.relu(h) if relu else h


def _write_slim_vgg(
    directory: Path, size: int, channels: tuple[int, ...], fc: int, classes: int
) -> Written:
    """``nets/vgg.py`` ``vgg_16`` (is_training=False), channel counts shrunk; fc6-fc8 as convolutions."""
    rng = np.random.default_rng(16)
    inputs = rng.random(size=(2, size, size, 3), dtype=np.float32)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(16)
        x = v1.placeholder(tf.float32, [None, size, size, 3])
        h, c_in = x, 3
        with v1.variable_scope("vgg_16"):
            for block, (repeat, c_out) in enumerate(zip(VGG_BLOCKS, channels, strict=True), 1):
                with v1.variable_scope(f"conv{block}"):  # slim.repeat(..., scope='conv1')
                    for i in range(1, repeat + 1):
                        h, c_in = _slim_conv(h, f"conv{block}_{i}", [3, 3, c_in, c_out]), c_out
                h = tf.nn.max_pool2d(h, 2, 2, "VALID")  # slim.max_pool2d([2, 2], scope='pool1')
            k = size // 2 ** len(VGG_BLOCKS)
            h = _slim_conv(h, "fc6", [k, k, c_in, fc], padding="VALID")  # dropout6: inference
            h = _slim_conv(h, "fc7", [1, 1, fc, fc])
            h = _slim_conv(h, "fc8", [1, 1, fc, classes], relu=False)
            logits = tf.squeeze(h, [1, 2], name="fc8/squeezed")
        probs = tf.nn.softmax(logits)
        sess.run(v1.global_variables_initializer())
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"))
        return Written(Path(prefix), inputs, sess.run(probs, {x: inputs}))


def _vgg_like(k: Any, size: int, channels: tuple[int, ...], fc: int, classes: int) -> Any:
    """``keras.applications.VGG16``'s layers and names, channel counts shrunk."""
    L = k.layers
    inp = k.Input((size, size, 3))
    h = inp
    for block, (repeat, c_out) in enumerate(zip(VGG_BLOCKS, channels, strict=True), 1):
        for i in range(1, repeat + 1):
            h = L.Conv2D(c_out, 3, padding="same", activation="relu", name=f"block{block}_conv{i}")(
                h
            )
        h = L.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(h)
    h = L.Flatten(name="flatten")(h)
    h = L.Dense(fc, activation="relu", name="fc1")(h)
    h = L.Dense(fc, activation="relu", name="fc2")(h)
    return k.Model(inp, L.Dense(classes, activation="softmax", name="predictions")(h), name="vgg16")


FLAVOURS: dict[str, Any] = {"keras3": keras, "tf_keras": tf_keras}


@pytest.fixture(scope="module")
def slim_vgg(tmp_path_factory: pytest.TempPathFactory) -> Written:
    return _write_slim_vgg(tmp_path_factory.mktemp("slim_vgg"), **SMALL)  # type: ignore[arg-type]


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_slim_vgg16_preset_computes_what_slim_computed(flavour: str, slim_vgg: Written) -> None:
    model = _vgg_like(FLAVOURS[flavour], **SMALL)  # type: ignore[arg-type]
    report = ckptbridge.restore(model, slim_vgg.prefix, rules="preset:slim-vgg16")
    np.testing.assert_allclose(model(slim_vgg.inputs), slim_vgg.outputs, rtol=1e-5, atol=1e-6)
    report.assert_consumed()
    fc1 = next(m for m in report.matched if "fc1/kernel" in m.target)
    assert fc1.source == "vgg_16/fc6/weights" and fc1.reason == "rule rename[1]"
    assert fc1.steps == (Reshape(shape=(2 * 2 * 8, 16)),)


def _slim_vgg16_specs(classes: int = 1000) -> list[VarSpec]:
    """The variables of TF-slim's full-size ``vgg_16`` checkpoint (vgg_16_2016_08_28.tar.gz)."""
    specs, c_in = [], 3
    for block, (repeat, c_out) in enumerate(
        zip(VGG_BLOCKS, (64, 128, 256, 512, 512), strict=True), 1
    ):
        for i in range(1, repeat + 1):
            scope = f"vgg_16/conv{block}/conv{block}_{i}"
            specs += [
                VarSpec(f"{scope}/weights", (3, 3, c_in, c_out)),
                VarSpec(f"{scope}/biases", (c_out,)),
            ]
            c_in = c_out
    for name, shape in (
        ("fc6", (7, 7, 512, 4096)),
        ("fc7", (1, 1, 4096, 4096)),
        ("fc8", (1, 1, 4096, classes)),
    ):
        specs += [
            VarSpec(f"vgg_16/{name}/weights", shape),
            VarSpec(f"vgg_16/{name}/biases", shape[-1:]),
        ]
    return [*specs, VarSpec("vgg_16/mean_rgb", (3,)), VarSpec("global_step", (), "int64")]


def test_slim_vgg16_preset_plans_the_real_keras_vgg16() -> None:
    from ckptbridge.sides._live import describe_model

    model = keras.applications.VGG16(weights=None)
    plan = derive(
        _slim_vgg16_specs(), list(describe_model(model).specs), load_rules("preset:slim-vgg16")
    )
    del model
    assert plan.complete and plan.unused == [] and plan.ignored == ["vgg_16/mean_rgb"]
    pairs = {m.target: m.source for m in plan.matches}
    assert len(pairs) == 32
    assert pairs["block5_conv3/kernel"] == "vgg_16/conv5/conv5_3/weights"
    assert pairs["fc1/kernel"] == "vgg_16/fc6/weights"
    assert plan.match_for("fc1/kernel").steps == (Reshape(shape=(25088, 4096)),)  # type: ignore[union-attr]
    assert plan.match_for("predictions/bias").source == "vgg_16/fc8/biases"  # type: ignore[union-attr]
    assert plan.unused_rules == []


# -- tf-layers (tf.contrib.layers names) ---------------------------------------------------------


def _write_contrib(directory: Path) -> Written:
    """``slim/contrib.layers.conv2d(normalizer_fn=batch_norm)`` + two ``fully_connected``, inference.

    Names as contrib writes them: ``Conv/weights`` (no biases with a normalizer),
    ``Conv/BatchNorm/{beta,moving_mean,moving_variance}`` (no gamma: scale=False), and, with
    ``zero_debias_moving_mean=True``, ``Conv/BatchNorm/moving_mean/{biased,local_step}``.
    """
    rng = np.random.default_rng(7)
    inputs = rng.normal(size=(3, 6, 6, 3)).astype(np.float32)
    init = v1.random_normal_initializer
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(7)
        x = v1.placeholder(tf.float32, [None, 6, 6, 3])
        with v1.variable_scope("Conv"):
            w = v1.get_variable("weights", [3, 3, 3, 8], initializer=init(0, 0.3))
            h = tf.nn.conv2d(x, w, strides=1, padding="SAME")
            with v1.variable_scope("BatchNorm"):
                beta = v1.get_variable("beta", [8], initializer=init(0, 0.1))
                mean = v1.get_variable(
                    "moving_mean", [8], initializer=init(0, 0.2), trainable=False
                )
                var = v1.get_variable(
                    "moving_variance",
                    [8],
                    initializer=v1.random_uniform_initializer(0.5, 2),
                    trainable=False,
                )
                with v1.variable_scope("moving_mean"):  # moving_averages._zero_debias
                    v1.get_variable(
                        "biased", [8], initializer=v1.zeros_initializer(), trainable=False
                    )
                    v1.get_variable(
                        "local_step", [], initializer=v1.zeros_initializer(), trainable=False
                    )
                h = tf.nn.relu(tf.nn.batch_normalization(h, mean, var, beta, None, 1e-3))
        h = tf.reshape(h, [-1, 6 * 6 * 8])
        for scope, (n_in, n_out), relu in (
            ("fully_connected", (288, 16), True),
            ("fully_connected_1", (16, 4), False),
        ):
            with v1.variable_scope(scope):
                w = v1.get_variable("weights", [n_in, n_out], initializer=init(0, 0.1))
                b = v1.get_variable("biases", [n_out], initializer=init(0, 0.1))
                h = tf.matmul(h, w) + b
                h = tf.nn.relu(h) if relu else h
        sess.run(v1.global_variables_initializer())
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"))
        return Written(Path(prefix), inputs, sess.run(h, {x: inputs}))


def _contrib_like(k: Any) -> Any:
    L = k.layers
    return k.Sequential([
        k.Input((6, 6, 3)), L.Conv2D(8, 3, padding="same", use_bias=False),
        L.BatchNormalization(scale=False, epsilon=1e-3), L.ReLU(), L.Flatten(),
        L.Dense(16, activation="relu"), L.Dense(4),
    ])  # fmt: skip


@pytest.fixture(scope="module")
def contrib(tmp_path_factory: pytest.TempPathFactory) -> Written:
    return _write_contrib(tmp_path_factory.mktemp("contrib"))


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_tf_layers_preset_on_contrib_layers(flavour: str, contrib: Written) -> None:
    model = _contrib_like(FLAVOURS[flavour])
    report = ckptbridge.restore(model, contrib.prefix, rules="preset:tf-layers")
    np.testing.assert_allclose(model(contrib.inputs), contrib.outputs, rtol=1e-5, atol=1e-5)
    report.assert_consumed()
    assert report.ignored == [
        "Conv/BatchNorm/moving_mean/biased",
        "Conv/BatchNorm/moving_mean/local_step",
    ]


def test_without_the_preset_the_zero_debias_leftovers_are_unused(contrib: Written) -> None:
    report = ckptbridge.restore(_contrib_like(keras), contrib.prefix)
    assert report.unused == [
        "Conv/BatchNorm/moving_mean/biased",
        "Conv/BatchNorm/moving_mean/local_step",
    ]


# -- estimator-dnn with several partitions -----------------------------------------------------------


def _write_partitioned_dnn(directory: Path) -> Written:
    """A DNNClassifier-style graph whose layers are split in 3 slices (``min_max_variable_partitioner``)."""
    rng = np.random.default_rng(9)
    inputs = rng.normal(size=(4, 6)).astype(np.float32)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.set_random_seed(9)
        h = x = v1.placeholder(tf.float32, [None, 6])
        sizes = [(6, 12, "hiddenlayer_0"), (12, 9, "hiddenlayer_1"), (9, 3, "logits")]
        with v1.variable_scope("dnn", partitioner=v1.fixed_size_partitioner(3)):
            for n_in, n_out, scope in sizes:
                with v1.variable_scope(scope):
                    w = v1.get_variable(
                        "kernel", [n_in, n_out], initializer=v1.random_normal_initializer(0, 0.4)
                    )
                    b = v1.get_variable(
                        "bias", [n_out], initializer=v1.random_normal_initializer(0, 0.1)
                    )
                    h = tf.matmul(h, tf.convert_to_tensor(w)) + tf.convert_to_tensor(b)
                    h = tf.nn.relu(h) if scope != "logits" else h
        sess.run(v1.global_variables_initializer())
        prefix = v1.train.Saver().save(sess, str(directory / "model.ckpt"))
        return Written(Path(prefix), inputs, sess.run(h, {x: inputs}))


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_estimator_dnn_preset_on_partitioned_layers(
    flavour: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    written = _write_partitioned_dnn(tmp_path_factory.mktemp("dnn_parts"))
    k = FLAVOURS[flavour]
    L = k.layers
    model = k.Sequential([k.Input((6,)), L.Dense(12, activation="relu", name="hiddenlayer_0"),
                          L.Dense(9, activation="relu", name="hiddenlayer_1"), L.Dense(3, name="logits")])  # fmt: skip
    report = ckptbridge.restore(model, written.prefix, rules="preset:estimator-dnn")
    np.testing.assert_allclose(model(written.inputs), written.outputs, rtol=1e-5, atol=1e-5)
    assert sorted(m.source for m in report.matched)[0] == "dnn/hiddenlayer_0/bias"
    assert {m.reason for m in report.matched} == {
        "rule rename[0]",
        "rule rename[1]",
        "rule rename[3]",
    }
