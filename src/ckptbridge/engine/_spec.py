"""Plain descriptions of the two sides the engine maps between."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from ckptbridge.engine._plan import Auxiliary


class GraphConstant(NamedTuple):
    """A value the graph that wrote a variable applied to it outside the checkpoint.

    ``name``: what it is (``"forget_bias"``: the number a TF1 LSTM cell adds to its forget gate);
    ``node``: where the graph holds it (``"rnn/while/lstm_cell/add/y"``), for reports.

    >>> GraphConstant("forget_bias", 0.8, "rnn/basic_lstm_cell/add/y").value
    0.8
    """

    name: str
    value: float
    node: str


@dataclass(frozen=True)
class VarSpec:
    """One variable (target side) or checkpoint entry (source side), as the engine sees it.

    ``name``: the key the plan uses. Source: the checkpoint key exactly as stored
    (``conv1/weights``, ``model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``).
    Target: the model variable's path (``sequential/dense/kernel``, ``dense/kernel:0``) or the
    template checkpoint key.
    ``order``: creation order when known (``.meta`` order, Keras creation counter, object-graph
    order); ``None`` when unknown.
    ``aliases``: other names of the same variable (every object-graph path of a TF2 entry,
    Keras 3's ``model/_functional/_operations/1/_kernel``, ...).
    ``layer``: the kind of layer or cell that owns it when known (``Dense``, ``LSTMCell``, ...).
    ``constants``: values its graph applied to it outside the checkpoint (a TF1 LSTM cell's
    ``forget_bias``, read from the ``.meta``), see :class:`GraphConstant`.
    ``auxiliary``: set when the side knows the entry is not a model weight (a TF2 object graph
    names its optimizers and their slots); the engine then takes it as is instead of guessing
    from the name.
    ``counted``: whether the numbers in its names (``dense``/``dense_1``) were given in creation
    order, as TensorFlow gives them. False for Keras 3 models off TensorFlow with no recorded
    order: Keras numbers layers when they are made, which need not be when they are built.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    order: int | None = None
    aliases: tuple[str, ...] = ()
    layer: str | None = None
    trainable: bool | None = None
    counted: bool = True
    partition: tuple[str, ...] = field(
        default=()
    )  # save-slice spec when the variable is partitioned
    constants: tuple[GraphConstant, ...] = ()
    auxiliary: Auxiliary | None = None

    @property
    def size(self) -> int:
        return math.prod(self.shape)
