"""Derivation by names: identical normalised names, then the longest unique common path suffix."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Container, Iterable

from ckptbridge.engine._mismatch import describe_mismatch
from ckptbridge.engine._names import (
    is_unnamed,
    normalise,
    strip_key,
    vocabulary_note,
)
from ckptbridge.engine._positions import positional_keys, rank_positions
from ckptbridge.engine._slots import follows_weight
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine._state import State, fit

Ranks = dict[str, str]
# spec name -> its comparable names, computed once per derivation. A tuple in a defined order (the
# name's, then its aliases'), never a set: which key a pair is reported under must not depend on
# PYTHONHASHSEED.
Norms = dict[str, tuple[str, ...]]


def match_by_name(st: State, *, include_aux: bool = False) -> None:
    """Identical normalised names (unique on both sides, shapes fit), then common suffixes.

    Positional path segments (Keras's ``_operations/2``, ``layer-3``) are compared by rank among the
    positions that hold variables, so a layer without weights added or removed shifts nothing.
    """
    ranks = (_side_ranks(st.sources.values()), _side_ranks(st.targets.values()))
    norms: tuple[Norms, Norms] = ({}, {})
    _identical(st, include_aux, ranks, norms)
    _common_suffix(st, ranks, norms)


def _side_ranks(specs: Iterable[VarSpec]) -> Ranks:
    specs = list(specs)
    names = [s.name for s in specs]  # then the aliases: ranks do not depend on the order
    names += [n for s in specs if s.aliases for n in s.aliases]
    return rank_positions(map(normalise, positional_keys(names)))


def _norms(spec: VarSpec, ranks: Ranks, cache: Norms) -> tuple[str, ...]:
    out = cache.get(spec.name)
    if out is not None:
        return out
    norm = normalise(spec.name)
    if ranks:  # else every name is its own key
        norm = ranks.get(norm, norm)
    aliases = spec.aliases
    if not aliases:
        out = (norm,)
    else:
        keys = {norm: None}
        for n in aliases:
            alias = normalise(n)
            keys[ranks.get(alias, alias) if ranks else alias] = None
        out = tuple(keys)
    cache[spec.name] = out
    return out


def _unique_pairs(
    src_index: dict[str, set[str]], tgt_index: dict[str, set[str]]
) -> list[tuple[str, str, str]]:
    """(key, source, target) for keys held by exactly one spec on each side, each spec in one pair."""
    pairs = []
    for key, tnames in tgt_index.items():
        snames = src_index.get(key)
        if snames is not None and len(snames) == 1 and len(tnames) == 1:
            pairs.append((key, next(iter(snames)), next(iter(tnames))))
    return _one_to_one(pairs)


def _one_to_one(pairs: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The ``(key, source, target)`` pairs whose source and target are in no other pair."""
    per_src: dict[str, set[str]] = defaultdict(set)
    per_tgt: dict[str, set[str]] = defaultdict(set)
    for _, s, t in pairs:
        per_src[s].add(t)
        per_tgt[t].add(s)
    seen: set[tuple[str, str]] = set()
    out = []
    for key, s, t in pairs:
        if len(per_src[s]) == 1 and len(per_tgt[t]) == 1 and (s, t) not in seen:
            seen.add((s, t))
            out.append((key, s, t))
    return out


def _identical(
    st: State, include_aux: bool, ranks: tuple[Ranks, Ranks], norms: tuple[Norms, Norms]
) -> None:
    # key -> the one spec that has it, None when several do (what _unique_pairs needs of sets)
    src_aux, tgt_aux = st.aux.get, st.target_aux.get  # slots follow their weight (engine._slots)
    src_one: dict[str, str | None] = {}
    for s in st.free_sources(aux=include_aux):
        if (a := src_aux(s.name)) is None or not follows_weight(a):
            for n in _norms(s, ranks[0], norms[0]):
                src_one[n] = None if n in src_one else s.name
    tgt_one: dict[str, str | None] = {}
    for t in st.free_targets(aux=include_aux):  # in input order, each target's keys in order
        if (a := tgt_aux(t.name)) is None or not follows_weight(a):
            for n in _norms(t, ranks[1], norms[1]):
                if n in src_one:  # a key no source has pairs nothing
                    tgt_one[n] = None if n in tgt_one else t.name
    pairs = [
        (key, source, target)
        for key, target in tgt_one.items()
        if target is not None and (source := src_one[key]) is not None
    ]
    named = {(s, t) for key, s, t in pairs if not is_unnamed(key)}
    for key, s_name, t_name in _one_to_one(pairs):  # the key first met in target order
        src, tgt = st.sources[s_name], st.targets[t_name]
        steps = fit(src, tgt)
        if steps is None:
            # a name (any of the pair's shared keys) says which entry it is: do not look elsewhere
            if (s_name, t_name) in named:
                st.fail(t_name, _misfit(src, tgt))
            continue
        if strip_key(s_name) == strip_key(t_name):
            reason = "identical name"
        else:
            note = vocabulary_note(s_name, key) or vocabulary_note(t_name, key)
            reason = f"vocabulary: {note}" if note else "identical name after normalisation"
        st.take_pair(src, tgt, steps, reason)


def _misfit(src: VarSpec, tgt: VarSpec) -> str:
    if src.shape != tgt.shape:
        return describe_mismatch(src, tgt)
    return (f"{src.name!r} has the same name but dtype {src.dtype}, expected {tgt.dtype}; add a "
            f"cast step: transforms: [{{target: '{tgt.name}', steps: [{{op: cast, dtype: "
            f"{tgt.dtype}}}]}}]")  # fmt: skip


def _suffix_index(
    specs: list[VarSpec], ranks: Ranks, norms: Norms, keep: Container[str] | None = None
) -> dict[str, set[str]]:
    """Every component suffix of every name -> the specs that have it (only keys in ``keep``,
    which must hold every suffix of each of its keys: another side's index).

    A suffix's length is its number of components, so one flat index serves every length.
    """
    index: dict[str, set[str]] = {}
    known = norms.get
    for spec in specs:
        name = spec.name
        keys = known(name)  # _norms' cache, looked up inline
        for norm in keys if keys is not None else _norms(spec, ranks, norms):
            if keep is None:
                suffix, sep = norm, "/"
                while sep:
                    holders = index.get(suffix)
                    if holders is None:
                        index[suffix] = {name}
                    else:
                        holders.add(name)
                    _, sep, suffix = suffix.partition("/")
                continue
            # From the shortest suffix: ``keep`` (another side's index) holds every suffix of
            # each of its keys, so once a suffix is not kept no longer one is.
            cut = norm.rfind("/")
            while (suffix := norm[cut + 1 :]) in keep:
                holders = index.get(suffix)
                if holders is None:
                    index[suffix] = {name}
                else:
                    holders.add(name)
                if cut < 0:
                    break
                cut = norm.rfind("/", 0, cut)
    return index


def _common_suffix(st: State, ranks: tuple[Ranks, Ranks], norms: tuple[Norms, Norms]) -> None:
    """Longest common path suffix, unique on both sides (a model scope in front of one side)."""
    srcs, tgts = st.free_sources(), st.free_targets()
    if not srcs or not tgts:
        return
    tgt_all = _suffix_index(tgts, ranks[1], norms[1])
    src_index = _suffix_index(
        srcs, ranks[0], norms[0], keep=tgt_all
    )  # a key on one side pairs nothing
    by_length: dict[int, list[str]] = defaultdict(list)
    for key in tgt_all:  # target insertion order, as the pairs were always taken
        if key in src_index:
            by_length[key.count("/") + 1].append(key)
    for length in sorted(by_length, reverse=True):
        keys = by_length[length]
        src_free = _still_free(src_index, keys, st.free_src)
        tgt_free = _still_free(tgt_all, keys, st.free_tgt)
        for key, s_name, t_name in _unique_pairs(src_free, tgt_free):
            src, tgt = st.sources[s_name], st.targets[t_name]
            steps = fit(src, tgt)
            if steps is not None:
                st.take_pair(src, tgt, steps, f"common path suffix '{key}'")


def _still_free(
    index: dict[str, set[str]], keys: list[str], free: dict[str, None]
) -> dict[str, set[str]]:
    out = {}
    for key in keys:
        alive = {n for n in index[key] if n in free}
        if alive:
            out[key] = alive
    return out
