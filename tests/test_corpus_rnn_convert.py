"""The RNN checkpoints of ../shared/corpus convert cleanly (issue 5, Tests), by real code paths only.

For each corpus RNN model, the Keras model a user writes today is the target:

- ``ckptbridge.convert`` onto its TF2 template, restored into a FRESH model by plain TensorFlow
  (``tf.train.Checkpoint(model=m).read(out).assert_existing_objects_matched()``), computes what a
  TF1 graph of the original cells computes with the corpus checkpoint's own tensors;
- the CLI (``plan --emit-rules F``, then ``convert --rules F``) writes the same bytes as the API;
- ``to="keras"`` writes ``.weights.h5`` that ``model.load_weights`` takes;
- the corpus folder is never modified (names, sizes, mtimes and SHA-256 of every file).

Each TF1 reference graph is built from the folder's SOURCE.txt (and its ``.meta``): the same cells,
scopes and heads, with variables loaded from the corpus checkpoint by name.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import ckptbridge
from ckptbridge.cli._main import main as cli_main
from ckptbridge.conversion import ConversionReport

pytestmark = pytest.mark.tf
v1 = tf.compat.v1
rnn_cell = v1.nn.rnn_cell

Graph = Callable[[Any], Any]  # builds the TF1 forward pass on a placeholder, returns the output


@dataclass(frozen=True)
class Case:
    """One corpus RNN checkpoint, the model a user writes for it, and its TF1 reference graph."""

    folder: str  # corpus folder (SOURCE.txt)
    src: str  # what is converted, relative to the folder: its checkpoint directory
    model: Callable[[], Any]  # a fresh Keras model
    graph: Graph
    inputs: np.ndarray
    pre_1_2: bool = False  # cell variables saved as weights/biases, not kernel/bias
    rules: dict[str, Any] | None = None  # only where the checkpoint needs them
    matched: int = 0  # template variables the conversion fills


def _cells(make: Callable[[], Any]) -> Any:
    with warnings.catch_warnings():
        # tf-keras warns that the TF1 cells are deprecated; building them is the point here.
        warnings.filterwarnings("ignore", r".*rnn_cell\.\w+` is deprecated", UserWarning)
        return make()


def _ids(vocab: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, size=(2, 5)).astype(np.int32)


def _floats(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _dense_head(h: Any, scope: str, names: tuple[str, str], shape: tuple[int, int]) -> Any:
    with v1.variable_scope(scope):
        w = v1.get_variable(names[0], shape)
        b = v1.get_variable(names[1], shape[1:])
    return tf.tensordot(h, w, 1) + b


# -- Aplain__rnnRepo: inference/weight1 -> static_rnn BasicLSTMCell(80, forget_bias=0.8) over 10
#    steps -> last output @ inference/weight2 (TF 1.1, pre-1.2 cell names) -----------------------


def _aplain_graph(x: Any) -> Any:
    h = _dense_head(x, "inference", ("weight1", "bias1"), (1, 80))
    cell = _cells(lambda: rnn_cell.BasicLSTMCell(80, forget_bias=0.8))
    outs, _ = v1.nn.static_rnn(cell, tf.unstack(h, axis=1), dtype=tf.float32)
    return _dense_head(outs[-1], "inference", ("weight2", "bias2"), (80, 1))


def _aplain_model() -> Any:
    layers = keras.layers
    return keras.Sequential(
        [keras.Input((10, 1)), layers.Dense(80), layers.LSTM(80), layers.Dense(1)]
    )


# -- Enny1991__TIDIGITS_task: 3 stacked GRUCell(120), dynamic_rnn, output Variable [120, 11] ------


def _enny_graph(x: Any) -> Any:
    stack = _cells(lambda: rnn_cell.MultiRNNCell([rnn_cell.GRUCell(120) for _ in range(3)]))
    y, _ = v1.nn.dynamic_rnn(stack, x, dtype=tf.float32)
    return _dense_head(y, "", ("Variable", "Variable_1"), (120, 11))


def _enny_model() -> Any:
    layers = keras.layers
    return keras.Sequential(
        [keras.Input((None, 39))]
        + [layers.GRU(120, reset_after=False, return_sequences=True) for _ in range(3)]
        + [layers.Dense(11)]
    )


# -- fracogno: embedding Variable [2808, 50]; fw and bw MultiRNNCell of 3 LSTMCell(64) in
#    bidirectional_dynamic_rnn; dense(2) on [fw last output, bw output at t=0] ---------------------


def _fracogno_graph(ids: Any) -> Any:
    table = v1.get_variable("Variable", (2808, 50))
    x = tf.nn.embedding_lookup(table, ids)

    def stack() -> Any:
        return _cells(lambda: rnn_cell.MultiRNNCell([rnn_cell.LSTMCell(64) for _ in range(3)]))

    (fw, bw), _ = v1.nn.bidirectional_dynamic_rnn(stack(), stack(), x, dtype=tf.float32)
    h = tf.concat([fw[:, -1], bw[:, 0]], axis=-1)
    return _dense_head(h, "dense", ("kernel", "bias"), (128, 2))


def _fracogno_model(k: Any) -> Any:
    layers = k.layers
    return k.Sequential(
        [
            k.Input((None,), dtype="int32"),
            layers.Embedding(2808, 50),
            layers.Bidirectional(layers.RNN([layers.LSTMCell(64) for _ in range(3)])),
            layers.Dense(2),
        ]
    )


# -- fv0008: embedding [797, 128]; MultiRNNCell([cell] * 2): ONE BasicLSTMCell(128) for both
#    layers; logits = outputs @ Variable [128, 797] + Variable_1 ------------------------------------


def _fv0008_graph(ids: Any) -> Any:
    x = tf.nn.embedding_lookup(v1.get_variable("embedding", (797, 128)), ids)
    cell = _cells(lambda: rnn_cell.BasicLSTMCell(128))
    y, _ = v1.nn.dynamic_rnn(rnn_cell.MultiRNNCell([cell] * 2), x, dtype=tf.float32)
    return _dense_head(y, "", ("Variable", "Variable_1"), (128, 797))


def _fv0008_model() -> Any:
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            layers.Embedding(797, 128),
            layers.LSTM(128, return_sequences=True),
            layers.LSTM(128, return_sequences=True),
            layers.Dense(797),
        ]
    )


# -- Azizimj: variable_scope('model'): embed [4363, 40]; tf.keras SimpleRNNCell(15) unrolled by
#    hand; tf.contrib.layers.fully_connected(35, activation softmax) ----------------------------


def _azizimj_graph(ids: Any) -> Any:
    batch, steps = ids.shape
    with v1.variable_scope("model"):
        x = tf.nn.embedding_lookup(v1.get_variable("embed", (4363, 40)), ids)
        cell = tf_keras.layers.SimpleRNNCell(15)
        state, outs = [tf.zeros((batch, 15))], []
        for t in range(steps):
            out, state = cell(x[:, t], state)
            outs.append(out)
        logits = _dense_head(tf.stack(outs, 1), "fully_connected", ("weights", "biases"), (15, 35))
    return tf.nn.softmax(logits)


def _azizimj_model() -> Any:
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            layers.Embedding(4363, 40),
            layers.SimpleRNN(15, return_sequences=True),
            layers.Dense(35, activation="softmax"),
        ]
    )


CASES = {
    "Aplain": Case(
        "Aplain__rnnRepo", ".", _aplain_model, _aplain_graph, _floats((2, 10, 1), 0),
        pre_1_2=True, matched=7,  # forget_bias 0.8: read from its .meta
    ),
    "Enny1991": Case(
        "Enny1991__TIDIGITS_task", "model", _enny_model, _enny_graph, _floats((2, 4, 39), 1),
        pre_1_2=True, matched=11,
    ),
    # tf.train.Checkpoint does not track the cells of a Keras 3 RNN([cells]) (StackedRNNCells):
    # the TF2 template would hold no LSTM variable at all. The TF2 path uses tf-keras, whose
    # object graph has them; the Keras 3 model is covered by to="keras" below.
    "fracogno": Case(
        "fracogno__Bidirectional_LSTM_Sentiment_Analysis", "checkpoints",
        lambda: _fracogno_model(tf_keras), _fracogno_graph, _ids(2808, 2), matched=21,
    ),
    "fv0008": Case(
        "fv0008__char-rnn-writer", ".", _fv0008_model, _fv0008_graph, _ids(797, 3), matched=9,
    ),
    "Azizimj": Case(
        "Azizimj__POS-RNN", ".", _azizimj_model, _azizimj_graph, _ids(4363, 4), matched=6,
    ),
}  # fmt: skip


def _checkpoint_key(name: str, pre_1_2: bool) -> str:
    """The corpus key of a reference-graph variable: TF < 1.2 cells saved weights/biases."""
    if pre_1_2 and name.startswith("rnn/"):
        return re.sub(r"/bias$", "/biases", re.sub(r"/kernel$", "/weights", name))
    return name


def tf1_reference(case: Case, prefix: Path) -> np.ndarray:
    """Run the case's TF1 graph with every variable loaded from the corpus checkpoint."""
    reader = tf.train.load_checkpoint(str(prefix))
    with tf.Graph().as_default(), v1.Session() as sess:
        x = v1.placeholder(tf.as_dtype(case.inputs.dtype), case.inputs.shape)
        y = case.graph(x)
        for var in v1.global_variables():
            var.load(reader.get_tensor(_checkpoint_key(var.op.name, case.pre_1_2)), sess)
        return np.asarray(sess.run(y, {x: case.inputs}))


