"""Keras 3 ``.weights.h5`` and ``.keras`` files read as checkpoints, keyed by ``variable.path``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ckptbridge
from ckptbridge import CorruptCheckpointError
from ckptbridge.format import open_checkpoint

keras = pytest.importorskip("keras")


def _functional() -> Any:
    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2, name="head")], name="inner")
    i = keras.Input((3, 5))
    x = keras.layers.LSTM(4, name="lstm")(i)  # named: auto-names depend on earlier tests
    x = keras.layers.Dense(5, use_bias=False)(x)
    y = keras.layers.Conv1D(2, 3)(i)
    return keras.Model(i, [inner(x), y], name="top")


def _sequential() -> Any:
    return keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, name="fc1"),
            keras.layers.BatchNormalization(center=False),
            keras.layers.LayerNormalization(),
            keras.layers.Dense(3),
        ]
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Any]]:
    keras.backend.clear_session(free_memory=False)  # auto names from a fresh counter: lstm, dense
    out = tmp_path_factory.mktemp("keras")
    files = []
    for i, model in enumerate((_functional(), _sequential())):
        for v in model.weights:
            v.assign(np.random.default_rng(i).normal(size=v.shape).astype(v.dtype))
        weights, whole = out / f"m{i}.weights.h5", out / f"m{i}.keras"
        model.save_weights(weights)
        model.save(whole)
        files += [(weights, model), (whole, model)]
    return files


def test_entries_are_the_keras_variable_paths_with_their_values(
    saved: list[tuple[Path, Any]],
) -> None:
    for path, model in saved:
        values = ckptbridge.load_variables(path)
        paths = [v.path for v in model.weights]
        if path.name == "m1.weights.h5":  # BatchNormalization(center=False) without its config
            paths = [p.replace("batch_normalization/gamma", "batch_normalization/0") for p in paths]
        assert list(values) == paths, path.name
        for name, v in zip(paths, model.weights, strict=True):
            np.testing.assert_array_equal(values[name], np.asarray(v))


def test_kind_order_and_aliases(saved: list[tuple[Path, Any]]) -> None:
    path, _ = saved[0]
    with open_checkpoint(path) as ckpt:
        assert ckpt.kind.value == "keras"
        assert ckpt.keras_layout("lstm/lstm_cell/kernel") == (
            0,
            ("layers/lstm/cell/vars/0",),
            "LSTMCell",
        )


def test_keys_follow_the_names_keras_gave_after_other_layers(tmp_path: Path) -> None:
    for _ in range(3):  # advance Keras's per-process name counters, as earlier models do
        keras.layers.LSTM(2), keras.layers.Dense(2)
    i = keras.Input((3, 5))
    model = keras.Model(i, keras.layers.Dense(2)(keras.layers.LSTM(4)(i)))  # auto-named layers
    model.save_weights(tmp_path / "late.weights.h5")
    with open_checkpoint(tmp_path / "late.weights.h5") as ckpt:
        assert list(ckpt.entries) == [v.path for v in model.weights]
        lstm = next(layer for layer in model.layers if isinstance(layer, keras.layers.LSTM))
        assert lstm.name != "lstm"
        assert ckpt.keras_layout(f"{lstm.name}/lstm_cell/kernel") == (
            0,
            ("layers/lstm/cell/vars/0",),  # Keras names the groups per save, from the class
            "LSTMCell",
        )


def test_a_directory_of_keras_files_resolves_to_the_newest(saved: list[tuple[Path, Any]]) -> None:
    directory = saved[0][0].parent
    assert ckptbridge.inspect(directory).kind.value == "keras"


def test_a_zip_without_weights_is_named(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(CorruptCheckpointError, match=r"^.*bad\.keras is a zip archive without"):
        open_checkpoint(tmp_path / "bad.keras")


def test_a_damaged_h5_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "x.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(CorruptCheckpointError, match=r"cannot be read as a Keras weights file"):
        open_checkpoint(tmp_path / "x.weights.h5")


def test_an_unknown_key_is_an_entry_error(saved: list[tuple[Path, Any]]) -> None:
    path, _ = saved[0]
    with (
        open_checkpoint(path) as ckpt,
        pytest.raises(
            ckptbridge.EntryNotFoundError,
            match=r"^'lstm_9/lstm_cell/kernel' is not an entry of checkpoint .*m0\.weights\.h5\. "
            r"Did you mean 'lstm/lstm_cell/kernel'",
        ),
    ):
        ckpt.keras_layout("lstm_9/lstm_cell/kernel")
