"""Positional object-graph paths, ranked among the positions that hold variables.

Keras 3 names a functional or Sequential model's layers by position (``_operations/2``), counting
layers without weights (``Input``, ``Dropout``, ``Flatten``); tf-keras writes ``layer-3`` the same
way. One layer without weights added or removed shifts every later index, so a raw index compared
across two models pairs the wrong layers. Ranking each index among its siblings that hold
variables (what tf-keras's ``layer_with_weights-N`` does) keeps the identity that positions carry.

>>> ranked = rank_positions(["m/_operations/2/kernel", "m/_operations/5/kernel"])
>>> ranked["m/_operations/5/kernel"]
'm/_operations/#1/kernel'
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ckptbridge._text import lazy_pattern

__all__ = ["may_hold_position", "positional_keys", "rank_positions"]

_CONTAINERS = frozenset({"_operations", "_layers", "_self_tracked_trackables"})
_PREFIXED = lazy_pattern(r"(layer|layer_with_weights)-(\d+)")
# Any positional segment at all: one C-level search keeps the (usual) paths without one cheap.
_ANY_SPOT = lazy_pattern(
    r"(?:^|/)(?:(?:layer|layer_with_weights)-\d+(?:/|$)"
    r"|(?:_operations|_layers|_self_tracked_trackables)/.)"
)
# The same on a raw key, before ``engine._names.normalise``: the normalised form's segments are the
# raw key's (only ':0', '/.ATTRIBUTES/VARIABLE_VALUE' and the leaf's vocabulary differ), so a key
# this does not find has no positional segment once normalised (a ``layer-N`` leaf may end in ':').
_RAW_SPOT = lazy_pattern(
    r"(?:^|/)(?:(?:layer|layer_with_weights)-\d+(?:[/:\n]|$)"
    r"|(?:_operations|_layers|_self_tracked_trackables)/.)"
)

_RAW_WORDS = (
    "layer-",
    "layer_with_weights-",
    "_operations/",
    "_layers/",
    "_self_tracked_trackables/",
)

Spot = tuple[int, str, int]  # token position, container kind, index


def _spots(tokens: list[str]) -> list[Spot]:
    out: list[Spot] = []
    for i, tok in enumerate(tokens):
        m = _PREFIXED().fullmatch(tok)
        if m is not None:
            out.append((i, m.group(1), int(m.group(2))))
        elif tok.isdigit() and i > 0 and tokens[i - 1] in _CONTAINERS:
            out.append((i, tokens[i - 1], int(tok)))
    return out


def may_hold_position(key: str) -> bool:
    """False when the normalised form of the raw ``key`` surely has no positional segment, so it
    can be left out of :func:`rank_positions` (and need not be normalised for it).

    >>> may_hold_position("model/layer-3:0"), may_hold_position("net/block3/fc/weights/Adam")
    (True, False)
    """
    return _RAW_SPOT().search(key) is not None


def positional_keys(keys: Iterable[str]) -> list[str]:
    """The raw ``keys`` that :func:`may_hold_position` (one C-level search each).

    >>> positional_keys(["model/layer-3/kernel", "dense/kernel"])
    ['model/layer-3/kernel']
    """
    keys = list(keys)
    joined = "\n".join(keys)  # a key _RAW_SPOT finds holds one of these words: one C scan each
    if not any(word in joined for word in _RAW_WORDS):
        return []
    search = _RAW_SPOT().search
    return [k for k in keys if search(k)]


def rank_positions(paths: Iterable[str]) -> dict[str, str]:
    """Map every path with a positional segment to its ranked form (``#K``: K-th position that
    holds a variable in the same container); paths without one are left out.

    >>> rank_positions(["model/layer-1/kernel", "model/layer-3/kernel"])["model/layer-3/kernel"]
    'model/layer-#1/kernel'
    """
    parsed: dict[str, tuple[list[str], list[Spot]]] = {}
    search = _ANY_SPOT().search
    for p in dict.fromkeys(paths):
        if search(p) is None:
            continue
        tokens = p.split("/")
        found = _spots(tokens)
        if found:
            parsed[p] = (tokens, found)
    seen: dict[tuple[tuple[str, ...], str], set[int]] = defaultdict(set)
    for tokens, found in parsed.values():
        for i, kind, index in found:
            seen[(tuple(tokens[:i]), kind)].add(index)
    ranks = {key: {n: r for r, n in enumerate(sorted(v))} for key, v in seen.items()}
    out: dict[str, str] = {}
    for p, (parts, found) in parsed.items():
        tokens = list(parts)
        for i, kind, index in found:
            rank = ranks[(tuple(parts[:i]), kind)][index]
            tokens[i] = f"#{rank}" if kind in _CONTAINERS else f"{kind}-#{rank}"
        out[p] = "/".join(tokens)
    return out
