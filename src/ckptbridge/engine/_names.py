"""Name and shape vocabulary shared by every derivation step (pure string functions).

>>> normalise("sequential/dense/kernel:0")
'sequential/dense/kernel'
>>> normalise("fc1/weights")
'fc1/kernel'
>>> normalise("model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE")
'model/layer_with_weights-0/kernel'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from ckptbridge._text import lazy_pattern
from ckptbridge.format._types import ATTRIBUTES_SUFFIX

_SUFFIX_RE = lazy_pattern(r":\d+$")
_UNNAMED_RE = re.compile(r"Variable(_\d+)?")
_DIGITS_RE = re.compile(r"(\d+)")
_DIR_RE = lazy_pattern(r"(^|/)(fw|bw)(?=/|$)")
_DIRECTION_RE = lazy_pattern(r"(^|/)(forward|backward)_")
_COUNTER_RE = re.compile(r"_?\d+")

# Leaf names that mean the same thing on both sides of the TF1/TF2 divide.
VOCABULARY: dict[str, str] = {
    "weights": "kernel",
    "biases": "bias",
    "_kernel": "kernel",
    "_bias": "bias",
    "_recurrent_kernel": "recurrent_kernel",
    "_embeddings": "embeddings",
}

# Leaves whose meaning is known; two known leaves must agree before a structural match.
MEANINGFUL_LEAVES = frozenset(
    {
        "kernel",
        "bias",
        "gamma",
        "beta",
        "moving_mean",
        "moving_variance",
        "embeddings",
        "recurrent_kernel",
        "depthwise_kernel",
        "pointwise_kernel",
        "scale",
        "offset",
    }
)


@lru_cache(maxsize=1 << 18)
def strip_key(name: str) -> str:
    """Drop storage decorations: a ``:0`` suffix and TF2's ``/.ATTRIBUTES/VARIABLE_VALUE``.

    >>> strip_key("dense/kernel:0")
    'dense/kernel'
    """
    name = name.removesuffix(ATTRIBUTES_SUFFIX)  # format._types.strip_attributes, inline
    return _SUFFIX_RE().sub("", name) if ":" in name else name


@lru_cache(maxsize=1 << 18)
def normalise(name: str) -> str:
    """Return the comparable form of a key: stripped, with the leaf mapped through VOCABULARY.

    >>> normalise("conv1/biases")
    'conv1/bias'
    """
    name = strip_key(name)
    scope, sep, leaf = name.rpartition("/")
    new = VOCABULARY.get(leaf)
    if new is None and (scope or not sep):
        return name  # unchanged ('/x' still loses its '/')
    leaf = leaf if new is None else new
    return f"{scope}/{leaf}" if scope else leaf


def vocabulary_note(raw: str, norm: str) -> str | None:
    """Say which vocabulary entry turned ``raw`` into ``norm`` (``weights->kernel``), if any."""
    leaf = strip_key(raw).rpartition("/")[2]
    new = norm.rpartition("/")[2]
    return f"{leaf}->{new}" if leaf != new else None


def leaf_of(norm: str) -> str:
    """The last path component."""
    return norm.rpartition("/")[2]


def scope_of(norm: str) -> str:
    """Everything before the last path component ('' for a top-level name)."""
    return norm.rpartition("/")[0]


def is_unnamed(norm: str) -> bool:
    """True for TF1's automatic names ``Variable``, ``Variable_3`` (in any scope)."""
    return _UNNAMED_RE.fullmatch(leaf_of(norm)) is not None


def meaningful_leaf(norm: str) -> str | None:
    """The leaf when it names a known role (``kernel``, ``gamma``...), else None."""
    leaf = leaf_of(norm)
    return leaf if leaf in MEANINGFUL_LEAVES else None


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``Variable_2`` before ``Variable_10`` and ``conv2d_9`` before ``conv2d_10``.

    >>> sorted(["v_10", "v_2", "v"], key=natural_key)
    ['v', 'v_2', 'v_10']
    """
    return tuple([(0, int(p)) if p.isdigit() else (1, p) for p in _DIGITS_RE.split(name) if p])


def unnumbered_scope(scope: str) -> str:
    """``scope`` without what TensorFlow adds to tell siblings apart: numbers and directions.

    Two scopes with the same form differ only by creation counters (``dense``/``dense_1``,
    ``cell_0``/``cell_1``, ``conv3_2``/``conv3_3``) or by direction (``fw``/``bw``,
    ``forward_lstm``/``backward_lstm``), so sorting them by name sorts them by creation; scopes of
    different forms (``encoder``/``decoder``) are only ordered by the alphabet.

    >>> unnumbered_scope("rnn/multi_rnn_cell/cell_1/lstm_cell"), unnumbered_scope("bidirectional_rnn/bw")
    ('rnn/multi_rnn_cell/cell/lstm_cell', 'bidirectional_rnn/<dir>')
    """
    return _COUNTER_RE.sub("", undirected_scope(scope))


def undirected_scope(scope: str) -> str:
    """``scope`` with its directions (``fw``/``bw``, ``forward_``/``backward_``) made alike, its
    numbers kept: the form to compare where numbers are not creation order.

    >>> undirected_scope("bidirectional_1/backward_lstm_1"), undirected_scope("birnn/fw")
    ('bidirectional_1/<dir>_lstm_1', 'birnn/<dir>')
    """
    if "fw" in scope or "bw" in scope:  # what each pattern needs: most scopes have neither
        scope = _DIR_RE().sub(r"\1<dir>", scope)
    return _DIRECTION_RE().sub(r"\1<dir>_", scope) if "ward_" in scope else scope


def suffixes(norm: str) -> Iterable[tuple[int, str]]:
    """Yield ``(length, suffix)`` for every component suffix, longest first.

    >>> list(suffixes("a/b/c"))
    [(3, 'a/b/c'), (2, 'b/c'), (1, 'c')]
    """
    parts = norm.split("/")
    n = len(parts)
    for i in range(n):
        yield n - i, "/".join(parts[i:])


def _squeeze(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _coarsens(fine: tuple[int, ...], coarse: tuple[int, ...]) -> bool:
    """True when ``coarse`` is ``fine`` with runs of consecutive dimensions multiplied together."""
    i = 0
    for d in coarse:
        prod = 1
        start = i
        while i < len(fine) and prod < d:
            prod *= fine[i]
            i += 1
        if prod != d or (i == start and d != 1):
            return False
    return i == len(fine)


def layout_compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """True when ``a`` and ``b`` differ only in layout: a reshape that keeps element order meaningful.

    Unit dimensions may come and go (``[1]`` <-> ``[1, 1]``) and consecutive dimensions may merge
    (``[7, 7, 512, 4096]`` <-> ``[25088, 4096]``); a permutation like ``[4, 6]`` <-> ``[6, 4]`` is not.

    >>> layout_compatible((7, 7, 512, 4096), (25088, 4096))
    True
    >>> layout_compatible((4, 6), (6, 4))
    False
    """
    if a == b:
        return True
    sa, sb = _squeeze(a), _squeeze(b)
    if sa == sb:
        return True
    return _coarsens(sa, sb) or _coarsens(sb, sa)
