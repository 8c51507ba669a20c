"""Templates with more than the model: optimizer state and save_counter (TF2), partitions (TF1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from ckptbridge.conversion import convert
from ckptbridge.conversion._objgraph import prune_object_graph
from ckptbridge.format import ObjectGraph, open_checkpoint
from tf1_builders import TF1Checkpoint, write_convnet_scopes, write_partitioned

pytestmark = pytest.mark.tf
v1 = tf.compat.v1


def _convnet() -> Any:
    from test_conversion_api import convnet_model

    return convnet_model()


@pytest.fixture(scope="module")
def convnet(tmp_path_factory: pytest.TempPathFactory) -> TF1Checkpoint:
    return write_convnet_scopes(tmp_path_factory.mktemp("tf1"), global_step=50)


TRAINED_OUTPUT: dict[str, np.ndarray] = {}


@pytest.fixture(scope="module")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A template saved after training with Keras 3 Adam: optimizer slots and save_counter.

    Keras 3's optimizer tracks the model's variables, so they are stored under keys like
    ``optimizer/_trainable_variables/0/.ATTRIBUTES/VARIABLE_VALUE``.
    """
    import keras

    model = _convnet()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    model.fit(x, np.ones((2, 10), np.float32), verbose=0)
    TRAINED_OUTPUT["x"], TRAINED_OUTPUT["y"] = x, model(x).numpy()
    ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    return Path(ckpt.save(str(tmp_path_factory.mktemp("tpl") / "ckpt")))


def test_optimizer_slots_dropped_and_pruned_save_counter_kept(
    convnet: TF1Checkpoint, trained_template: Path, tmp_path: Path
) -> None:
    report = convert(convnet.prefix, tmp_path, target=trained_template, verify=True)
    assert report.ok, str(report)
    item = report.items[0]
    assert item.kept == ["save_counter/.ATTRIBUTES/VARIABLE_VALUE"]
    assert item.dropped and all(k.startswith("optimizer/") for k in item.dropped)
    out = tmp_path / "model.ckpt-50"
    with open_checkpoint(out) as ckpt, open_checkpoint(trained_template) as tpl:
        assert int(ckpt.read("save_counter/.ATTRIBUTES/VARIABLE_VALUE")) == int(
            tpl.read("save_counter/.ATTRIBUTES/VARIABLE_VALUE")
        )
        graph = ckpt.object_graph
        assert graph is not None
        assert {v.key for v in graph.variables()} <= set(ckpt.entries)
    model = _convnet()
    tf.train.Checkpoint(model=model).read(str(out)).assert_existing_objects_matched()
    np.testing.assert_allclose(model(convnet.inputs).numpy(), convnet.outputs, rtol=1e-5, atol=1e-6)


def test_tf2_source_saved_with_its_optimizer_to_a_fresh_template(
    trained_template: Path, tmp_path: Path
) -> None:
    fresh = Path(tf.train.Checkpoint(model=_convnet()).write(str(tmp_path / "tpl" / "ckpt")))
    report = convert(trained_template, tmp_path / "out", target=fresh, verify=True)
    assert report.ok and report.items[0].matched == 8, str(report)
    model = _convnet()
    status = tf.train.Checkpoint(model=model).read(str(tmp_path / "out" / trained_template.name))
    status.assert_existing_objects_matched()
    np.testing.assert_allclose(model(TRAINED_OUTPUT["x"]).numpy(), TRAINED_OUTPUT["y"], rtol=1e-6)


def test_prune_object_graph_keeps_node_ids_and_clears_has_values(trained_template: Path) -> None:
    with open_checkpoint(trained_template) as tpl:
        raw = tpl.read("_CHECKPOINTABLE_OBJECT_GRAPH").reshape(-1)[0]
        keys = {v.key for v in ObjectGraph.decode(raw).variables()}
    dropped = {k for k in keys if k.startswith("optimizer/")}
    pruned = ObjectGraph.decode(prune_object_graph(raw, dropped))
    assert {v.key for v in pruned.variables()} == keys - dropped
    assert prune_object_graph(raw, set()) == prune_object_graph(
        prune_object_graph(raw, set()), set()
    )


