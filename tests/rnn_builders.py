"""Real TF1 RNN graphs (``tf.compat.v1.nn.rnn_cell``) that write checkpoints, and their Keras twins.

A :class:`RNNSpec` describes one recurrent network; the same spec builds the TF1 graph
(``BasicLSTMCell`` / ``LSTMCell`` / ``GRUCell`` / ``BasicRNNCell``, optionally in a ``MultiRNNCell``, run by
``dynamic_rnn``, ``static_rnn`` or ``bidirectional_dynamic_rnn``) and the Keras model a user would
write today (``LSTM`` / ``GRU(reset_after=False)`` / ``SimpleRNN`` layers, ``Bidirectional``)::

    ck = write_checkpoint(tmp_path, RNNSpec(kind="basic_lstm", forget_bias=0.8))
    model = keras_model(keras, ck.spec)
    ...  # restore, then model(ck.inputs) == ck.outputs

Every graph lives in ``with tf.Graph().as_default()``; nothing disables eager execution.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import numpy as np
import tensorflow as tf

from ckptbridge.engine._plan import Match
from ckptbridge.engine._spec import VarSpec
from ckptbridge.rules import Add, Cast, Concat, PermuteBlocks, Slice, Step

v1 = tf.compat.v1

__all__ = [
    "RNNCheckpoint",
    "RNNSpec",
    "apply_match",
    "keras_model",
    "keras_specs",
    "reader_specs",
    "run_tf1",
    "tf1_template",
    "write_checkpoint",
]


@dataclass(frozen=True)
class RNNSpec:
    """One recurrent network, buildable both as a TF1 graph and as a Keras model."""

    kind: Literal["basic_lstm", "lstm", "gru", "basic_rnn"] = "basic_lstm"
    units: int = 4
    n_in: int = 3
    steps: int = 5
    batch: int = 2
    layers: int = 1
    bidirectional: bool = False
    shared: bool = False  # MultiRNNCell([cell] * layers): one cell object for every layer
    runner: Literal["dynamic", "static"] = "dynamic"
    forget_bias: float = 1.0
    peepholes: bool = False
    num_proj: int | None = None


@dataclass(frozen=True)
class RNNCheckpoint:
    """A checkpoint written by a TF1 RNN graph, with the graph's output on ``inputs``."""

    prefix: Path
    spec: RNNSpec
    inputs: np.ndarray
    outputs: np.ndarray
    weights: dict[str, tuple[int, ...]]  # creation order


def _cell(spec: RNNSpec) -> Any:
    with warnings.catch_warnings():
        # tf-keras warns (stacklevel=2, so attributed to this file) that the TF1 cells are
        # deprecated; building them is the point here.
        warnings.filterwarnings("ignore", r".*rnn_cell\.\w+` is deprecated", UserWarning)
        return _new_cell(spec)


def _new_cell(spec: RNNSpec) -> Any:
    rc = v1.nn.rnn_cell
    if spec.kind == "basic_lstm":
        return rc.BasicLSTMCell(spec.units, forget_bias=spec.forget_bias)
    if spec.kind == "lstm":
        return rc.LSTMCell(
            spec.units,
            forget_bias=spec.forget_bias,
            use_peepholes=spec.peepholes,
            num_proj=spec.num_proj,
        )
    if spec.kind == "basic_rnn":
        return rc.BasicRNNCell(spec.units)
    return rc.GRUCell(spec.units)


def _stack(spec: RNNSpec) -> Any:
    if spec.shared:
        cell = _cell(spec)
        return v1.nn.rnn_cell.MultiRNNCell([cell] * spec.layers)
    if spec.layers == 1:
        return _cell(spec)
    return v1.nn.rnn_cell.MultiRNNCell([_cell(spec) for _ in range(spec.layers)])


def _graph(spec: RNNSpec) -> tuple[Any, Any]:
    x = v1.placeholder(tf.float32, [None, spec.steps, spec.n_in], name="x")
    if spec.bidirectional:
        (fw, bw), _ = v1.nn.bidirectional_dynamic_rnn(
            _stack(spec), _stack(spec), x, dtype=tf.float32
        )
        return x, tf.concat([fw, bw], axis=-1)
    if spec.runner == "static":
        outs, _ = v1.nn.static_rnn(_stack(spec), tf.unstack(x, axis=1), dtype=tf.float32)
        return x, tf.stack(outs, axis=1)
    y, _ = v1.nn.dynamic_rnn(_stack(spec), x, dtype=tf.float32)
    return x, y


def inputs_for(spec: RNNSpec, seed: int = 0) -> np.ndarray:
    """A fixed input batch [batch, steps, n_in]."""
    rng = np.random.default_rng(seed + 1000)
    return rng.normal(size=(spec.batch, spec.steps, spec.n_in)).astype(np.float32)


