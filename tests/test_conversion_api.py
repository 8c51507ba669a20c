"""ckptbridge.convert: TF1 <-> TF2 <-> Keras, checked by plain TensorFlow and by the bytes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

import ckptbridge
from ckptbridge.conversion import ConversionReport, convert
from ckptbridge.format import open_checkpoint
from ckptbridge.tools._diff import diff
from tf1_builders import TF1Checkpoint, write_convnet_scopes, write_linear_regression

pytestmark = pytest.mark.tf
v1 = tf.compat.v1


def _keras() -> Any:
    import keras

    return keras


def convnet_model() -> Any:
    """The Keras 3 model a user writes today for the TF1 tutorial conv net."""
    keras = _keras()
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(8, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Conv2D(16, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2, padding="same"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10),
        ]
    )


def linear_model() -> Any:
    keras = _keras()
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])


def write_template(model: Any, directory: Path) -> Path:
    """A TF2 template, the way the new model writes one."""
    return Path(tf.train.Checkpoint(model=model).write(str(directory / "ckpt")))


@pytest.fixture(scope="module")
def convnet(tmp_path_factory: pytest.TempPathFactory) -> TF1Checkpoint:
    return write_convnet_scopes(tmp_path_factory.mktemp("tf1_convnet"))


@pytest.fixture(scope="module")
def convnet_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_template(convnet_model(), tmp_path_factory.mktemp("tf2_template"))


@pytest.fixture(scope="module")
def convnet_tf2(
    convnet: TF1Checkpoint, convnet_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ConversionReport, Path]:
    out = tmp_path_factory.mktemp("tf2_out")
    report = convert(convnet.prefix, out, target=convnet_template, verify=True)
    return report, out


def test_tf1_to_tf2_restores_with_plain_tensorflow(
    convnet: TF1Checkpoint, convnet_tf2: tuple[ConversionReport, Path]
) -> None:
    report, out = convnet_tf2
    assert report.ok, str(report)
    [item] = report.items
    assert (item.status, Path(item.output).name) == ("converted", "model.ckpt-1000")
    assert item.verified and item.matched == 8
    assert item.bytes_copied > 0 and item.bytes_transformed == 0  # rename only: raw copies
    model = convnet_model()
    status = tf.train.Checkpoint(model=model).read(str(out / "model.ckpt-1000"))
    status.assert_existing_objects_matched()
    np.testing.assert_allclose(model(convnet.inputs).numpy(), convnet.outputs, rtol=1e-5, atol=1e-6)


def test_tf2_output_keeps_save_counter_and_state_file(
    convnet_template: Path, convnet_tf2: tuple[ConversionReport, Path]
) -> None:
    report, out = convnet_tf2
    # Checkpoint.write() makes no save_counter; Checkpoint.save() does (see the test below)
    assert report.items[0].kept == []
    assert tf.train.latest_checkpoint(str(out)) == str(out / "model.ckpt-1000")
    with open_checkpoint(out / "model.ckpt-1000") as ckpt, open_checkpoint(convnet_template) as t:
        assert sorted(ckpt.entries) == sorted(t.entries)
        assert ckpt.kind.value == "tf2"


def test_round_trip_tf1_tf2_tf1_is_byte_identical(
    convnet: TF1Checkpoint, convnet_tf2: tuple[ConversionReport, Path], tmp_path: Path
) -> None:
    _, tf2_out = convnet_tf2
    report = convert(tf2_out / "model.ckpt-1000", tmp_path, target=convnet.prefix)
    assert report.ok, str(report)
    item = report.items[0]
    # the TF2 source has no optimizer state: the template's slots and powers are left out
    assert sorted(item.dropped) == sorted(a for a in convnet.auxiliary if a != "global_step")
    out = tmp_path / "model.ckpt-1000"
    with open_checkpoint(convnet.prefix) as a, open_checkpoint(out) as b:
        for key in convnet.weights:
            assert a.read(key).tobytes() == b.read(key).tobytes(), key
        assert int(b.read("global_step")) == 1000  # from the source's step number
    d = diff(convnet.prefix, out)
    assert all(k.max_abs_diff == 0.0 for k in d.common)
    assert set(d.only_in_a) == {a for a in convnet.auxiliary if a != "global_step"}


def test_tf1_output_loads_with_legacy_saver(tmp_path: Path) -> None:
    ck = write_linear_regression(tmp_path / "tf1")
    model = linear_model()
    template = write_template(model, tmp_path / "template")
    tf2 = convert(ck.prefix, tmp_path / "tf2", target=template)
    assert tf2.ok, str(tf2)
    back = convert(tmp_path / "tf2" / "model.ckpt", tmp_path / "tf1_again", target=ck.prefix)
    assert back.ok, str(back)
    with tf.Graph().as_default(), v1.Session() as sess:
        saver = v1.train.import_meta_graph(f"{ck.prefix}.meta")
        saver.restore(sess, str(tmp_path / "tf1_again" / "model.ckpt"))
        got = sess.run(ck.output_name, {ck.input_name: ck.inputs})
    np.testing.assert_array_equal(got, ck.outputs)


def test_meta_target(convnet: TF1Checkpoint, tmp_path: Path) -> None:
    report = convert(convnet.prefix, tmp_path, target=f"{convnet.prefix}.meta")
    assert report.ok, str(report)
    with open_checkpoint(tmp_path / "model.ckpt-1000") as ckpt:
        assert set(convnet.weights) <= set(ckpt.entries)


def test_keras_weights_output(convnet: TF1Checkpoint, tmp_path: Path) -> None:
    model = convnet_model()
    report = convert(convnet.prefix, tmp_path, target=model, to="keras")
    assert report.ok, str(report)
    out = tmp_path / "model.ckpt-1000.weights.h5"
    assert out.is_file()
    fresh = convnet_model()
    fresh.load_weights(str(out))
    np.testing.assert_allclose(fresh(convnet.inputs).numpy(), convnet.outputs, rtol=1e-5, atol=1e-6)


def test_model_target_to_tf2(convnet: TF1Checkpoint, tmp_path: Path) -> None:
    report = convert(convnet.prefix, tmp_path, target=convnet_model(), to="tf2")
    assert report.ok, str(report)
    fresh = convnet_model()
    tf.train.Checkpoint(model=fresh).read(
        str(tmp_path / "model.ckpt-1000")
    ).assert_existing_objects_matched()
    np.testing.assert_allclose(fresh(convnet.inputs).numpy(), convnet.outputs, rtol=1e-5, atol=1e-6)


def test_link_mode_output_reads_in_tensorflow(
    convnet: TF1Checkpoint, convnet_template: Path, tmp_path: Path
) -> None:
    report = convert(convnet.prefix, tmp_path, target=convnet_template, link=True, verify=True)
    assert report.ok, str(report)
    item = report.items[0]
    assert item.bytes_linked > 0
    src_shard = Path(f"{convnet.prefix}.data-00000-of-00001")
    linked = [p for p in tmp_path.iterdir() if p.name.startswith("model.ckpt-1000.data-")]
    assert len(linked) == 2
    assert any(os.path.samefile(p, src_shard) for p in linked)
    model = convnet_model()
    tf.train.Checkpoint(model=model).read(
        str(tmp_path / "model.ckpt-1000")
    ).assert_existing_objects_matched()
    np.testing.assert_allclose(model(convnet.inputs).numpy(), convnet.outputs, rtol=1e-5, atol=1e-6)


def test_rerun_skips_and_rewrites_nothing(
    convnet: TF1Checkpoint, convnet_template: Path, tmp_path: Path
) -> None:
    first = convert(convnet.prefix, tmp_path, target=convnet_template)
    assert first.counts() == {"converted": 1, "skipped": 0, "failed": 0}
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    again = convert(convnet.prefix, tmp_path, target=convnet_template)
    assert again.counts() == {"converted": 0, "skipped": 1, "failed": 0}
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    assert after == before


def test_existing_output_is_not_overwritten(
    convnet: TF1Checkpoint, convnet_template: Path, tmp_path: Path
) -> None:
    from ckptbridge.format import BundleWriter

    with BundleWriter(tmp_path / "model.ckpt-1000") as w:
        w.add("something/else", np.zeros(3, np.float32))
    index = tmp_path / "model.ckpt-1000.index"
    stamp = index.stat().st_mtime_ns
    report = convert(convnet.prefix, tmp_path, target=convnet_template)
    assert not report.ok
    assert "already exists" in (report.items[0].error or "")
    assert "overwrite=True" in (report.items[0].error or "")
    assert index.stat().st_mtime_ns == stamp
    forced = convert(convnet.prefix, tmp_path, target=convnet_template, overwrite=True)
    assert forced.ok, str(forced)
    with open_checkpoint(tmp_path / "model.ckpt-1000") as ckpt:
        assert "something/else" not in ckpt.entries


def test_unmatched_target_fails_the_item_with_the_fix(
    convnet: TF1Checkpoint, tmp_path: Path
) -> None:
    keras = _keras()
    other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    template = write_template(other, tmp_path / "t")
    report = convert(convnet.prefix, tmp_path / "out", target=template)
    assert not report.ok
    error = report.items[0].error or ""
    assert "have no source" in error and "Fix:" in error
    assert not (tmp_path / "out" / "model.ckpt-1000.index").exists()


def test_report_table_and_json(convnet_tf2: tuple[ConversionReport, Path]) -> None:
    report, _ = convnet_tf2
    text = str(report)
    assert "converted" in text and "model.ckpt-1000" in text
    data = report.to_dict()
    assert data["ok"] is True and data["counts"]["converted"] == 1
    assert report.to_json().startswith("{")


def test_public_name_goes_through_bridge(
    convnet: TF1Checkpoint, convnet_template: Path, tmp_path: Path
) -> None:
    report = ckptbridge.convert(convnet.prefix, tmp_path, target=convnet_template)
    assert isinstance(report, ckptbridge.ConversionReport) and report.ok


def test_whole_shard_copy_when_the_output_uses_it_all(tmp_path: Path) -> None:
    from ckptbridge.format import BundleWriter

    rng = np.random.default_rng(5)
    values = {
        "dense/kernel": rng.normal(size=(4, 3)).astype(np.float32),
        "dense/bias": rng.normal(size=3).astype(np.float32),
    }
    with BundleWriter(tmp_path / "src" / "model.ckpt") as w:
        for key, value in values.items():
            w.add(key, value)
    keras = _keras()
    template = write_template(
        keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), tmp_path / "t"
    )
    report = convert(tmp_path / "src" / "model.ckpt", tmp_path / "out", target=template)
    assert report.ok, str(report)
    assert report.items[0].bytes_copied == 60 and report.items[0].bytes_transformed == 0
    shards = sorted(p.name for p in (tmp_path / "out").glob("model.ckpt.data-*"))
    assert shards == ["model.ckpt.data-00000-of-00002", "model.ckpt.data-00001-of-00002"]
    reader = tf.train.load_checkpoint(str(tmp_path / "out" / "model.ckpt"))
    kernels = [
        k
        for k in reader.get_variable_to_shape_map()
        if k.endswith("_kernel/.ATTRIBUTES/VARIABLE_VALUE")
    ]
    np.testing.assert_array_equal(reader.get_tensor(kernels[0]), values["dense/kernel"])


@pytest.mark.parametrize("pipeline_min", [0, 1 << 60])  # in a second thread, or inline
def test_elementwise_transforms_stream_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipeline_min: int
) -> None:
    from ckptbridge.conversion import _stream

    monkeypatch.setattr(_stream, "PIPELINE_MIN", pipeline_min)
    from ckptbridge.format import BundleWriter

    rng = np.random.default_rng(6)
    kernel = rng.normal(size=(300, 500)).astype(np.float32)
    with BundleWriter(tmp_path / "src" / "m.ckpt") as w:
        w.add("fc/weights", kernel)
        w.add("fc/biases", np.zeros(500, np.float32))
    with BundleWriter(tmp_path / "tpl" / "m.ckpt") as w:
        w.add("fc/kernel", np.zeros((300, 500), np.float16))
        w.add("fc/bias", np.zeros(500, np.float32))
    rules = {
        "map": {"fc/weights": "fc/kernel", "fc/biases": "fc/bias"},
        "transforms": [
            {
                "target": "fc/kernel",
                "steps": [{"op": "add", "value": 1.5}, {"op": "cast", "dtype": "float16"}],
            }
        ],
    }
    monkeypatch.setattr(_stream, "CHUNK", 4096)  # many chunks on a small tensor
    report = convert(
        tmp_path / "src" / "m.ckpt",
        tmp_path / "out",
        target=tmp_path / "tpl" / "m.ckpt",
        rules=rules,
        verify=True,
    )
    assert report.ok, str(report)
    assert report.items[0].bytes_transformed == 300 * 500 * 2
    reader = tf.train.load_checkpoint(str(tmp_path / "out" / "m.ckpt"))
    np.testing.assert_array_equal(reader.get_tensor("fc/kernel"), (kernel + 1.5).astype(np.float16))
