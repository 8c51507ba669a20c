"""ckptbridge.restore: TF1 checkpoints written by real TF1 code into today's models, numerically.

Every test restores a checkpoint from ``tf1_builders`` into the model a user would write today
(Keras 3 and tf-keras) and checks that the model computes what the TF1 graph computed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import ckptbridge
from ckptbridge._errors import CkptBridgeError, MappingError
from ckptbridge._optional import not_found_error_class
from tf1_builders import (
    TF1Checkpoint,
    write_convnet_scopes,
    write_linear_regression,
    write_mlp_unnamed,
    write_partitioned,
    write_tf_layers,
)

pytestmark = pytest.mark.tf

Flavour = Any  # the keras or tf_keras module
FLAVOURS = [pytest.param(keras, id="keras3"), pytest.param(tf_keras, id="tf_keras")]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, TF1Checkpoint]:
    root = tmp_path_factory.mktemp("tf1")
    return {
        "linear": write_linear_regression(root / "linear"),
        "linear_v1": write_linear_regression(root / "linear_v1", version=1),
        "mlp": write_mlp_unnamed(root / "mlp"),
        "convnet": write_convnet_scopes(root / "convnet"),
        "layers": write_tf_layers(root / "layers"),
        "partitioned": write_partitioned(root / "partitioned"),
    }


def _mlp(k: Flavour) -> Any:
    return k.Sequential(
        [k.Input((784,)), k.layers.Dense(256, activation="relu"), k.layers.Dense(10)]
    )


def _cnn(k: Flavour, fc1: int = 64, *, head: bool = True) -> Any:
    layers = [
        k.Input((28, 28, 1)),
        k.layers.Conv2D(8, 5, padding="same", activation="relu"),
        k.layers.MaxPooling2D(2, padding="same"),
        k.layers.Conv2D(16, 5, padding="same", activation="relu"),
        k.layers.MaxPooling2D(2, padding="same"),
        k.layers.Flatten(),
        k.layers.Dense(fc1, activation="relu"),
    ]
    return k.Sequential([*layers, k.layers.Dense(10)] if head else layers)


def _tf_layers_model(k: Flavour) -> Any:
    return k.Sequential(
        [
            k.Input((8, 8, 3)),
            k.layers.Conv2D(4, 3, padding="same"),
            k.layers.BatchNormalization(epsilon=1e-3),
            k.layers.ReLU(),
            k.layers.Flatten(),
            k.layers.Dense(16, activation="relu"),
            k.layers.Dense(5),
        ]
    )


def _two_layer(k: Flavour) -> Any:
    return k.Sequential([k.Input((20,)), k.layers.Dense(16, activation="relu"), k.layers.Dense(4)])


CASES: list[tuple[str, Callable[[Flavour], Any]]] = [
    ("linear", lambda k: k.Sequential([k.Input((1,)), k.layers.Dense(1)])),
    ("linear_v1", lambda k: k.Sequential([k.Input((1,)), k.layers.Dense(1)])),
    ("mlp", _mlp),
    ("convnet", _cnn),
    ("layers", _tf_layers_model),
    ("partitioned", _two_layer),
]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(("case", "build"), CASES, ids=[c for c, _ in CASES])
def test_tf1_checkpoint_into_todays_model_computes_the_same(
    ckpts: dict[str, TF1Checkpoint], case: str, build: Callable[[Flavour], Any], flavour: Flavour
) -> None:
    ck = ckpts[case]
    model = build(flavour)
    report = ckptbridge.restore(model, ck.prefix)
    assert report.complete
    assert report.unused == []
    np.testing.assert_allclose(model(ck.inputs).numpy(), ck.outputs, rtol=1e-5, atol=1e-6)


def test_auxiliary_entries_are_classified_not_unused(ckpts: dict[str, TF1Checkpoint]) -> None:
    ck = ckpts["convnet"]
    report = ckptbridge.restore(_cnn(keras), ck.prefix)
    kinds = {a.name: a.kind for a in report.auxiliary}
    assert set(kinds) == set(ck.auxiliary)
    assert kinds["conv1/weights/Adam"] == "optimizer_slot"
    assert kinds["fc2/biases/Adam_1"] == "optimizer_slot"
    assert kinds["beta1_power"] == "optimizer_power"
    assert kinds["global_step"] == "global_step"
    assert report.unused == []
    report.assert_consumed()


class _MLPModule(tf.Module):
    """Attributes sort as b1, b2, w1, w2; creation order is w1, b1, w2, b2."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = tf.Variable(tf.zeros([784, 256]), name="w1")
        self.b1 = tf.Variable(tf.zeros([256]), name="b1")
        self.w2 = tf.Variable(tf.zeros([256, 10]), name="w2")
        self.b2 = tf.Variable(tf.zeros([10]), name="b2")

    def __call__(self, x: np.ndarray) -> tf.Tensor:
        return tf.matmul(tf.nn.relu(tf.matmul(x, self.w1) + self.b1), self.w2) + self.b2