def write_checkpoint(directory: Path, spec: RNNSpec, seed: int = 0) -> RNNCheckpoint:
    """Build the TF1 graph, give every variable random values (biases too), run it, and save."""
    rng = np.random.default_rng(seed)
    x_val = inputs_for(spec, seed)
    with tf.Graph().as_default(), v1.Session() as sess:
        x, y = _graph(spec)
        sess.run(v1.global_variables_initializer())
        variables = v1.global_variables()
        for var in variables:
            shape = tuple(var.shape.as_list())
            var.load(rng.normal(scale=0.5, size=shape).astype(np.float32), sess)
        out = sess.run(y, {x: x_val})
        prefix = Path(v1.train.Saver().save(sess, str(directory / "model.ckpt")))
        weights = {v.op.name: tuple(v.shape.as_list()) for v in variables}
    return RNNCheckpoint(prefix, spec, x_val, out, weights)


def tf1_template(spec: RNNSpec) -> list[VarSpec]:
    """The TF1 graph's variables as target specs (creation order), without running anything."""
    with tf.Graph().as_default():
        _graph(spec)
        return [
            VarSpec(v.op.name, tuple(v.shape.as_list()), order=i)
            for i, v in enumerate(v1.global_variables())
        ]


def run_tf1(spec: RNNSpec, weights: Mapping[str, np.ndarray], inputs: np.ndarray) -> np.ndarray:
    """Run the TF1 graph with ``weights`` (every variable, by name) on ``inputs``."""
    with tf.Graph().as_default(), v1.Session() as sess:
        x, y = _graph(spec)
        for var in v1.global_variables():
            var.load(weights[var.op.name], sess)
        return np.asarray(sess.run(y, {x: inputs}))


def reader_specs(prefix: Path) -> tuple[list[VarSpec], Any]:
    """Source specs of a checkpoint, read with TensorFlow's own reader (natural order unknown)."""
    reader = tf.train.load_checkpoint(str(prefix))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    specs = [VarSpec(k, tuple(shapes[k]), dtypes[k].name) for k in sorted(shapes)]
    return specs, reader


def keras_model(k: ModuleType, spec: RNNSpec) -> Any:
    """The Keras model (Keras 3 ``keras`` or ``tf_keras``) equivalent to ``spec``'s TF1 graph."""
    layers = k.layers

    def rnn_layer() -> Any:
        if spec.kind == "gru":
            return layers.GRU(spec.units, reset_after=False, return_sequences=True)
        if spec.kind == "basic_rnn":
            return layers.SimpleRNN(spec.units, return_sequences=True)
        return layers.LSTM(spec.units, return_sequences=True)

    def cell() -> Any:
        if spec.kind == "gru":
            return layers.GRUCell(spec.units, reset_after=False)
        if spec.kind == "basic_rnn":
            return layers.SimpleRNNCell(spec.units)
        return layers.LSTMCell(spec.units)

    body: list[Any]
    if spec.bidirectional and spec.layers > 1:
        stacked = layers.RNN([cell() for _ in range(spec.layers)], return_sequences=True)
        body = [layers.Bidirectional(stacked)]
    elif spec.bidirectional:
        body = [layers.Bidirectional(rnn_layer())]
    else:
        body = [rnn_layer() for _ in range(spec.layers)]
    return k.Sequential([k.Input((spec.steps, spec.n_in)), *body])


def keras_specs(model: Any) -> list[VarSpec]:
    """Target specs of a Keras model: ``variable.path`` (Keras 3) or ``variable.name`` (tf-keras)."""
    return [
        VarSpec(getattr(v, "path", None) or v.name, tuple(v.shape), order=i)
        for i, v in enumerate(model.weights)
    ]


def assign_by_name(model: Any, values: Mapping[str, np.ndarray]) -> None:
    """Assign every model weight from ``values`` (keyed like :func:`keras_specs`)."""
    for v in model.weights:
        v.assign(values[getattr(v, "path", None) or v.name])


def apply_match(match: Match, arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Run a match's steps: ``ckptbridge.transforms.apply_steps`` once it exists, else locally."""
    try:
        from ckptbridge.transforms import apply_steps
    except ImportError:
        return _apply_steps(list(arrays), match.steps)
    return np.asarray(apply_steps(list(arrays), match.steps))


def _apply_steps(arrays: list[np.ndarray], steps: Sequence[Step]) -> np.ndarray:
    out = arrays[0]
    for step in steps:
        if isinstance(step, Concat):
            out = np.concatenate(arrays, axis=step.axis)
        elif isinstance(step, Slice):
            index = [slice(None)] * out.ndim
            index[step.axis] = slice(step.start, step.stop, step.step)
            out = out[tuple(index)]
        elif isinstance(step, PermuteBlocks):
            blocks = np.split(out, step.parts, axis=step.axis)
            out = np.concatenate([blocks[i] for i in step.order], axis=step.axis)
        elif isinstance(step, Add):
            index = [slice(None)] * out.ndim
            index[step.axis] = slice(step.start, step.stop)
            out = out.copy()
            out[tuple(index)] += step.value
        elif isinstance(step, Cast):
            out = out.astype(step.dtype)
        else:
            raise NotImplementedError(f"test helper has no {step.op!r}")
    return out
