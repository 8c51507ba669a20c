"""Multi-head attention: TF1/BERT ``[H, H]`` dense kernels <-> Keras ``MultiHeadAttention``.

TF1 code (Google's BERT ``modeling.py`` and its kin) keeps each projection as a plain dense layer:
``.../query/kernel`` [D, heads*head_dim], ``.../query/bias`` [heads*head_dim] (``key``, ``value``
alike) and an output projection [heads*head_dim, O] (BERT: ``.../attention/output/dense``). It
splits heads after the matmul with ``reshape(..., [B, T, heads, head_dim])``, head-major.
Keras ``MultiHeadAttention`` (Keras 3 and tf-keras: the same layout) holds the same numbers in
``EinsumDense`` layers: ``query/kernel`` [D, heads, head_dim], ``query/bias`` [heads, head_dim],
``attention_output/kernel`` [heads, head_dim, O], ``attention_output/bias`` [O]. So every
variable is a pure ``Reshape``: the bytes do not change.

Which projection is which is decided by names only (``query``/``key``/``value``, TF2's
``_query_dense``...; the output ``attention_output``, ``output_dense``, ``output``,
``output/dense``, or BERT's sibling ``../output/dense`` of a ``self`` scope), never by order. Blocks
of the two sides are paired by creation order when every pair fits, else by a unique fit; a
target block that several source blocks fit is refused with the reason, not guessed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from ckptbridge._text import fmt_shape
from ckptbridge.engine._plan import Candidate, Match, Unmatched
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine.converters._cells import (
    BIAS_LEAVES,
    KERNEL_LEAVES,
    all_counted,
    first_order,
    natural_key,
    order_known,
    pick_one,
    split_name,
)
from ckptbridge.engine.converters._common import make_match
from ckptbridge.engine.converters._gate import ATTENTION_WORDS, may_hold
from ckptbridge.rules._steps import Reshape

AttnLayout = Literal["tf1", "keras"]

_PROJECTIONS: dict[str, tuple[str, ...]] = {
    "query": ("query", "query_dense"),
    "key": ("key", "key_dense"),
    "value": ("value", "value_dense"),
}
_OUTPUT_NAMES = ("attention_output", "output_dense", "output/dense", "output")
_SHOWN = 3


@dataclass(frozen=True, eq=False)
class AttentionBlock:
    """One multi-head attention block found on one side.

    ``roles``: ``query_kernel``, ``query_bias``, ``key_kernel``... ``output_kernel``,
    ``output_bias`` (biases and the output projection only when present). ``heads`` and
    ``head_dim`` are known on the Keras side only (the TF1 layout does not store them).
    """

    layout: AttnLayout
    scope: str
    roles: Mapping[str, VarSpec]
    heads: int | None = None
    head_dim: int | None = None
    order: int | None = None
    sort_key: tuple[object, ...] = field(default=())
    counted: bool = True

    @property
    def signature(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Every role with its shape in the TF1 (flat) layout: equal signatures fit each other."""
        return tuple(sorted((role, _flat(role, spec.shape)) for role, spec in self.roles.items()))

    @property
    def label(self) -> str:
        """``"Keras attention block 'mha' (2 heads x 8)"``, for reasons and errors."""
        if self.layout == "keras":
            return f"Keras attention block {self.scope!r} ({self.heads} heads x {self.head_dim})"
        return f"TF1 attention block {self.scope!r}"


def _flat(role: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) == 3 and role == "output_kernel":
        return (shape[0] * shape[1], shape[2])
    if len(shape) == 3:
        return (shape[0], shape[1] * shape[2])
    if len(shape) == 2 and role.endswith("_bias") and role != "output_bias":
        return (shape[0] * shape[1],)
    return shape


def detect_attention(specs: Sequence[VarSpec]) -> list[AttentionBlock]:
    """Every attention block among ``specs`` (both layouts), found from names and shapes.

    >>> blocks = detect_attention([VarSpec(f"mha/{p}/kernel", (16, 2, 8))
    ...                            for p in ("query", "key", "value")])
    >>> [(b.layout, b.scope, b.heads, b.head_dim) for b in blocks]
    [('keras', 'mha', 2, 8)]
    """
    if not may_hold(specs, ATTENTION_WORDS):
        return []  # every block has a query projection: skip splitting every name
    leaves: dict[str, dict[str, VarSpec]] = defaultdict(dict)
    for spec in specs:
        scope, leaf = split_name(spec.name)
        parent, _, last = scope.rpartition("/")
        if last:  # TF2 object paths spell the layers with a leading underscore: _query_dense
            leaves[f"{parent}/{last.lstrip('_')}" if parent else last.lstrip("_")][leaf] = spec
    blocks = []
    for scope in list(leaves):
        parent, _, last = scope.rpartition("/")
        if last in _PROJECTIONS["query"]:
            block = _block(parent, leaves)
            if block is not None:
                blocks.append(block)
    return blocks


