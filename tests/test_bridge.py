"""ckptbridge._bridge: Bridge, and the module-level restore / plan / convert verbs."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import ckptbridge
from ckptbridge._bridge import Bridge
from ckptbridge._errors import RulesError
from tf1_builders import TF1Checkpoint, write_convnet_scopes, write_linear_regression

pytestmark = pytest.mark.tf

v1 = tf.compat.v1


@pytest.fixture(scope="module")
def convnet(tmp_path_factory: pytest.TempPathFactory) -> TF1Checkpoint:
    return write_convnet_scopes(tmp_path_factory.mktemp("convnet"))


@pytest.fixture(scope="module")
def linear(tmp_path_factory: pytest.TempPathFactory) -> TF1Checkpoint:
    return write_linear_regression(tmp_path_factory.mktemp("linear"))


def _cnn(fc1: int = 64, *, head: bool = True) -> keras.Model:
    layers = [
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(8, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(16, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(fc1, activation="relu"),
    ]
    return keras.Sequential(layers + ([keras.layers.Dense(10)] if head else []))


def test_bridge_loads_rules_once_and_validates_them() -> None:
    bridge = Bridge({"map": {"fc2/weights": "dense_1/kernel"}}, strict=False)
    assert bridge.rules.map == {"fc2/weights": "dense_1/kernel"}
    assert bridge.strict is False
    with pytest.raises(RulesError):
        Bridge({"mapp": {}})


def test_bridge_restore_applies_its_rules(convnet: TF1Checkpoint) -> None:
    bridge = Bridge({"ignore": ["fc2/(weights|biases)"]})
    report = bridge.restore(_cnn(head=False), convnet.prefix)
    assert report.unused == []
    assert sorted(report.ignored) == ["fc2/biases", "fc2/weights"]
    report.assert_consumed()


def test_rules_can_relax_strictness(convnet: TF1Checkpoint) -> None:
    report = Bridge({"options": {"strict": False}}).restore(_cnn(fc1=32), convnet.prefix)
    assert not report.complete


def test_module_level_restore_is_the_default_bridge(convnet: TF1Checkpoint) -> None:
    model = _cnn()
    report = ckptbridge.restore(model, convnet.prefix)
    assert isinstance(report, ckptbridge.RestoreReport)
    np.testing.assert_allclose(model(convnet.inputs).numpy(), convnet.outputs, rtol=1e-5, atol=1e-6)


def test_plan_against_a_live_model_assigns_nothing(convnet: TF1Checkpoint) -> None:
    model = _cnn()
    before = model.layers[0].kernel.numpy().copy()
    plan = ckptbridge.plan(convnet.prefix, model)
    assert plan.complete
    assert {m.source for m in plan.matches} == set(convnet.weights)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), before)


def test_plan_against_the_meta_file(convnet: TF1Checkpoint) -> None:
    plan = ckptbridge.plan(convnet.prefix, f"{convnet.prefix}.meta")
    assert plan.complete
    weights = {m.target: m.source for m in plan.matches if m.target in convnet.weights}
    assert weights == {name: name for name in convnet.weights}


def test_plan_against_a_tf2_template(convnet: TF1Checkpoint, tmp_path: Path) -> None:
    template = tf.train.Checkpoint(model=_cnn()).write(str(tmp_path / "template" / "ckpt"))
    plan = ckptbridge.plan(convnet.prefix, template)
    weight_targets = [m for m in plan.matches if m.source in convnet.weights]
    assert len(weight_targets) == len(convnet.weights)
    assert all(m.target.endswith("/.ATTRIBUTES/VARIABLE_VALUE") for m in weight_targets)
    assert {u.target for u in plan.missing} <= {"save_counter/.ATTRIBUTES/VARIABLE_VALUE"}


def test_plan_against_a_tf1_template_with_other_names(
    linear: TF1Checkpoint, tmp_path: Path
) -> None:
    with tf.Graph().as_default(), v1.Session() as sess:
        with v1.variable_scope("dense"):
            v1.get_variable("kernel", [1, 1])
            v1.get_variable("bias", [1])
        sess.run(v1.global_variables_initializer())
        template = v1.train.Saver().save(sess, str(tmp_path / "template" / "model.ckpt"))
    plan = ckptbridge.plan(linear.prefix, template)
    assert plan.complete
    assert {m.target: m.source for m in plan.matches} == {
        "dense/kernel": "weight",
        "dense/bias": "bias",
    }


def _corpus_checkpoints() -> list[str]:
    from conftest import CORPUS

    found = []
    for listing in sorted(CORPUS.glob("*/VARIABLES.txt")):
        for line in listing.read_text().splitlines():
            if line.startswith("== "):
                found.append(line[3:].strip())
    return found


@pytest.mark.parametrize("relative", _corpus_checkpoints())
def test_every_corpus_checkpoint_plans_against_itself(corpus: Path, relative: str) -> None:
    path = corpus / relative
    plan = ckptbridge.plan(path, path)
    assert plan.complete, [u.target for u in plan.missing]
    assert plan.unused == []
    for aux in plan.auxiliary:
        assert aux.kind in {
            "optimizer_slot", "optimizer_power", "global_step", "learning_rate",
            "ema_shadow", "object_graph", "save_counter", "optimizer_other",
        }  # fmt: skip


def test_convert_goes_to_the_conversion_module(convnet: TF1Checkpoint, tmp_path: Path) -> None:
    model = _cnn()
    template = tf.train.Checkpoint(model=model).write(str(tmp_path / "template" / "ckpt"))
    Bridge().convert(convnet.prefix, tmp_path / "out", target=template)
    fresh = _cnn()
    out = tf.train.latest_checkpoint(str(tmp_path / "out"))
    tf.train.Checkpoint(model=fresh).read(out).assert_existing_objects_matched()
    np.testing.assert_allclose(fresh(convnet.inputs).numpy(), convnet.outputs, rtol=1e-5, atol=1e-6)