def test_partitioned_round_trip_through_tf2(tmp_path: Path) -> None:
    import keras

    ck = write_partitioned(tmp_path / "tf1")
    model = keras.Sequential(
        [keras.Input((20,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(4)]
    )
    template = Path(tf.train.Checkpoint(model=model).write(str(tmp_path / "tpl" / "ckpt")))
    assert convert(ck.prefix, tmp_path / "tf2", target=template).ok
    back = convert(
        tmp_path / "tf2" / "model.ckpt", tmp_path / "back", target=ck.prefix, verify=True
    )
    assert back.ok, str(back)
    out = tmp_path / "back" / "model.ckpt"
    with open_checkpoint(out) as ckpt:
        assert ckpt.entries["hidden/weights"].sliced
        np.testing.assert_array_equal(ckpt.read("hidden/weights"), ck.values["hidden/weights"])
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.train.import_meta_graph(f"{ck.prefix}.meta")
        weights = [v for v in v1.global_variables() if "Adagrad" not in v.op.name]
        v1.train.Saver(weights).restore(sess, str(out))
        got = sess.run(ck.output_name, {ck.input_name: ck.inputs})
    np.testing.assert_allclose(got, ck.outputs, rtol=1e-6)


def test_partitioned_identity_keeps_optimizer_state(tmp_path: Path) -> None:
    ck = write_partitioned(tmp_path / "tf1")
    report = convert(ck.prefix, tmp_path / "out", target=ck.prefix, verify=True)
    assert report.ok and report.items[0].dropped == [], str(report)
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.train.import_meta_graph(f"{ck.prefix}.meta")
        v1.train.Saver().restore(sess, str(tmp_path / "out" / "model.ckpt"))
        got = sess.run(ck.output_name, {ck.input_name: ck.inputs})
    np.testing.assert_allclose(got, ck.outputs, rtol=1e-6)


def test_meta_target_writes_partitions_as_slices(tmp_path: Path) -> None:
    ck = write_partitioned(tmp_path / "tf1")
    report = convert(ck.prefix, tmp_path / "out", target=f"{ck.prefix}.meta", verify=True)
    assert report.ok, str(report)
    with open_checkpoint(tmp_path / "out" / "model.ckpt") as ckpt:
        assert ckpt.entries["hidden/weights"].sliced
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.train.import_meta_graph(f"{ck.prefix}.meta")
        v1.train.Saver().restore(sess, str(tmp_path / "out" / "model.ckpt"))
        got = sess.run(ck.output_name, {ck.input_name: ck.inputs})
    np.testing.assert_allclose(got, ck.outputs, rtol=1e-6)


def test_tf2_output_from_a_model_target_passes_tensorflows_own_checks(
    convnet: TF1Checkpoint, tmp_path: Path
) -> None:
    report = convert(convnet.prefix, tmp_path, target=_convnet(), to="tf2", verify=True)
    assert report.ok, str(report)
    model = _convnet()
    status = tf.train.Checkpoint(model=model).restore(str(tmp_path / "model.ckpt-50"))
    status.assert_existing_objects_matched()
    status.assert_consumed()
    np.testing.assert_allclose(model(convnet.inputs).numpy(), convnet.outputs, rtol=1e-5, atol=1e-5)


def test_keras_output_reads_back_everywhere_and_gets_no_state_file(
    convnet: TF1Checkpoint, tmp_path: Path
) -> None:
    import ckptbridge

    target = _convnet()
    report = convert(convnet.prefix, tmp_path, target=target, to="keras")
    assert report.ok and report.state_file is None, str(report)
    assert not (tmp_path / "checkpoint").exists()
    out = tmp_path / "model.ckpt-50.weights.h5"
    assert ckptbridge.inspect(tmp_path).prefix == str(out)  # the directory resolves to it
    assert list(ckptbridge.load_variables(out)) == [v.path for v in target.weights]
    model = _convnet()
    assert ckptbridge.plan(out, model).complete
    ckptbridge.restore(model, out)
    np.testing.assert_allclose(model(convnet.inputs).numpy(), convnet.outputs, rtol=1e-5, atol=1e-5)
    again = convert(out, tmp_path / "tf2", target=_convnet(), to="tf2")  # a Keras file as source
    assert again.ok and (tmp_path / "tf2" / "model.ckpt-50.index").is_file(), str(again)