def _projection(
    parent: str, names: tuple[str, ...], leaves: Mapping[str, Mapping[str, VarSpec]]
) -> tuple[VarSpec, VarSpec | None] | None:
    scopes = [f"{parent}/{n}" if parent else n for n in names]
    present = [s for s in scopes if s in leaves]
    if len(present) != 1:
        return None
    kernel = pick_one(leaves[present[0]], KERNEL_LEAVES)
    if kernel is None:
        return None
    return kernel, pick_one(leaves[present[0]], BIAS_LEAVES)


def _output(
    parent: str, leaves: Mapping[str, Mapping[str, VarSpec]]
) -> tuple[VarSpec, VarSpec | None] | None:
    found = _projection(parent, _OUTPUT_NAMES, leaves)
    grand, _, last = parent.rpartition("/")
    if found is None and last == "self" and grand:  # BERT: attention/self + attention/output/dense
        found = _projection(grand, ("output/dense",), leaves)
    return found


def _block(parent: str, leaves: Mapping[str, Mapping[str, VarSpec]]) -> AttentionBlock | None:
    roles: dict[str, VarSpec] = {}
    for role, names in _PROJECTIONS.items():
        found = _projection(parent, names, leaves)
        if found is None:
            return None
        roles[f"{role}_kernel"] = found[0]
        if found[1] is not None:
            roles[f"{role}_bias"] = found[1]
    out = _output(parent, leaves)
    if out is not None:
        roles["output_kernel"] = out[0]
        if out[1] is not None:
            roles["output_bias"] = out[1]
    ranks = {len(spec.shape) for role, spec in roles.items() if role.endswith("_kernel")}
    if ranks == {2}:
        layout: AttnLayout = "tf1"
        heads = head_dim = None
    elif ranks == {3}:
        layout = "keras"
        _, heads, head_dim = roles["query_kernel"].shape
    else:
        return None
    if not _consistent(roles, layout):
        return None
    return AttentionBlock(
        layout,
        parent,
        roles,
        heads,
        head_dim,
        first_order(roles.values()),
        sort_key=natural_key(parent),
        counted=all_counted(roles.values()),
    )


def _consistent(roles: Mapping[str, VarSpec], layout: AttnLayout) -> bool:
    """Shapes agree within the block: q and k widths, biases, value width -> output rows."""
    flat = {role: _flat(role, spec.shape) for role, spec in roles.items()}
    q, k, v = flat["query_kernel"], flat["key_kernel"], flat["value_kernel"]
    if q[1] != k[1]:
        return False
    if layout == "keras":
        qs, ks, vs = (roles[f"{p}_kernel"].shape for p in ("query", "key", "value"))
        if qs[1:] != ks[1:] or vs[1] != qs[1]:
            return False
        for p in ("query", "key", "value"):
            bias = roles.get(f"{p}_bias")
            if bias is not None and bias.shape != roles[f"{p}_kernel"].shape[1:]:
                return False
        out = roles.get("output_kernel")
        if out is not None and out.shape[:2] != vs[1:]:
            return False
    for p in ("query", "key", "value", "output"):
        flat_bias, flat_kernel = flat.get(f"{p}_bias"), flat.get(f"{p}_kernel")
        if flat_bias is not None and flat_kernel is not None and flat_bias != (flat_kernel[-1],):
            return False
    return "output_kernel" not in flat or flat["output_kernel"][0] == v[1]


def propose_attention(
    source: Sequence[VarSpec], target: Sequence[VarSpec]
) -> tuple[list[Match], list[Unmatched]]:
    """Matches (pure reshapes) between attention blocks of opposite layouts, and refusals.

    >>> src = [VarSpec(f"attention/self/{p}/kernel", (16, 16)) for p in ("query", "key", "value")]
    >>> dst = [VarSpec(f"mha/{p}/kernel", (16, 2, 8)) for p in ("query", "key", "value")]
    >>> matches, refused = propose_attention(src, dst)
    >>> [(m.target, m.sources[0], m.steps[0].shape) for m in matches][0]
    ('mha/query/kernel', 'attention/self/query/kernel', (16, 2, 8))
    >>> matches[0].reason.split(";")[0]
    'converter attention: query kernel (16, 16) -> (16, 2, 8) splits 16 columns into 2 heads x 8'
    """
    src_blocks, dst_blocks = detect_attention(source), detect_attention(target)
    matches: list[Match] = []
    refused: list[Unmatched] = []
    for layout in ("tf1", "keras"):
        src = _sorted([b for b in src_blocks if b.layout == layout])
        dst = _sorted([b for b in dst_blocks if b.layout != layout])
        if not src or not dst:
            continue
        for s, t, how in _pair(src, dst, refused):
            matches.extend(_convert(s, t, how))
    return matches, refused


