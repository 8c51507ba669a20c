"""The converters' cheap necessary conditions: words every cell's or attention block's keys hold.

Imported on its own (the package's ``__init__`` imports nothing eagerly), so the engine can tell
that no converter can apply without importing the detectors and converters.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from ckptbridge.engine._spec import VarSpec

TF1_LSTM_LAYERS = frozenset({"BasicLSTMCell", "LSTMCell", "LSTMBlockCell"})
TF1_SIMPLE_LAYERS = frozenset({"BasicRNNCell"})
# A word every cell's keys hold (stripped keys are prefixes of the keys): a Keras cell's
# ``recurrent_kernel`` leaf, a TF1 LSTM or simple cell's last scope (``_cells._TF1_LSTM_SCOPE``,
# ``_cells._TF1_SIMPLE_SCOPE``), a TF1 GRU's ``gates`` scope; or a cell class in ``VarSpec.layer``.
CELL_WORDS = ("recurrent_kernel", "lstm_cell", "basic_rnn_cell", "gates/")
CELL_LAYERS = TF1_LSTM_LAYERS | TF1_SIMPLE_LAYERS
ATTENTION_WORDS = ("query",)  # every attention block has a query projection


def may_hold(
    specs: Sequence[VarSpec], words: Sequence[str], layers: AbstractSet[str] = frozenset()
) -> bool:
    """Whether any of ``specs`` has one of ``words`` in its name or one of ``layers`` as its
    ``layer``: a cheap necessary condition for a detector to find anything (one C-level scan
    of the joined names per word; a word holds no newline, so it cannot span two names).

    >>> may_hold([VarSpec("rnn/lstm_cell/kernel", (12, 16))], ("lstm_cell",))
    True
    >>> may_hold([VarSpec("dense/kernel", (2, 2), layer="Dense")], ("lstm_cell",), {"LSTMCell"})
    False
    """
    names = "\n".join([s.name for s in specs])
    if any(word in names for word in words):
        return True
    return bool(layers) and not layers.isdisjoint({s.layer for s in specs})


def may_propose(*sides: Sequence[VarSpec]) -> bool:
    """False when no side holds a cell or an attention block: ``propose`` then detects nothing
    and returns an empty result (without ``pins``), so the caller need not import it.

    >>> may_propose([VarSpec("fc/weights", (16, 2))], [VarSpec("dense/kernel", (16, 2))])
    False
    """
    return any(
        may_hold(specs, CELL_WORDS, CELL_LAYERS) or may_hold(specs, ATTENTION_WORDS)
        for specs in sides
    )
