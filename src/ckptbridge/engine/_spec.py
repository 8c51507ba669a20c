"""Plain descriptions of the two sides the engine maps between."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    order: int | None = None
    aliases: tuple[str, ...] = ()
    layer: str | None = None
    trainable: bool | None = None
    partition: tuple[str, ...] = field(
        default=()
    )  # save-slice spec when the variable is partitioned

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n