def _sorted(blocks: list[AttentionBlock]) -> list[AttentionBlock]:
    if blocks and all(b.order is not None for b in blocks):
        return sorted(blocks, key=lambda b: (b.order, b.sort_key))
    return sorted(blocks, key=lambda b: b.sort_key)


def _order_known(blocks: list[AttentionBlock]) -> bool:
    """Creation orders, or scopes that differ only by number (``layer_0``) where numbers are
    creation order: never alphabetical, never by Keras 3's numbers off TensorFlow."""
    return order_known(
        [b.order for b in blocks], [b.scope for b in blocks], all(b.counted for b in blocks)
    )


def _pair(
    src: list[AttentionBlock], dst: list[AttentionBlock], refused: list[Unmatched]
) -> list[tuple[AttentionBlock, AttentionBlock, str]]:
    n = len(dst)
    if (
        len(src) == n
        and _order_known(src)
        and _order_known(dst)
        and all(s.signature == t.signature for s, t in zip(src, dst, strict=True))
    ):
        return [
            (s, t, f"by order (block {i + 1} of {n})")
            for i, (s, t) in enumerate(zip(src, dst, strict=True))
        ]
    by_sig: dict[object, list[AttentionBlock]] = defaultdict(list)
    rivals: dict[object, list[AttentionBlock]] = defaultdict(list)
    for s in src:
        by_sig[s.signature].append(s)
    for t in dst:
        rivals[t.signature].append(t)
    pairs = []
    for t in dst:
        cands, others = by_sig.get(t.signature, []), rivals[t.signature]
        if len(cands) == 1 and len(others) == 1:
            pairs.append((cands[0], t, "by shape (the only block with these shapes)"))
        elif cands:
            refused.extend(_refuse(t, cands, others))
    return pairs


def _refuse(
    target: AttentionBlock, cands: list[AttentionBlock], rivals: list[AttentionBlock]
) -> list[Unmatched]:
    if len(cands) > 1:
        why = f"{len(cands)} source attention blocks fit {target.label} equally well: "
        why += _scopes(cands)
    else:
        why = f"source attention block {cands[0].scope!r} fits {len(rivals)} target blocks "
        why += f"equally well: {_scopes(rivals)}"
    uncounted = sorted({b.scope for b in (*cands, *rivals) if not b.counted and b.order is None})
    if uncounted:
        names = ", ".join(repr(u) for u in uncounted[:_SHOWN])
        more = f" and {len(uncounted) - _SHOWN} more" if len(uncounted) > _SHOWN else ""
        why += (
            f"; the numbers in {names}{more} are not creation order (Keras 3 off TensorFlow numbers "
            "layers when they are made, not when a call builds them, and recorded no order for "
            "this model)"
        )
    why += (
        "; their creation order does not settle it. Name the pairing with rules: a 'rename' "
        "whose pattern carries the layer number (see the 'bert' preset), or 'map' entries."
    )
    shown = cands[:_SHOWN]
    out = []
    for role, spec in target.roles.items():
        cand = tuple(Candidate(c.roles[role].name, c.roles[role].shape, 1.0) for c in shown)
        out.append(Unmatched(spec.name, spec.shape, why, cand))
    return out


def _scopes(blocks: Sequence[AttentionBlock]) -> str:
    text = ", ".join(repr(b.scope) for b in blocks[:_SHOWN])
    more = len(blocks) - _SHOWN
    return f"{text} and {more} more" if more > 0 else text


def _convert(src: AttentionBlock, dst: AttentionBlock, how: str) -> list[Match]:
    keras = src if src.layout == "keras" else dst
    out = []
    for role, tgt in dst.roles.items():
        spec = src.roles[role]
        note = _heads_note(role, spec.shape, tgt.shape, keras)
        reason = (
            f"converter attention: {role.replace('_', ' ')} {fmt_shape(spec.shape)} -> "
            f"{fmt_shape(tgt.shape)} {note}; {src.scope} -> {dst.scope}, {how}"
        )
        steps = (Reshape(shape=tgt.shape),) if spec.shape != tgt.shape else ()
        out.append(make_match(tgt, [spec], steps, reason))
    return out


def _heads_note(
    role: str, src: tuple[int, ...], tgt: tuple[int, ...], keras: AttentionBlock
) -> str:
    """``'splits 16 columns into 2 heads x 8'`` (TF1 -> Keras) or ``'joins ...'`` (back)."""
    if role == "output_bias":
        return "(unchanged: one bias per output unit)"
    shape = keras.roles[role].shape
    heads, per_head = shape[:2] if role == "output_kernel" else shape[-2:]
    axis = "rows" if role == "output_kernel" else "units" if role.endswith("_bias") else "columns"
    split, total = f"{heads} heads x {per_head}", f"{heads * per_head} {axis}"
    return f"splits {total} into {split}" if len(tgt) > len(src) else f"joins {split} into {total}"
