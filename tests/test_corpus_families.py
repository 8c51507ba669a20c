"""The presets on the real checkpoints of ../shared/corpus, restored into the Keras model each
folder's SOURCE.txt describes.

tf.estimator no longer exists in TF 2.21, so the estimators' outputs are recomputed in NumPy from
the checkpoint's own tensors, read with TensorFlow's reader (``tf.train.load_checkpoint``). The
tf.layers model (TheButlah__makrl) still runs: its own ``.meta`` graph is imported and evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import ckptbridge
from ckptbridge.cli import _main as _cli
from ckptbridge.rules import Options

v1 = tf.compat.v1

IRIS = "Hishmad__basic-machine-learning/iris_model/model.ckpt-8000"  # contrib.learn, weights/biases
WINE = "jncharon__wine-classifier/model/model.ckpt-3374"  # tf.estimator 1.4, kernel/bias
TITANIC = "leyankoh__tensorflow-learning/model.ckpt-200"  # LinearClassifier, Ftrl
MAKRL = "TheButlah__makrl/model/model.ckpt"
GAN = "Garyhusky__gans_on_mnist/checkpoints/generator.ckpt"
TITANIC_FEATURES = {"age": 1, "alone": 2, "class": 3, "deck": 8, "embark_town": 4, "fare": 1,
                    "n_siblings_spouses": 7, "parch": 6, "sex": 2}  # fmt: skip
FLAVOURS: dict[str, Any] = {"keras3": keras, "tf_keras": tf_keras}


@pytest.fixture(autouse=True)
def fresh_layer_names() -> None:
    keras.backend.clear_session()
    tf_keras.backend.clear_session()


def _tensors(path: Path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(path))
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()}


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=shape).astype(np.float32)


# -- canned DNN estimators (estimator-dnn) -------------------------------------------------------


def _dnn(k: Any, n_in: int, classes: int, *, named: bool) -> Any:
    """What DNNClassifier(hidden_units=[10, 20, 10], n_classes) computes: ReLU hidden layers."""
    names = [f"hiddenlayer_{i}" for i in range(3)] + ["logits"] if named else [None] * 4
    layers = [
        k.layers.Dense(n, activation="relu", name=nm)
        for n, nm in zip((10, 20, 10), names, strict=False)
    ]
    return k.Sequential([k.Input((n_in,)), *layers, k.layers.Dense(classes, name=names[3])])


def _dnn_numpy(t: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    leaf = ("kernel", "bias") if "dnn/logits/kernel" in t else ("weights", "biases")
    h = x
    for i in range(3):
        h = np.maximum(
            h @ t[f"dnn/hiddenlayer_{i}/{leaf[0]}"] + t[f"dnn/hiddenlayer_{i}/{leaf[1]}"], 0
        )
    out: np.ndarray = h @ t[f"dnn/logits/{leaf[0]}"] + t[f"dnn/logits/{leaf[1]}"]
    return out


@pytest.mark.parametrize("named", [True, False], ids=["estimator-names", "auto-names"])
@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
@pytest.mark.parametrize(
    ("prefix", "n_in", "classes"), [(IRIS, 4, 3), (WINE, 11, 10)], ids=["iris", "wine"]
)
def test_estimator_dnn_preset(
    corpus: Path, prefix: str, n_in: int, classes: int, flavour: str, named: bool
) -> None:
    model = _dnn(FLAVOURS[flavour], n_in, classes, named=named)
    report = ckptbridge.restore(model, corpus / prefix, rules="preset:estimator-dnn")
    x = _x(5, n_in)
    np.testing.assert_allclose(
        model(x), _dnn_numpy(_tensors(corpus / prefix), x), rtol=1e-5, atol=1e-5
    )
    report.assert_consumed()
    assert sorted({a.kind for a in report.auxiliary}) == (
        ["global_step", "learning_rate", "optimizer_slot"]
        if prefix == IRIS
        else ["global_step", "optimizer_slot"]
    )
    reasons = {m.reason for m in report.matched}
    if named:
        assert reasons <= {"rule rename[0]", "rule rename[1]", "rule rename[3]"}
    else:
        assert not any(r.startswith("rule") for r in reasons)


def test_estimator_dnn_preset_never_trusts_keras_counters() -> None:
    """Auto-named layers start wherever the session's counter is: dense_2 may be the first layer."""
    from ckptbridge.engine import VarSpec, derive
    from ckptbridge.rules import load_rules
    from ckptbridge.sides._live import describe_model

    keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(10), keras.layers.Dense(10)]
    )  # dense, dense_1
    model = _dnn(keras, 10, 10, named=False)  # dense_2 .. dense_5, every layer 10 wide
    src = [VarSpec(f"dnn/hiddenlayer_{i}/{leaf}", (n_in, n) if leaf == "kernel" else (n,), order=2 * i + j)
           for i, (n_in, n) in enumerate([(10, 10), (10, 20), (20, 10)])
           for j, leaf in enumerate(("kernel", "bias"))]  # fmt: skip
    src += [
        VarSpec("dnn/logits/kernel", (10, 10), order=6),
        VarSpec("dnn/logits/bias", (10,), order=7),
    ]
    plan = derive(src, list(describe_model(model).specs), load_rules("preset:estimator-dnn"))
    assert [(m.target.split("/")[1], m.source.split("/")[1]) for m in plan.matches][::2] == [
        ("dense_2", "hiddenlayer_0"), ("dense_3", "hiddenlayer_1"), ("dense_4", "hiddenlayer_2"),
        ("dense_5", "logits"),
    ]  # fmt: skip


