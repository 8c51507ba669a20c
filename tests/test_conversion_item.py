"""Conversion of one item: factory targets, reruns, V1 directories, damaged shards, Keras outputs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ckptbridge.cli._main import main

pytestmark = pytest.mark.tf
v1 = tf.compat.v1

FACTORY = """
import keras
from pathlib import Path

def dense():
    units = int((Path(__file__).parent / "units.txt").read_text())
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(units)])

def boom():
    raise ValueError("the factory failed")
"""


@pytest.fixture(scope="module")
def tf1_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TF1 graph-mode checkpoint of one dense layer [4, 3], saved by a Saver at step 7."""
    d = tmp_path_factory.mktemp("tf1")
    with tf.Graph().as_default(), v1.Session() as sess:
        with v1.variable_scope("hidden"):
            v1.get_variable("weights", [4, 3])
            v1.get_variable("biases", [3], initializer=v1.ones_initializer())
        v1.train.get_or_create_global_step()
        sess.run(v1.global_variables_initializer())
        return Path(v1.train.Saver().save(sess, str(d / "model.ckpt"), global_step=7))


@pytest.fixture
def factory_module(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """A fresh importable module with model factories; (module name, its directory)."""
    name = f"review_factory_{request.node.name.replace('[', '_').replace(']', '_')}"
    (tmp_path / f"{name}.py").write_text(FACTORY, encoding="utf-8")
    (tmp_path / "units.txt").write_text("3", encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        yield name, tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_failing_factory_is_one_line_and_exit_2(
    tf1_prefix: Path,
    factory_module: tuple[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A model factory that raises is unusable input: exit 2, one line, no traceback."""
    name, directory = factory_module
    (directory / f"{name}_broken.py").write_text("raise RuntimeError('the factory failed')\n")
    for argv in (
        ["plan", str(tf1_prefix), "--target", f"{name}:boom"],
        ["plan", str(tf1_prefix), "--target", f"{name}_broken:dense"],
        ["convert", str(tf1_prefix), "--target", f"{name}:boom", "--out", str(tmp_path / "o")],
    ):
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 2, (argv, out, err)
        assert out == ""
        assert len(err.splitlines()) == 1 and "the factory failed" in err, err
        assert "Traceback" not in err


@pytest.mark.parametrize("to", ["keras", "tf2", "tf1"])
def test_rerun_after_the_factory_model_changed_is_not_skipped(
    tf1_prefix: Path,
    factory_module: tuple[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    to: str,
) -> None:
    """A rerun skips only what this same conversion made: a different model is not 'done'."""
    name, directory = factory_module
    out = tmp_path / "out"
    argv = ["convert", str(tf1_prefix), "--target", f"{name}:dense", "--out", str(out), "--to", to]
    assert main(argv) == 0
    capsys.readouterr()
    (directory / "units.txt").write_text("5", encoding="utf-8")  # the model now has 5 units
    sys.modules.pop(name, None)
    code = main(argv)
    text = capsys.readouterr().out
    assert "skipped" not in text.split("\n")[1], text
    assert code == 1 and "failed" in text, text  # a [4, 3] source cannot fill [4, 5]: not skipped


def test_tf1_output_from_a_factory_keeps_the_values(
    tf1_prefix: Path,
    factory_module: tuple[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    name, _ = factory_module
    out = tmp_path / "out"
    argv = [
        "convert",
        str(tf1_prefix),
        "--target",
        f"{name}:dense",
        "--out",
        str(out),
        "--to",
        "tf2",
    ]
    assert main(argv) == 0, capsys.readouterr()
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    tf.train.Checkpoint(model=model).read(
        str(out / tf1_prefix.name)
    ).assert_existing_objects_matched()
    reader = tf.train.load_checkpoint(str(tf1_prefix))
    np.testing.assert_array_equal(
        model.layers[0].kernel.numpy(), reader.get_tensor("hidden/weights")
    )
    np.testing.assert_array_equal(model.layers[0].bias.numpy(), reader.get_tensor("hidden/biases"))


def test_api_rerun_after_the_factory_model_changed_is_not_skipped(
    tf1_prefix: Path, factory_module: tuple[str, Path], tmp_path: Path
) -> None:
    """``convert(target="module:factory")`` fingerprints the model, not only the factory's name."""
    from ckptbridge import convert

    name, directory = factory_module
    first = convert(tf1_prefix, tmp_path / "out", target=f"{name}:dense", to="tf1")
    assert first.ok, str(first)
    (directory / "units.txt").write_text("5", encoding="utf-8")
    sys.modules.pop(name, None)
    second = convert(tf1_prefix, tmp_path / "out", target=f"{name}:dense", to="tf1")
    assert [i.status for i in second.items] == ["failed"], str(second)


def test_diff_bfloat16_reports_the_real_difference_and_nan_equal_nan() -> None:
    """bfloat16 (TPU checkpoints) is numeric: a real max|a-b|, and NaN equals NaN as for floats."""
    import ml_dtypes

    from ckptbridge.tools._diff import max_abs_diff

    bf16 = ml_dtypes.bfloat16
    assert max_abs_diff(np.array([1.0, 2.0], bf16), np.array([1.0, 2.5], bf16)) == 0.5
    assert max_abs_diff(np.array([1.0, np.nan], bf16), np.array([1.0, np.nan], bf16)) == 0.0


def test_diff_large_int64_values_that_differ_are_not_identical() -> None:
    """int64 beyond 2**53 loses precision as float64: a difference of 1 must still show."""
    from ckptbridge.tools._diff import max_abs_diff

    big = np.array([2**53, 2**62], np.int64)
    assert max_abs_diff(big, big + 1) == 1.0
    assert max_abs_diff(big, big.copy()) == 0.0
    low = np.array([0], np.uint64)
    assert max_abs_diff(low, np.array([2**64 - 1], np.uint64)) == float(2**64 - 1)


def test_cli_diff_of_a_bfloat16_checkpoint_with_nan_against_itself_is_identical(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tf.train.Checkpoint(v=tf.Variable(tf.constant([1.0, float("nan")], tf.bfloat16)))
    prefix = ckpt.write(str(tmp_path / "bf16"))
    assert main(["diff", prefix, prefix, "--exit-code"]) == 0, capsys.readouterr()


def test_directory_of_v1_files_without_state_file_converts(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory holding only V1 single files (no state file) is a source, as for inspect."""
    directory = corpus / "Gknoblau__nxt-tensorflow" / "past_attempts"
    v1_file = directory / "safe_model.ckpt"
    assert main(["plan", str(directory), "--target", str(v1_file)]) == 0, capsys.readouterr()
    capsys.readouterr()
    code = main(["convert", str(directory), "--target", str(v1_file), "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr()
    assert (tmp_path / "safe_model.ckpt.index").is_file()
    assert tf.train.latest_checkpoint(str(tmp_path)) == str(tmp_path / "safe_model.ckpt")


def _flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_bit_flipped_source_fails_when_its_shard_is_copied_whole(
    tf1_prefix: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Default (copy) mode: a damaged source is a failed item, not a 'converted' damaged output."""
    import shutil

    src_dir = tmp_path / "src"
    src_dir.mkdir()
    for f in tf1_prefix.parent.glob(f"{tf1_prefix.name}.*"):
        shutil.copy(f, src_dir / f.name)
    prefix = src_dir / tf1_prefix.name
    shard = Path(f"{prefix}.data-00000-of-00001")
    _flip_byte(shard, shard.stat().st_size - 5)  # inside the last tensor
    before = {f.name: f.read_bytes() for f in src_dir.iterdir()}
    out = tmp_path / "out"
    meta = f"{tf1_prefix}.meta"  # same names: every byte of the shard is used, copied whole
    code = main(["convert", str(prefix), "--target", meta, "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 1, text
    assert "CRC32C" in text and "failed" in text, text
    assert not list(out.glob("*.index")), "no output may appear for a damaged source"
    assert {f.name: f.read_bytes() for f in src_dir.iterdir()} == before


def test_keras_output_into_the_source_directory_keeps_its_state_file(
    tf1_prefix: Path,
    factory_module: tuple[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The source is never modified: not even its `checkpoint` state file (training resumes)."""
    import shutil

    name, _ = factory_module
    run = tmp_path / "run"
    shutil.copytree(tf1_prefix.parent, run)
    state = (run / "checkpoint").read_bytes()
    code = main(
        ["convert", str(run), "--target", f"{name}:dense", "--to", "keras", "--out", str(run)]
    )
    text = capsys.readouterr().out
    assert code == 1, text
    assert (run / "checkpoint").read_bytes() == state
    assert tf.train.latest_checkpoint(str(run)) == str(tf1_prefix)


def _model_whose_weights_file_drops_a_layer() -> object:
    """A real Keras 3 model whose custom layer saves and loads nothing in ``.weights.h5``."""
    import keras

    class Forgetful(keras.layers.Layer):  # type: ignore[misc]
        def build(self, input_shape: tuple[int, ...]) -> None:
            self.kernel = self.add_weight(name="kernel", shape=(4, 3))
            self.bias = self.add_weight(name="bias", shape=(3,), initializer="zeros")

        def call(self, x: object) -> object:
            return keras.ops.matmul(x, self.kernel) + self.bias

        def save_own_variables(self, store: object) -> None:
            pass

        def load_own_variables(self, store: object) -> None:
            pass

    return keras.Sequential([keras.Input((4,)), Forgetful(name="hidden")])


def test_keras_verify_rereads_the_weights_file(tf1_prefix: Path, tmp_path: Path) -> None:
    """verify=True re-reads the output: a .weights.h5 that does not give the values back fails."""
    from ckptbridge import convert

    model = _model_whose_weights_file_drops_a_layer()
    plain = convert(tf1_prefix, tmp_path / "plain", target=model, to="keras")
    assert plain.ok and not plain.items[0].verified, str(plain)
    checked = convert(tf1_prefix, tmp_path / "checked", target=model, to="keras", verify=True)
    assert [i.status for i in checked.items] == ["failed"], str(checked)
    assert "verify" in (checked.items[0].error or ""), checked.items[0].error
    assert not list((tmp_path / "checked").glob("*.weights.h5"))
