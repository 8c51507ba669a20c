"""Training directories: every step of the state file, same order, same current step; reruns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from ckptbridge.conversion import convert, list_sources, run_conversion
from ckptbridge.format import open_checkpoint, read_state_file

pytestmark = pytest.mark.tf
v1 = tf.compat.v1
STEPS = (10, 20, 30)


def write_training_dir(directory: Path) -> dict[int, np.ndarray]:
    """TF1 training loop saving a small dense net at several steps; return each step's kernel."""
    kernels: dict[int, np.ndarray] = {}
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        with v1.variable_scope("hidden"):
            w = v1.get_variable("weights", [4, 3])
            b = v1.get_variable("biases", [3], initializer=v1.zeros_initializer())
        step = v1.train.get_or_create_global_step()
        loss = tf.reduce_sum(tf.square(tf.matmul(x, w) + b))
        train = v1.train.GradientDescentOptimizer(0.01).minimize(loss, global_step=step)
        saver = v1.train.Saver(max_to_keep=10)
        sess.run(v1.global_variables_initializer())
        feed = {x: np.ones((2, 4), np.float32)}
        for target_step in STEPS:
            while sess.run(step) < target_step:
                sess.run(train, feed)
            saver.save(sess, str(directory / "model.ckpt"), global_step=target_step)
            kernels[target_step] = sess.run(w)
    return kernels


def dense_model() -> Any:
    import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


@pytest.fixture(scope="module")
def training_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, np.ndarray]]:
    directory = tmp_path_factory.mktemp("train")
    kernels = write_training_dir(directory)
    return directory, kernels


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("template")
    return Path(tf.train.Checkpoint(model=dense_model()).write(str(d / "ckpt")))


def test_list_sources_follows_the_state_file(training_dir: tuple[Path, Any]) -> None:
    directory, _ = training_dir
    sources = list_sources(directory)
    assert [p.name for p in sources.prefixes] == [f"model.ckpt-{s}" for s in STEPS]
    assert sources.current is not None and sources.current.name == "model.ckpt-30"


def test_directory_converts_every_step_in_order(
    training_dir: tuple[Path, dict[int, np.ndarray]], template: Path, tmp_path: Path
) -> None:
    directory, kernels = training_dir
    report = convert(directory, tmp_path, target=template)
    assert report.ok, str(report)
    assert [Path(i.output).name for i in report.items] == [f"model.ckpt-{s}" for s in STEPS]
    state = read_state_file(tmp_path)
    assert state is not None
    assert [Path(p).name for p in state.all_model_checkpoint_paths] == [
        f"model.ckpt-{s}" for s in STEPS
    ]
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-30")
    for s in STEPS:
        model = dense_model()
        tf.train.Checkpoint(model=model).read(
            str(tmp_path / f"model.ckpt-{s}")
        ).assert_existing_objects_matched()
        np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernels[s])


def test_current_step_is_kept(
    training_dir: tuple[Path, Any], template: Path, tmp_path: Path
) -> None:
    directory, _ = training_dir
    src = tmp_path / "src"
    src.mkdir()
    for f in directory.iterdir():
        if f.name != "checkpoint":
            (src / f.name).symlink_to(f)
    v1.train.update_checkpoint_state(
        str(src), str(src / "model.ckpt-20"),
        all_model_checkpoint_paths=[str(src / f"model.ckpt-{s}") for s in STEPS],
    )  # fmt: skip
    convert(src, tmp_path / "out", target=template)
    assert tf.train.latest_checkpoint(str(tmp_path / "out")) == str(
        tmp_path / "out" / "model.ckpt-20"
    )


def test_rerun_of_a_directory_rewrites_nothing(
    training_dir: tuple[Path, Any], template: Path, tmp_path: Path
) -> None:
    directory, _ = training_dir
    assert convert(directory, tmp_path, target=template).counts()["converted"] == 3
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    again = convert(directory, tmp_path, target=template)
    assert again.counts() == {"converted": 0, "skipped": 3, "failed": 0}
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before


def test_parallel_jobs_and_several_sources(
    training_dir: tuple[Path, Any], template: Path, tmp_path: Path
) -> None:
    directory, _ = training_dir
    report = run_conversion(
        [directory, directory / "model.ckpt-10"], tmp_path, target=template, jobs=2
    )
    assert report.ok, str(report)
    assert report.counts()["converted"] == 4
    # a directory among several sources goes to its own sub-directory; a prefix beside them
    assert tf.train.latest_checkpoint(str(tmp_path / directory.name)).endswith("model.ckpt-30")
    with open_checkpoint(tmp_path / "model.ckpt-10") as ckpt:
        assert ckpt.kind.value == "tf2"


def test_state_file_listing_an_absent_step_is_counted_as_absent(
    training_dir: tuple[Path, Any], template: Path, tmp_path: Path
) -> None:
    directory, _ = training_dir
    src = tmp_path / "src"
    src.mkdir()
    for f in directory.glob("model.ckpt-30*"):
        (src / f.name).symlink_to(f)
    (src / "checkpoint").write_text(
        'model_checkpoint_path: "/elsewhere/model.ckpt-30"\n'
        'all_model_checkpoint_paths: "/elsewhere/model.ckpt-20"\n'
        'all_model_checkpoint_paths: "/elsewhere/model.ckpt-30"\n'
    )
    report = convert(src, tmp_path / "out", target=template)
    assert report.ok and [Path(i.output).name for i in report.items] == ["model.ckpt-30"]
    assert report.warnings == [] and len(report.absent) == 1
    assert report.absent[0].endswith("checkpoint: /elsewhere/model.ckpt-20")
    assert "1 converted, 0 skipped, 0 failed, 1 absent" in str(report)