def test_estimator_dnn_batch_norm_names() -> None:
    from ckptbridge.engine import VarSpec, derive
    from ckptbridge.rules import load_rules

    leaves = ("gamma", "beta", "moving_mean", "moving_variance")
    src = [VarSpec("dnn/hiddenlayer_0/kernel", (4, 8)), VarSpec("dnn/hiddenlayer_0/bias", (8,))]
    src += [VarSpec(f"dnn/hiddenlayer_0/batchnorm_0/{leaf}", (8,)) for leaf in leaves]
    tgt = [
        VarSpec("sequential/hiddenlayer_0/kernel", (4, 8)),
        VarSpec("sequential/hiddenlayer_0/bias", (8,)),
    ]
    tgt += [VarSpec(f"sequential/batchnorm_0/{leaf}", (8,)) for leaf in reversed(leaves)]
    plan = derive(src, tgt, load_rules("preset:estimator-dnn"))
    assert {m.target.split("/", 1)[1]: m.source.split("/", 2)[2] for m in plan.matches} == {
        "hiddenlayer_0/kernel": "kernel", "hiddenlayer_0/bias": "bias",
        **{f"batchnorm_0/{leaf}": f"batchnorm_0/{leaf}" for leaf in leaves},
    }  # fmt: skip
    assert {m.reason for m in plan.matches} == {"rule rename[0]", "rule rename[2]"}


def iris_dnn() -> Any:
    """CLI factory (``test_corpus_families:iris_dnn``): the Keras model for the iris estimator."""
    return _dnn(keras, 4, 3, named=True)