def test_tf_module_target(ckpts: dict[str, TF1Checkpoint]) -> None:
    ck = ckpts["mlp"]
    module = _MLPModule()
    report = ckptbridge.restore(module, ck.prefix)
    assert {m.target: m.source for m in report.matched} == {
        "w1:0": "Variable",
        "b1:0": "Variable_2",
        "w2:0": "Variable_1",
        "b2:0": "Variable_3",
    }
    np.testing.assert_allclose(module(ck.inputs).numpy(), ck.outputs, rtol=1e-5, atol=1e-6)


def test_tf2_checkpoint_from_a_differently_structured_model(tmp_path: Path) -> None:
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="tanh", name="encoder")(inputs)
    outputs = keras.layers.Dense(3, name="head")(hidden)
    functional = keras.Model(inputs, outputs, name="old_model")
    for w in functional.weights:
        w.assign(np.random.default_rng(len(w.path)).normal(size=w.shape).astype(np.float32))
    prefix = tf.train.Checkpoint(model=functional).write(str(tmp_path / "tf2" / "ckpt"))

    sequential = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(3)]
    )
    report = ckptbridge.restore(sequential, prefix)
    assert report.complete
    assert {a.kind for a in report.auxiliary} <= {"save_counter"}
    x = np.random.default_rng(9).normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_allclose(sequential(x).numpy(), functional(x).numpy(), rtol=1e-5)


def test_strict_failure_names_variable_closest_key_and_shapes(
    ckpts: dict[str, TF1Checkpoint],
) -> None:
    model = _cnn(keras, fc1=32)  # fc1 has 64 units in the checkpoint
    before = [w.numpy().copy() for w in model.weights]
    fc1_kernel = model.layers[5].kernel.path
    with pytest.raises(tf.errors.NotFoundError) as caught:
        ckptbridge.restore(model, ckpts["convnet"].prefix)
    err = caught.value
    assert isinstance(err, not_found_error_class())
    assert isinstance(err, CkptBridgeError)
    message = str(err)
    assert fc1_kernel in message
    assert "fc1/weights" in message
    assert "(784, 32)" in message
    assert "(784, 64)" in message
    assert fc1_kernel in err.missing  # type: ignore[attr-defined]
    for old, w in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(old, w.numpy())


def test_non_strict_restores_what_matched_and_reports_the_rest(
    ckpts: dict[str, TF1Checkpoint],
) -> None:
    model = _cnn(keras, fc1=32)
    report = ckptbridge.restore(model, ckpts["convnet"].prefix, strict=False)
    assert not report.complete
    assert model.layers[5].kernel.path in {u.target for u in report.missing}
    conv1 = ckpts["convnet"].values["conv1/weights"]
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), conv1)


def test_assert_consumed_raises_on_unused_entries(ckpts: dict[str, TF1Checkpoint]) -> None:
    ck = ckpts["convnet"]
    truncated = _cnn(keras, head=False)  # no fc2
    report = ckptbridge.restore(truncated, ck.prefix)
    assert sorted(report.unused) == ["fc2/biases", "fc2/weights"]
    with pytest.raises(MappingError, match=r"^2 entries of .* restored nothing into model"):
        report.assert_consumed()


def test_unbuilt_model_is_a_clear_error(ckpts: dict[str, TF1Checkpoint]) -> None:
    model = keras.Sequential([keras.layers.Dense(1)])
    with pytest.raises(MappingError, match=r"is not built.*model\.build"):
        ckptbridge.restore(model, ckpts["linear"].prefix)


def test_a_read_error_leaves_the_model_untouched(
    ckpts: dict[str, TF1Checkpoint], tmp_path: Path
) -> None:
    source = ckpts["mlp"].prefix
    for f in source.parent.glob(source.name + ".*"):
        shutil.copy(f, tmp_path / f.name)
    data = tmp_path / f"{source.name}.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF  # the last tensor no longer matches its CRC32C
    data.write_bytes(bytes(raw))
    model = _mlp(keras)
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(CkptBridgeError):
        ckptbridge.restore(model, tmp_path / source.name)
    for old, w in zip(before, model.weights, strict=True):
        np.testing.assert_array_equal(old, w.numpy())
