"""Small Keras 3 models of every structure TF2 object-graph paths depend on (any backend)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

L = keras.layers


def sequential() -> Any:
    return keras.Sequential(
        [keras.Input((3,)), L.Dense(4), L.Dropout(0.1), L.BatchNormalization(), L.Dense(2)]
    )


def residual() -> Any:
    i = keras.Input((8, 8, 3))
    a = L.ReLU()(L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(i)))
    c = L.Conv2D(4, 3, padding="same")(a)
    s = L.Conv2D(4, 1)(i)
    o = keras.ops.relu(L.Add()([c, s]))
    return keras.Model(i, L.Dense(2)(L.GlobalAveragePooling2D()(o)))


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.d1 = L.Dense(4)
        self.blocks = [L.Dense(3), L.Dense(3)]  # a list attribute: not in TF2 checkpoints
        self.d2 = L.Dense(2)

    def call(self, x: Any) -> Any:
        x = self.d1(x)
        for b in self.blocks:
            x = b(x)
        return self.d2(x)


def subclassed() -> Any:
    m = Subclassed()
    m(np.zeros((1, 5), "float32"))
    return m


def nested() -> Any:
    inner = keras.Sequential([keras.Input((4,)), L.Dense(3), L.Dense(3)])
    i = keras.Input((5,))
    return keras.Model(i, L.Dense(1)(inner(L.Dense(4)(i))))


def rnn() -> Any:
    i = keras.Input((6, 3))
    x = L.LSTM(4, return_sequences=True)(i)
    x = L.Bidirectional(L.GRU(3))(x)
    return keras.Model(i, L.Dense(2)(x))


def attention() -> Any:
    i = keras.Input((6, 8))
    x = L.MultiHeadAttention(2, 4)(i, i)
    x = L.LayerNormalization()(x)
    return keras.Model(i, L.Embedding(10, 3)(keras.ops.cast(x[..., 0], "int32")))


def with_optimizer() -> Any:
    m = keras.Sequential([keras.Input((3,)), L.Dense(4), L.Dense(2)])
    m.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    m.optimizer.build(m.trainable_variables)
    return m


ZOO: dict[str, Callable[[], Any]] = {
    "sequential": sequential, "residual": residual, "subclassed": subclassed, "nested": nested,
    "rnn": rnn, "attention": attention, "with_optimizer": with_optimizer,
}  # fmt: skip


def all_variables(model: Any) -> list[Any]:
    """The model's weights, then its optimizer's variables when it has a built one."""
    optimizer = getattr(model, "optimizer", None)
    extra = list(optimizer.variables) if optimizer is not None and optimizer.built else []
    return [*model.weights, *extra]