def test_cli_plan_accepts_a_preset(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main = _cli.main
    argv = ["plan", str(corpus / IRIS), "--target", "test_corpus_families:iris_dnn"]
    assert main([*argv, "--rules", "preset:estimator-dnn", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count('"rule rename[') == 8
    assert main([*argv, "--rules", "preset:estimator-dnm"]) == 2
    assert "Did you mean 'preset:estimator-dnn'?" in capsys.readouterr().err


# -- canned Linear estimators (estimator-linear) -------------------------------------------------


def _titanic_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {k: rng.normal(size=(6, n)).astype(np.float32) for k, n in TITANIC_FEATURES.items()}


def _linear_numpy(t: dict[str, np.ndarray], x: dict[str, np.ndarray]) -> np.ndarray:
    out: np.ndarray = sum(x[f] @ t[f"linear/linear_model/{f}/weights"] for f in sorted(x))  # type: ignore[assignment]
    return out + t["linear/linear_model/bias_weights"]


def test_estimator_linear_preset_into_tf_keras_linear_model(corpus: Path) -> None:
    inputs = {k: tf_keras.Input((n,), name=k) for k, n in TITANIC_FEATURES.items()}
    model = tf_keras.Model(inputs, tf_keras.experimental.LinearModel(units=1)(inputs))
    report = ckptbridge.restore(model, corpus / TITANIC, rules="preset:estimator-linear")
    x = _titanic_inputs()
    np.testing.assert_allclose(
        model(x), _linear_numpy(_tensors(corpus / TITANIC), x), rtol=1e-5, atol=1e-6
    )
    report.assert_consumed()
    bias = next(m for m in report.matched if m.source.endswith("bias_weights"))
    assert bias.reason == "rule rename[0]"


def test_estimator_linear_preset_into_keras3_dense_over_sorted_features(corpus: Path) -> None:
    inputs = {k: keras.Input((n,), name=k) for k, n in TITANIC_FEATURES.items()}
    joined = keras.layers.Concatenate()(
        [inputs[k] for k in sorted(inputs)]
    )  # the estimator's order
    model = keras.Model(inputs, keras.layers.Dense(1, name="linear_model")(joined))
    weights = sorted(k for k in _tensors(corpus / TITANIC) if k.startswith("linear/linear_model/")
                     and k.endswith("/weights"))  # fmt: skip
    rules = {"presets": ["estimator-linear"], "transforms": [
        {"target": ".*linear_model/kernel(:0)?", "sources": weights, "steps": [{"op": "concat", "axis": 0}]}
    ]}  # fmt: skip
    report = ckptbridge.restore(model, corpus / TITANIC, rules=rules)
    x = _titanic_inputs()
    np.testing.assert_allclose(
        model(x), _linear_numpy(_tensors(corpus / TITANIC), x), rtol=1e-5, atol=1e-6
    )
    report.assert_consumed()
    assert sorted(m.reason for m in report.matched) == ["rule rename[0]", "rule transforms[0]"]


# -- tf.layers (tf-layers) -------------------------------------------------------------------------


def _makrl(k: Any) -> Any:
    """CreateTFGraph.ipynb as applied: conv2d, conv2d_1, pool, conv2d_3 (conv2d_2 unused), pool, dense."""
    L = k.layers
    return k.Sequential([
        k.Input((11, 11, 9)),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.Conv2D(32, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2), L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
        L.Flatten(), L.Dense(256, activation="relu"), L.Dense(5, name="ship_output"),
    ])  # fmt: skip


def _run_meta(prefix: Path, feed: str, fetch: str, x: np.ndarray) -> np.ndarray:
    with tf.Graph().as_default(), v1.Session() as sess:
        v1.train.import_meta_graph(f"{prefix}.meta").restore(sess, str(prefix))
        out: np.ndarray = sess.run(fetch, {feed: x})
        return out


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_tf_layers_preset_on_a_graph_with_an_unused_layer(corpus: Path, flavour: str) -> None:
    model = _makrl(FLAVOURS[flavour])
    rules = {"presets": ["tf-layers"], "ignore": ["conv2d_2/.*"]}
    report = ckptbridge.restore(model, corpus / MAKRL, rules=rules)
    x = _x(3, 11, 11, 9)
    expected = _run_meta(corpus / MAKRL, "ship_input_ph:0", "ship_output/BiasAdd:0", x)
    np.testing.assert_allclose(model(x), expected, rtol=1e-4, atol=1e-5)
    assert report.ignored == ["conv2d_2/bias", "conv2d_2/kernel"] and report.unused == []


def test_tf_layers_unused_layer_trap_without_the_ignore(corpus: Path) -> None:
    """Why the ignore is needed: the identical name takes the unused layer's weights."""
    plan = ckptbridge.plan(corpus / MAKRL, _makrl(keras), rules="preset:tf-layers")
    assert plan.match_for("sequential/conv2d_2/kernel").source == "conv2d_2/kernel"  # type: ignore[union-attr]
    assert sorted(plan.unused) == ["conv2d_3/bias", "conv2d_3/kernel"]


@pytest.mark.parametrize("flavour", sorted(FLAVOURS))
def test_tf_layers_preset_on_a_subset_saver(corpus: Path, flavour: str) -> None:
    k = FLAVOURS[flavour]
    model = k.Sequential([k.Input((100,)), k.layers.Dense(128), k.layers.Dense(784)])
    report = ckptbridge.restore(model, corpus / GAN, rules="preset:tf-layers")
    tensors = _tensors(corpus / GAN)
    report.assert_consumed()
    for m in report.matched:
        var = next(v for v in model.weights if _path(v) == m.target)
        np.testing.assert_array_equal(np.asarray(var.numpy()), tensors[m.source])
        assert m.source.removeprefix("generator/") in m.target


def _path(variable: Any) -> str:
    return str(getattr(variable, "path", None) or variable.name)


# -- TF1 RNN cells (tf1-rnn) -----------------------------------------------------------------------


def _aplain() -> Any:
    L = keras.layers
    return keras.Sequential([keras.Input((10, 1)), L.Dense(80), L.LSTM(80), L.Dense(1)])


def _enny() -> Any:
    L = keras.layers
    cells = [L.GRU(120, return_sequences=True, reset_after=False) for _ in range(3)]
    return keras.Sequential([keras.Input((20, 39)), *cells, L.Dense(11)])


RNN_CASES: dict[str, tuple[str, Callable[[], Any], dict[str, Any]]] = {
    "aplain": ("Aplain__rnnRepo/model.ckpt", _aplain, {"forget_bias": 0.8}),
    "enny1991": ("Enny1991__TIDIGITS_task/model/model.ckpt", _enny, {}),
}


@pytest.mark.parametrize("case", sorted(RNN_CASES))
def test_tf1_rnn_preset_gives_the_plan_of_no_rules(corpus: Path, case: str) -> None:
    prefix, build, options = RNN_CASES[case]
    model = build()
    bare = ckptbridge.plan(corpus / prefix, model, rules={"options": options})
    preset = ckptbridge.plan(
        corpus / prefix, model, rules={"presets": ["tf1-rnn"], "options": options}
    )
    assert preset.to_dict() == bare.to_dict()
    assert any(m.reason.startswith("converter ") for m in bare.matches)
    assert Options(**options).forget_bias == (0.8 if case == "aplain" else None)  # None: the .meta
