"""Derivation by structure, for what names leave: layer groups in creation order, then unique shapes.

Each side is cut into groups (a layer's scope; an unnamed ``Variable_3`` or an unscoped name is a
group of its own) and the two group sequences are aligned. Equal length and pairwise compatible:
all match; groups whose signature has no counterpart on the other side may be set aside first.
Where one side's order between layers of different kinds is unknown (a checkpoint without
``.meta`` sorts every ``batch_normalization_N`` before every ``conv2d_N``), layers are aligned
kind by kind (a Conv2D's ``kernel``, a BatchNormalization's four vectors...), each kind in its own
creation order. Leftovers are matched when their (leaf, shape), shape, or element count is unique
on both sides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable
from math import prod
from typing import Any

from ckptbridge.engine._names import (
    MEANINGFUL_LEAVES,
    is_unnamed,
    meaningful_leaf,
    natural_key,
    normalise,
    scope_of,
    unnumbered_scope,
)
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine._state import State, fit
from ckptbridge.rules._steps import Step

Group = list[VarSpec]
Pairing = list[tuple[VarSpec, VarSpec, tuple[Step, ...]]]


def match_by_structure(st: State) -> None:
    """Run the group alignment, the flattened alignment, the alignment by layer kind, then the
    unique-shape passes."""
    order = f"{st.family} creation order" if st.family else "creation order"
    src_groups, tgt_groups = _groups(st.free_sources()), _groups(st.free_targets())
    _take_aligned(st, src_groups, tgt_groups, f"{order} + shape")
    src_left, tgt_left = st.free_sources(), st.free_targets()
    if not src_left or not tgt_left:
        return  # every pass below pairs a free source with a free target
    src_groups, tgt_groups = _groups(src_left), _groups(tgt_left)
    if any(len(g) > 1 for g in src_groups + tgt_groups) and (
        all(len(g) == 1 for g in src_groups) or all(len(g) == 1 for g in tgt_groups)
    ):  # one side has no layer structure: align variable by variable
        _take_aligned(st, _flatten(src_groups), _flatten(tgt_groups), f"{order} + shape")
    _align_by_kind(st, order)
    _unique(st, lambda s: (meaningful_leaf(normalise(s.name)), s.shape, s.dtype.lower()),
            "unique leaf and shape", need_leaf=True)  # fmt: skip
    _unique(st, lambda s: (s.shape, s.dtype.lower()), "unique shape")
    _unique(st, lambda s: (s.size, s.dtype.lower()), "unique element count")


# Creation order of a layer's variables when no ``order`` is known (Keras and TF1 layers alike).
_LEAF_RANK = {"kernel": 0, "depthwise_kernel": 0, "embeddings": 0, "gamma": 0, "beta": 1,
              "pointwise_kernel": 1, "recurrent_kernel": 1, "bias": 2, "moving_mean": 2,
              "moving_variance": 3}  # fmt: skip


def _side_key(specs: list[VarSpec]) -> Callable[[VarSpec], Any]:
    if specs and all(s.order is not None for s in specs):
        return lambda s: (0, s.order)
    scope_keys: dict[str, Any] = {}  # a layer's variables share their scope's key
    leaf_keys: dict[str, Any] = {}  # and few leaves recur: kernel, bias...

    def by_name(s: VarSpec) -> Any:
        norm = normalise(s.name)
        scope, _, leaf = norm.rpartition("/")
        scope_key = scope_keys.get(scope)
        if scope_key is None:
            scope_key = scope_keys[scope] = natural_key(scope)
        leaf_key = leaf_keys.get(leaf)
        if leaf_key is None:
            leaf_key = leaf_keys[leaf] = natural_key("/" + leaf)
        # (1, natural_key(scope), rank, natural_key(norm)) sorts the same: its last part is only
        # compared between scopes of equal keys, where it orders as natural_key('/' + leaf).
        return (1, scope_key, _LEAF_RANK.get(leaf, 9), leaf_key)

    return by_name


def _groups(specs: list[VarSpec]) -> list[Group]:
    side_key = _side_key(specs)
    keys = {spec.name: side_key(spec) for spec in specs}  # each spec's sort key computed once
    by_scope: dict[str, Group] = {}
    unnamed: dict[str, bool] = {}  # is_unnamed per leaf: few distinct leaves
    for spec in specs:
        norm = normalise(spec.name)
        scope, _, leaf = norm.rpartition("/")  # scope_of(norm), leaf_of(norm)
        if scope:
            alone = unnamed.get(leaf)
            if alone is None:
                alone = unnamed[leaf] = is_unnamed(leaf)
            gid = norm if alone else scope + "/"
        else:
            gid = norm
        group = by_scope.get(gid)
        if group is None:
            by_scope[gid] = [spec]
        else:
            group.append(spec)
    groups = [
        g if len(g) == 1 else sorted(g, key=lambda s: keys[s.name]) for g in by_scope.values()
    ]
    return sorted(groups, key=lambda g: keys[g[0].name])


def _flatten(groups: list[Group]) -> list[Group]:
    return [[s] for g in groups for s in g]


def _leaves_conflict(a: VarSpec, b: VarSpec) -> bool:
    la, lb = meaningful_leaf(normalise(a.name)), meaningful_leaf(normalise(b.name))
    return la is not None and lb is not None and la != lb


def _roles(group: Group) -> list[str | None]:
    """``meaningful_leaf(normalise(name))`` of each member (inline: one call per member)."""
    return [
        leaf if (leaf := normalise(s.name).rpartition("/")[2]) in MEANINGFUL_LEAVES else None
        for s in group
    ]


def pair_groups(a: Group, b: Group) -> Pairing | None:
    """Member-by-member pairing of two groups, or None when they are not the same kind of layer."""
    if len(a) != len(b):
        return None
    leaves_a, leaves_b = _roles(a), _roles(b)
    if leaves_a == leaves_b:  # members already in the same order: the usual case
        ordered = b
    elif None not in leaves_a and len(set(leaves_a)) == len(a) and set(leaves_a) == set(leaves_b):
        by_leaf = dict(zip(leaves_b, b, strict=True))
        ordered = [by_leaf[leaf] for leaf in leaves_a]  # type: ignore[index]
        leaves_b = leaves_a  # each member of ``ordered`` has the leaf it was picked for
    else:
        ordered = b
    out: Pairing = []
    for s, t, la, lb in zip(a, ordered, leaves_a, leaves_b, strict=True):
        steps = () if s.shape == t.shape and s.dtype == t.dtype else fit(s, t)  # fit's () inline
        if steps is None or (la is not None and lb is not None and la != lb):  # leaves conflict
            return None
        out.append((s, t, steps))
    return out


def _signature(g: Group) -> tuple[int, ...]:
    if len(g) == 1:
        return (prod(g[0].shape),)  # VarSpec.size, inline
    return tuple(sorted([prod(s.shape) for s in g]))


def _take_aligned(st: State, src: list[Group], tgt: list[Group], reason: str) -> None:
    """Match two group sequences one to one, in order, or not at all.

    Gaps are trusted only when they explain themselves: a group whose signature has no counterpart on
    the other side at all (a layer built but never used, a head the new model dropped) is set aside.
    What remains must line up one to one with every pair compatible. A longest-common-subsequence
    alignment is deliberately not used: where layers hold their sub-layers in another order (BERT's
    LayerNorms), it lines up groups of the wrong layer with a unique optimum, a silent wrong mapping.
    """
    if not src or not tgt:
        return
    sig_a, sig_b = [_signature(g) for g in src], [_signature(g) for g in tgt]
    have_a, have_b = set(sig_a), set(sig_b)
    kept_src = [(g, sig) for g, sig in zip(src, sig_a, strict=True) if sig in have_b]
    kept_tgt = [(g, sig) for g, sig in zip(tgt, sig_b, strict=True) if sig in have_a]
    if not kept_src or len(kept_src) != len(kept_tgt):
        return
    pairings = []
    for (a, _), (b, _) in zip(kept_src, kept_tgt, strict=True):
        pairing = pair_groups(a, b)
        if pairing is None:
            return
        pairings.append(pairing)
    if len(kept_src) < len(src) or len(kept_tgt) < len(tgt):
        reason += " (layers with no counterpart set aside)"
    alphabet_src, alphabet_tgt = _ordered_by_alphabet(kept_src), _ordered_by_alphabet(kept_tgt)
    for i, p in enumerate(pairings):
        if i not in alphabet_src and i not in alphabet_tgt:
            _take_pairing(st, p, reason)


def _ordered_by_alphabet(groups: list[tuple[Group, tuple[int, ...]]]) -> set[int]:
    """Positions whose place in ``groups`` only the alphabet decided, so order cannot pair them.

    Without creation order a side is sorted by name. That is its creation order where names differ
    by the numbers TensorFlow adds (``conv3_2``/``conv3_3``, ``dense``/``dense_1``, ``Variable_7``)
    or by direction (``fw``/``bw``), but not where they differ by words: ``decoder/dense`` sorts
    before ``encoder/dense``. Groups of one signature whose scopes differ by words are interchangeable
    as far as order knows; they are left to the unique-shape passes, which report the tie. Where
    the numbers themselves are not creation order (``VarSpec.counted`` False), no two groups of
    one signature are ordered.
    """
    if all(s.order is not None for g, _ in groups for s in g):
        return set()
    counted = all(s.counted for g, _ in groups for s in g)
    by_signature: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, (_, sig) in enumerate(groups):
        by_signature[sig].append(i)
    out: set[int] = set()
    for positions in by_signature.values():
        if len(positions) < 2:
            continue  # one group of its signature: nothing to tell it from
        if not counted:
            out.update(positions)
            continue
        first = _unnumbered_scope(groups[positions[0]][0])
        if any(_unnumbered_scope(groups[i][0]) != first for i in positions[1:]):  # two forms
            out.update(positions)
    return out


def _unnumbered_scope(group: Group) -> str:
    norm = normalise(group[0].name)
    return unnumbered_scope(scope_of(norm) or norm)


def _kind(group: Group) -> tuple[frozenset[str], int] | None:
    """A layer's kind: the roles of its variables and its kernel's rank (None when a role is
    unknown). ``({'kernel'}, 4)`` is a Conv2D without bias, ``({'beta', 'moving_mean',
    'moving_variance'}, 0)`` a BatchNormalization without scale."""
    leaves = [meaningful_leaf(normalise(s.name)) for s in group]
    if any(leaf is None for leaf in leaves) or len(set(leaves)) != len(leaves):
        return None
    kernels = [len(s.shape) for s, leaf in zip(group, leaves, strict=True) if leaf == "kernel"]
    return frozenset(leaf for leaf in leaves if leaf is not None), kernels[0] if kernels else 0


def _align_by_kind(st: State, order: str) -> None:
    """Align layers kind by kind when one side does not know the order between kinds.

    Only then: where both sides know their whole creation order, the interleaved alignment has
    already said whether they line up, and kind by kind would be a weaker test. Each kind's two
    sequences must line up as a whole (:func:`_take_aligned`); a kind that does not is left to the
    unique-shape passes, which report ties.
    """
    src, tgt = st.free_sources(), st.free_targets()
    if not src or not tgt or (_knows_order(src) and _knows_order(tgt)):
        return
    kinds: dict[tuple[frozenset[str], int], tuple[list[Group], list[Group]]] = defaultdict(
        lambda: ([], [])
    )
    for side, groups in enumerate((_groups(src), _groups(tgt))):
        for g in groups:
            kind = _kind(g)
            if kind is not None:
                kinds[kind][side].append(g)
    for a, b in kinds.values():
        _take_aligned(st, a, b, f"{order} within the layer kind + shape")


def _knows_order(specs: list[VarSpec]) -> bool:
    return all(s.order is not None for s in specs)


def _take_pairing(st: State, pairing: Pairing | None, reason: str) -> None:
    for s, t, steps in pairing or ():
        st.take_pair(s, t, steps, reason)


def _unique(
    st: State, key: Callable[[VarSpec], Hashable], reason: str, *, need_leaf: bool = False
) -> None:
    by_src: dict[Hashable, list[VarSpec]] = defaultdict(list)
    by_tgt: dict[Hashable, list[VarSpec]] = defaultdict(list)
    for s in st.free_sources():
        by_src[key(s)].append(s)
    for t in st.free_targets():
        by_tgt[key(t)].append(t)
    for k, tgts in by_tgt.items():
        srcs = by_src.get(k)
        if need_leaf and isinstance(k, tuple) and k[0] is None:
            continue
        if not srcs or len(srcs) != 1 or len(tgts) != 1:
            continue
        s, t = srcs[0], tgts[0]
        steps = fit(s, t)
        if steps is None or _leaves_conflict(s, t):
            continue
        st.take_pair(s, t, steps, reason)