def test_batch_convert_example(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "batch_convert.py"
    argv = sys.argv
    sys.argv = [str(example)]
    try:
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(example), run_name="__main__")
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    assert exit_info.value.code == 0, out
    assert "6 checkpoints skipped on the rerun" in out
    assert "kernel == TF1 hidden/weights: True" in out


def test_two_sources_with_one_output_name_do_not_clash(template: Path, tmp_path: Path) -> None:
    from ckptbridge.format import BundleWriter

    for run in ("a", "b"):
        with BundleWriter(tmp_path / run / "model.ckpt") as w:
            w.add("dense/kernel", np.ones((4, 3), np.float32))
            w.add("dense/bias", np.ones(3, np.float32))
    report = run_conversion(
        [tmp_path / "a" / "model.ckpt", tmp_path / "b" / "model.ckpt"],
        tmp_path / "out", target=template, jobs=2,
    )  # fmt: skip
    assert [i.status for i in report.items] == ["converted", "failed"]
    assert "is also the output of" in (report.items[1].error or "")


def test_an_output_that_is_a_file_is_one_error(template: Path, tmp_path: Path) -> None:
    from ckptbridge import ConversionError

    (tmp_path / "out.txt").write_text("x")
    with pytest.raises(
        ConversionError, match=r"^output '.*out\.txt' is a file: --out/dst_dir names a directory"
    ):
        convert(template, tmp_path / "out.txt", target=template)


def test_a_saved_model_directory_converts_its_variables(corpus2: Path, tmp_path: Path) -> None:
    src = corpus2 / "tensorflow__rust__regression_savedmodel_tf2"
    report = convert(src, tmp_path, target=src)
    assert report.ok, str(report)
    assert report.warnings == [f"{src} is a SavedModel directory: converting its variables "
                               f"bundle {src / 'variables' / 'variables'}"]  # fmt: skip
    from ckptbridge.tools import diff

    d = diff(src, tmp_path / "variables")  # the object graph is re-encoded; every value is equal
    assert not d.only_in_a and not d.only_in_b
    assert [k.key for k in d.common if not k.same] == ["_CHECKPOINTABLE_OBJECT_GRAPH"]


# -- optimizer slots follow their weight, whatever step matched it (TF2 -> TF2) ----------------


def _slot_flavours() -> dict[str, tuple[Any, Any]]:
    import keras
    import tf_keras

    return {
        "keras3_adam": (keras, lambda: keras.optimizers.Adam(0.01)),
        "tf_keras_legacy_adam": (tf_keras, lambda: tf_keras.optimizers.legacy.Adam(0.01)),
    }


@pytest.mark.parametrize("flavour", ["keras3_adam", "tf_keras_legacy_adam"])
def test_optimizer_slots_follow_weights_matched_by_path_suffix(
    tmp_path: Path, flavour: str
) -> None:
    # Saved as Checkpoint(net=..., optimizer=...), the template as Checkpoint(model=...): the
    # weights pair by common path suffix; every slot must follow (all 8, not only same-named ones)
    k, make = _slot_flavours()[flavour]
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    y = x.sum(1, keepdims=True)

    def build() -> Any:
        model = k.Sequential(
            [k.Input((3,)), k.layers.Dense(4, activation="relu"), k.layers.Dense(1)]
        )
        model.compile(optimizer=make(), loss="mse")
        return model

    trained = build()
    trained.fit(x, y, epochs=3, verbose=0)
    tf.train.Checkpoint(net=trained, optimizer=trained.optimizer).write(
        str(tmp_path / "src" / "ck")
    )
    template = build()
    template.fit(x, y, epochs=1, verbose=0)  # its optimizer has built its slots
    target = tf.train.Checkpoint(model=template, optimizer=template.optimizer).write(
        str(tmp_path / "tpl" / "ck")
    )
    report = convert(tmp_path / "src", tmp_path / "out", target=target,
                     rules={"options": {"optimizer_state": True}})  # fmt: skip
    [item] = report.items
    assert (item.status, item.missing, item.dropped) == ("converted", 0, []), str(report)
    fresh = build()
    fresh.fit(x, y, epochs=1, verbose=0)
    status = tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).read(
        tf.train.latest_checkpoint(str(tmp_path / "out"))
    )
    status.assert_consumed()

    def variables(opt: Any) -> list[np.ndarray]:
        return [
            np.asarray(v) for v in (opt.variables() if callable(opt.variables) else opt.variables)
        ]

    for got, want in zip(variables(fresh.optimizer), variables(trained.optimizer), strict=True):
        np.testing.assert_array_equal(got, want)
    trained.train_on_batch(x, y)
    fresh.train_on_batch(x, y)
    for got, want in zip(fresh.weights, trained.weights, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-7)
