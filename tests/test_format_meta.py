"""`.meta` facts decoded without TensorFlow match the graph that TensorFlow wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf

from ckptbridge.format import MetaInfo, MetaVariable, open_checkpoint

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def meta_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("meta") / "model.ckpt"
    v1 = tf.compat.v1
    with tf.Graph().as_default(), v1.Session() as sess:
        with v1.variable_scope("net"):
            w = v1.get_variable("w", shape=(3, 2))
            emb = v1.get_variable("emb", shape=(6, 2), partitioner=v1.fixed_size_partitioner(2))
            v1.get_variable("frozen", shape=(2,), trainable=False)
        step = v1.train.get_or_create_global_step()
        ema = v1.train.ExponentialMovingAverage(0.9)
        ema.apply([w])
        sess.run(v1.global_variables_initializer())
        del emb, step
        v1.train.Saver().save(sess, str(prefix))
    return prefix


def test_variables_in_creation_order_with_flags(meta_checkpoint: Path) -> None:
    with open_checkpoint(meta_checkpoint) as ckpt:
        meta = ckpt.meta
    assert meta is not None
    assert meta.tf_version == tf.__version__
    names = [v.name for v in meta.variables]
    assert names == [
        "net/w", "net/emb/part_0", "net/emb/part_1", "net/frozen", "global_step", "net/w/ExponentialMovingAverage",
    ]  # fmt: skip
    by_name = {v.name: v for v in meta.variables}
    assert by_name["net/w"] == MetaVariable("net/w", "float32", (3, 2), True, 0, None)
    assert by_name["net/emb/part_1"].save_slice == ("net/emb", (6, 2), (3, 0), (3, 2))
    assert not by_name["net/frozen"].trainable
    assert by_name["global_step"].dtype == "int64"
    assert meta.collections["moving_average_variables"] == ["net/w"]
    assert "net/emb/part_0" in meta.collections["trainable_variables"]


def test_damaged_meta_is_a_warning_not_a_failure(meta_checkpoint: Path, tmp_path: Path) -> None:
    for path in meta_checkpoint.parent.iterdir():
        (tmp_path / path.name).write_bytes(
            path.read_bytes()[:-7] if path.suffix == ".meta" else path.read_bytes()
        )
    with open_checkpoint(tmp_path / "model.ckpt") as ckpt:
        assert ckpt.meta is None
        assert len(ckpt.entries) == 5
        assert ckpt.warnings and "could not be decoded as a MetaGraphDef" in ckpt.warnings[0]


def test_empty_meta_decodes_to_nothing() -> None:
    assert MetaInfo.decode(b"") == MetaInfo()