Snapshot = dict[str, tuple[int, int, str]]


def snapshot(folder: Path) -> Snapshot:
    """Every file under ``folder``: size, mtime and SHA-256."""
    return {
        str(p.relative_to(folder)): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Work:
    """What this module computes once per case: TF1 references, TF2 templates, API conversions.

    The corpus folders are snapshotted before anything is converted; :meth:`unchanged` compares.
    """

    def __init__(self, corpus: Path, root: Path) -> None:
        self.corpus, self.root = corpus, root
        self.before = {c.folder: snapshot(corpus / c.folder) for c in CASES.values()}
        self._refs: dict[str, np.ndarray] = {}
        self._templates: dict[str, Path] = {}
        self._converted: dict[str, tuple[ConversionReport, Path]] = {}

    def src(self, name: str) -> Path:
        case = CASES[name]
        return self.corpus / case.folder / case.src

    def reference(self, name: str) -> np.ndarray:
        if name not in self._refs:
            self._refs[name] = tf1_reference(CASES[name], self.src(name) / "model.ckpt")
        return self._refs[name]

    def template(self, name: str) -> Path:
        """The TF2 template the new model writes once."""
        if name not in self._templates:
            path = tf.train.Checkpoint(model=CASES[name].model()).write(
                str(self.root / f"template_{name}" / "ckpt")
            )
            self._templates[name] = Path(path)
        return self._templates[name]

    def converted(self, name: str) -> tuple[ConversionReport, Path]:
        """``ckptbridge.convert`` of the case's checkpoint directory onto its TF2 template."""
        if name not in self._converted:
            out = self.root / f"tf2_{name}"
            report = ckptbridge.convert(
                self.src(name), out, target=self.template(name), rules=CASES[name].rules
            )
            self._converted[name] = (report, out)
        return self._converted[name]

    def unchanged(self, name: str) -> bool:
        folder = CASES[name].folder
        return snapshot(self.corpus / folder) == self.before[folder]


@pytest.fixture(scope="module")
def work(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Work:
    return Work(corpus, tmp_path_factory.mktemp("corpus_rnn"))


def _assert_converted(report: ConversionReport, case: Case) -> None:
    assert report.ok, str(report)
    [item] = report.items
    assert item.status == "converted", str(report)
    # every template variable filled, every non-auxiliary source weight used
    assert (item.matched, item.missing, item.unused) == (case.matched, 0, 0), str(report)


# -- 1. TF1 corpus checkpoint -> TF2, restored by plain TensorFlow into a fresh model --------------


@pytest.mark.parametrize("name", list(CASES))
def test_tf2_output_restores_into_a_fresh_model_with_tf1_outputs(work: Work, name: str) -> None:
    case = CASES[name]
    report, out = work.converted(name)
    _assert_converted(report, case)
    prefix = out / "model.ckpt"
    assert tf.train.latest_checkpoint(str(out)) == str(prefix)
    fresh = case.model()
    tf.train.Checkpoint(model=fresh).read(str(prefix)).assert_existing_objects_matched()
    got = np.asarray(fresh(case.inputs))
    np.testing.assert_allclose(got, work.reference(name), rtol=1e-5, atol=1e-5)
    assert work.unchanged(name)


def test_aplain_takes_forget_bias_08_from_its_meta(work: Work) -> None:
    # No rules: the .meta's inference/rnn/basic_lstm_cell/add/y (0.8) is folded into the bias.
    report, _ = work.converted("Aplain")
    [item] = report.items
    assert item.notes == []
    plan = ckptbridge.plan(work.src("Aplain"), work.template("Aplain"))
    [bias] = [
        m for m in plan.matches if m.reason.startswith("converter lstm") and m.steps[-1].op == "add"
    ]
    assert "forget_bias 0.8 folded into bias (.meta: inference/rnn/basic_lstm_cell/add/y)" in (
        bias.reason
    )


def test_aplain_without_its_meta_says_forget_bias_1_is_assumed(work: Work, tmp_path: Path) -> None:
    # Without the .meta nothing records 0.8: TF1's default 1.0 is folded in and the report says
    # so, naming the cell and the option that fixes it; with that option the outputs are right.
    bare = tmp_path / "bare"
    bare.mkdir()
    for path in work.src("Aplain").iterdir():
        if path.name.startswith("model.ckpt.") and path.suffix != ".meta":
            (bare / path.name).write_bytes(path.read_bytes())
    case = CASES["Aplain"]
    report = ckptbridge.convert(
        bare / "model.ckpt", tmp_path / "out", target=work.template("Aplain")
    )
    _assert_converted(report, case)
    [item] = report.items
    [note] = item.notes
    assert re.fullmatch(
        r"forget_bias 1\.0 assumed \(TensorFlow's default\) for TF1 LSTM cell 'rnn/basic_lstm_cell': "
        r"no \.meta graph beside the checkpoint records .*set options\.forget_bias .*",
        note,
    )
    assert f"note: {note}" in str(report)
    fresh = case.model()
    tf.train.Checkpoint(model=fresh).read(str(tmp_path / "out" / "model.ckpt")).assert_consumed()
    assert not np.allclose(fresh(case.inputs), work.reference("Aplain"), rtol=1e-5, atol=1e-5)
    fixed = ckptbridge.convert(
        bare / "model.ckpt", tmp_path / "fixed", target=work.template("Aplain"),
        rules={"options": {"forget_bias": 0.8}},
    )  # fmt: skip
    assert fixed.items[0].notes == []
    fresh = case.model()
    tf.train.Checkpoint(model=fresh).read(str(tmp_path / "fixed" / "model.ckpt")).assert_consumed()
    np.testing.assert_allclose(fresh(case.inputs), work.reference("Aplain"), rtol=1e-5, atol=1e-5)


def test_missing_step_in_state_file_is_counted_absent_not_a_failure(work: Work) -> None:
    # fv0008's `checkpoint` file also lists 'result/name/names-40', absent from the folder.
    report, _ = work.converted("fv0008")
    assert report.ok and not report.warnings
    [absent] = report.absent
    assert absent.endswith("/checkpoint: result/name/names-40")
    assert "1 absent" in str(report) and "result/name/names-40" in str(report)
    others = [work.converted(n)[0] for n in CASES if n != "fv0008"]
    assert all(not r.absent and not r.warnings for r in others)


# -- 2. the same through the CLI: plan --emit-rules F, then convert --rules F --------------------


@pytest.mark.parametrize("name", ["Aplain", "Azizimj"])
def test_cli_emitted_rules_convert_to_the_same_bytes(
    work: Work, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    src, template, emitted = str(work.src(name)), str(work.template(name)), tmp_path / "rules.yaml"
    user: list[str] = []
    if case.rules:
        (tmp_path / "user.json").write_text(json.dumps(case.rules))
        user = ["--rules", str(tmp_path / "user.json")]
    assert cli_main(["plan", src, "--target", template, *user, "--emit-rules", str(emitted)]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    argv = ["convert", src, "--target", template, "--rules", str(emitted), "--out", str(out)]
    code = cli_main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert json.loads(captured.out)["ok"] is True
    _, api_out = work.converted(name)
    for suffix in (".index", ".data-00000-of-00001"):
        cli_bytes = (out / f"model.ckpt{suffix}").read_bytes()
        assert cli_bytes == (api_out / f"model.ckpt{suffix}").read_bytes(), suffix
    assert work.unchanged(name)


# -- 3. Keras 3 weights: to="keras", then model.load_weights -----------------------------------


def test_keras3_weights_h5_of_the_bidirectional_stack(work: Work, tmp_path: Path) -> None:
    case = CASES["fracogno"]
    report = ckptbridge.convert(
        work.src("fracogno"), tmp_path, target=_fracogno_model(keras), to="keras"
    )
    _assert_converted(report, case)
    fresh = _fracogno_model(keras)
    fresh.load_weights(str(tmp_path / "model.ckpt.weights.h5"))
    got = np.asarray(fresh(case.inputs))
    np.testing.assert_allclose(got, work.reference("fracogno"), rtol=1e-5, atol=1e-5)
    assert work.unchanged("fracogno")


# -- 4. the corpus is never modified -------------------------------------------------------------


def test_source_folders_unchanged_after_every_conversion(work: Work, tmp_path: Path) -> None:
    for name in CASES:
        work.converted(name)
        # a second run into the same place skips, a verified run elsewhere re-reads everything
        again = ckptbridge.convert(
            work.src(name), work.converted(name)[1], target=work.template(name),
            rules=CASES[name].rules,
        )  # fmt: skip
        assert again.counts() == {"converted": 0, "skipped": 1, "failed": 0}, str(again)
        verified = ckptbridge.convert(
            work.src(name), tmp_path / name, target=work.template(name),
            rules=CASES[name].rules, link=True, verify=True,
        )  # fmt: skip
        assert verified.ok and verified.items[0].verified, str(verified)
    for name in CASES:
        assert work.unchanged(name), CASES[name].folder
