"""Why a target stayed unmatched, its closest source keys, and the NotFoundError text."""

from __future__ import annotations

import bisect
import difflib
import heapq
import re
from collections import Counter, defaultdict

from ckptbridge._text import fmt_shape
from ckptbridge.engine._names import layout_compatible, normalise, scope_of, strip_key
from ckptbridge.engine._plan import Candidate, MappingPlan, Unmatched
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine._state import State, same_dtype
from ckptbridge.engine._table import aux_counts

MAX_SCORED = 20  # unmatched targets whose candidates are name-scored (the rest: shape only)
MAX_LAYERS = 3  # layers a NotFoundError details before "... and N more" (the plan lists all)
MAX_PER_LAYER = 3  # variables of one layer named in a message
MAX_DETAIL = 1000  # characters of per-layer detail in a message (at least one layer is shown)
MAX_SCOPES = 5  # unused scopes listed in a message
MAX_PAIRS = 3  # 'map:' pairs suggested in a message
MAX_POOL = 300  # at most this many entries are name-scored per target
_TOKEN_RE = re.compile(r"[A-Za-z]+")
_TIED = re.compile(r"ambiguous: \d+ unused entries ")
_UNDECIDED = re.compile(r"ambiguous: |no unused entry |'[^']*' has shape ")  # _why's, no step's


def explain_missing(st: State) -> list[Unmatched]:
    """Unmatched entries (in target order) for every target no step could feed."""
    if not st.failed and not st.free_targets():
        return []
    free = st.free_sources()
    pool = free or [s for s in st.sources.values() if s.name not in st.aux]  # closest, if all used
    by_shape: dict[tuple[int, ...], list[VarSpec]] = defaultdict(list)
    by_size: dict[int, list[VarSpec]] = defaultdict(list)
    for s in free:  # only unused entries can explain (or fix) a missing variable
        by_shape[s.shape].append(s)
        by_size[s.size].append(s)
    free_tgts = st.free_targets()
    tgt_by_shape: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for t in free_tgts:
        tgt_by_shape[t.shape].append(t.name)
    tokens: dict[str, list[VarSpec]] = defaultdict(list)
    by_size_sorted = sorted(pool, key=lambda s: s.size)
    if len(pool) > MAX_POOL:
        for s in pool:
            for tok in set(_TOKEN_RE.findall(normalise(s.name))):
                tokens[tok].append(s)
    out: list[Unmatched] = []
    scored = 0
    for name in st.targets:
        if name in st.failed:
            u = st.failed[name]
        elif name in st.free_tgt and name not in st.target_aux:
            t = st.targets[name]
            u = Unmatched(name, t.shape, _why(t, by_shape, by_size, tgt_by_shape))
        else:
            continue
        t = st.targets[name]
        if scored < MAX_SCORED:
            cands = _candidates(t, _shortlist(t, pool, by_size_sorted, tokens))
        else:  # beyond what a message shows: same-shape entries only, no name scoring
            cands = tuple(Candidate(s.name, s.shape, 0.3333) for s in by_shape.get(t.shape, [])[:3])
        scored += 1
        out.append(Unmatched(u.target, u.shape, u.why, cands))
    return out


def _shortlist(
    t: VarSpec, pool: list[VarSpec], by_size: list[VarSpec], tokens: dict[str, list[VarSpec]]
) -> list[VarSpec]:
    """Entries worth name-scoring: all of a small pool, else the nearest in element count and
    those sharing a name token."""
    if len(pool) <= MAX_POOL:
        return pool
    at = bisect.bisect_left(by_size, t.size, key=lambda s: s.size)
    near = by_size[max(0, at - MAX_POOL // 4) : at + MAX_POOL // 4]
    picked: dict[str, VarSpec] = {s.name: s for s in near}
    for tok in sorted(
        set(_TOKEN_RE.findall(normalise(t.name))), key=lambda k: len(tokens.get(k, ()))
    ):
        for s in tokens.get(tok, ())[:MAX_POOL]:
            if len(picked) >= MAX_POOL:
                return list(picked.values())
            picked.setdefault(s.name, s)
    return list(picked.values())


def _names(specs: list[VarSpec], limit: int = 4) -> str:
    shown = ", ".join(repr(s.name) for s in specs[:limit])
    return shown + (f" and {len(specs) - limit} more" if len(specs) > limit else "")


def _why(
    t: VarSpec,
    by_shape: dict[tuple[int, ...], list[VarSpec]],
    by_size: dict[int, list[VarSpec]],
    tgt_by_shape: dict[tuple[int, ...], list[str]],
) -> str:
    same = by_shape.get(t.shape, [])
    shape = fmt_shape(t.shape)
    role = _role(t.name)  # entries of the variable's own role first: the example map is one
    fitting = sorted(
        (s for s in same if same_dtype(s.dtype, t.dtype)), key=lambda s: _role(s.name) != role
    )
    if len(fitting) >= 2:
        return (f"ambiguous: {len(fitting)} unused entries have shape {shape} ({_names(fitting)}) and "
                f"neither names nor creation order decide between them; add a 'map:' rule, e.g. "
                f"map: {{{fitting[0].name}: {t.name}}}")  # fmt: skip
    if len(fitting) == 1:
        rivals = tgt_by_shape.get(t.shape, [])
        if len(rivals) >= 2:
            return (f"ambiguous: {fitting[0].name!r} {shape} fits {len(rivals)} targets "
                    f"({', '.join(repr(r) for r in rivals[:4])}); add a 'map:' rule to choose")  # fmt: skip
        return (f"{fitting[0].name!r} has shape {shape} but its role differs (e.g. bias vs kernel); "
                f"map it explicitly if it is right: map: {{{fitting[0].name}: {t.name}}}")  # fmt: skip
    if same:
        return (f"{same[0].name!r} has shape {shape} but dtype {same[0].dtype}, expected {t.dtype}; "
                "a rule with a 'cast' step can convert it")  # fmt: skip
    layout = [s for s in by_size.get(t.size, []) if layout_compatible(s.shape, t.shape)]
    if len(layout) >= 2:
        return (f"ambiguous: {len(layout)} unused entries could be reshaped to {shape} "
                f"({_names(layout)}); add a 'map:' rule")  # fmt: skip
    return f"no unused entry has shape {shape} or the same number of elements"


def _candidates(t: VarSpec, pool: list[VarSpec]) -> tuple[Candidate, ...]:
    target = normalise(t.name)
    matcher = difflib.SequenceMatcher(None, autojunk=False)
    matcher.set_seq2(target)
    best: list[tuple[float, str, VarSpec]] = []
    for s in pool:
        bonus = 0.5 if s.shape == t.shape else (0.25 if s.size == t.size else 0.0)
        matcher.set_seq1(normalise(s.name))
        if len(best) == 3 and (matcher.real_quick_ratio() + bonus) / 1.5 <= best[0][0]:
            continue
        score = (matcher.ratio() + bonus) / 1.5
        item = (score, s.name, s)
        if len(best) < 3:
            heapq.heappush(best, item)
        elif item > best[0]:
            heapq.heapreplace(best, item)
    best.sort(key=lambda x: (-x[0], x[1]))
    return tuple(Candidate(s.name, s.shape, round(score, 4)) for score, _, s in best)


def _quote(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_./\-]+", key) else '"' + key.replace('"', '\\"') + '"'


def format_not_found(plan: MappingPlan) -> str:
    """The ``ckptbridge.NotFoundError`` text, bounded whatever the model's size: unmatched targets
    grouped per layer, the first layers told with their reason (a layer whose variables differ
    in size from the checkpoint's says so once: "128 units, the model's 64"; a layer's other
    variables missing for the same reason are listed on one line), closest source keys of the
    same role and a related shape, then "... and N more" pointing to ``ckptbridge.plan`` (which
    lists every variable); the unused source keys by scope and only fixes that can work (a rules
    snippet, or strict=False / ckptbridge.plan when the architectures differ). Never tensor values.

    >>> from ckptbridge.engine import derive, VarSpec
    >>> plan = derive([VarSpec("fc2/weights", (64, 10))], [VarSpec("a", (3,)), VarSpec("b", (4,))])
    >>> print(format_not_found(plan).splitlines()[1])
    model variable 'a' (3,) has no match in 'checkpoint'.
    """
    src, tgt = plan.source_label, plan.target_label
    lines = [f"{len(plan.missing)} {tgt} variable(s) have no match in {src!r} "
             f"({len(plan.matches)} matched)."]  # fmt: skip
    layers: dict[str, list[Unmatched]] = defaultdict(list)
    for u in plan.missing:
        layers[scope_of(strip_key(u.target))].append(u)
    shown = budget = 0
    architecture = any(_cause(u.why) for u in plan.missing)
    for layer, items in layers.items():
        if shown >= MAX_LAYERS:
            break
        block = _layer_block(layer, items, src, tgt)
        if shown and budget + len(block) > MAX_DETAIL:
            break
        shown += 1
        budget += len(block)
        lines.append(block)
    if shown < len(layers):
        rest = sum(len(items) for items in list(layers.values())[shown:])
        lines.append(f"... and {rest} more unmatched {tgt} variable(s) in {len(layers) - shown} "
                     "more layer(s) (ckptbridge.plan(checkpoint, model) lists them all).")  # fmt: skip
    if architecture:
        lines.append(
            "Fix: the architectures differ; build the model as the checkpoint's, or restore the "
            "variables that do match with strict=False. ckptbridge.plan(checkpoint, model) lists "
            "every match and why."
        )
    lines += _unused_by_scope(plan)
    if plan.auxiliary:
        summary = aux_counts(plan.auxiliary)
        lines.append(f"Auxiliary entries in {src!r} (not weights, not needed): {summary}.")
    if not architecture and any(_UNDECIDED.match(u.why) for u in plan.missing):
        lines += _snippet(plan)  # a variable a step refused carries its own fix in its reason
    return "\n".join(lines)


def _layer_block(layer: str, items: list[Unmatched], src: str, tgt: str) -> str:
    """One layer's lines: its shared architecture cause or each variable with its reason; the
    variables missing for a reason already told are named on one line."""
    causes = {_cause(u.why) for u in items}
    shared = causes.pop() if len(causes) == 1 else None
    lines = [f"layer {layer!r} of the {tgt}: {shared}."] if shared is not None else []
    told: set[str] = set()
    same: list[Unmatched] = []
    for u in items:
        kind = _kind(u.why) if shared is None else u.target
        if kind in told if shared is None else len(told) >= MAX_PER_LAYER:
            same.append(u)
            continue
        told.add(kind)
        close = [c for c in u.candidates if _same_role(c, u)]
        closest = ", ".join(f"{c.name!r} {fmt_shape(c.shape)}" for c in close)
        tail = f" Closest: {closest}." if closest else ""
        if shared is not None:  # the layer's line said why; no entry of that size exists
            lines.append(f"  {u.target!r} {fmt_shape(u.shape)}.{tail}")
            continue
        lines.append(
            f"{tgt} variable {u.target!r} {fmt_shape(u.shape)} has no match in {src!r}.{tail}"
        )
        lines.append(f"    why: {u.why}")
    if same:
        names = ", ".join(f"{u.target!r} {fmt_shape(u.shape)}" for u in same[:MAX_PER_LAYER])
        more = f" and {len(same) - MAX_PER_LAYER} more" if len(same) > MAX_PER_LAYER else ""
        lines.append(f"  also {names}{more}: the same reason.")
    return "\n".join(lines)


def _kind(why: str) -> str:
    """A reason without its names, shapes and counts: variables of one layer that share it are
    missing for the same reason (``ambiguous: 16 unused entries have shape (64,) ...``)."""
    return re.sub(r"'[^']*'|\([^()]*\)|\{[^{}]*\}|\d+", "", why)


_ARCHITECTURE = re.compile(
    r"(the checkpoint's layer '[^']*' [^(]*?) \(.*: the architectures differ\..*"
)
_ROLES = {"bias": "bias", "biases": "bias", "beta": "bias", "gamma": "scale", "scale": "scale"}


def _cause(why: str) -> str | None:
    """The layer-level cause of a shape mismatch (``engine._mismatch``), shared by its variables."""
    m = _ARCHITECTURE.fullmatch(why)
    return m.group(1) if m else None


def _role(name: str) -> str:
    leaf = normalise(name).rsplit("/", 1)[-1].lstrip("_")
    return _ROLES.get(leaf, leaf if leaf.startswith("moving_") else "weight")


def _same_role(c: Candidate, u: Unmatched) -> bool:
    """A candidate worth showing: the same role (weight, bias, scale, moving statistic) and a
    shape that could be the same layer's (same rank, sharing a dimension or the element count)."""
    if _role(c.name) != _role(u.target):
        return False
    if len(c.shape) != len(u.shape) or not c.shape:
        return layout_compatible(c.shape, u.shape)
    return bool(set(c.shape) & set(u.shape))


def _unused_by_scope(plan: MappingPlan) -> list[str]:
    if not plan.unused:
        return [f"Every non-auxiliary entry of {plan.source_label!r} is already used."]
    scopes = Counter(scope_of(strip_key(n)) for n in plan.unused)
    lines = [f"Unused entries in {plan.source_label!r} ({len(plan.unused)}), by scope:"]
    for scope, n in sorted(scopes.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_SCOPES]:
        label = f"{scope}/" if scope else "(top level)"
        lines.append(f"  {label} ({n} {'entry' if n == 1 else 'entries'})")
    if len(scopes) > MAX_SCOPES:
        lines.append(f"  ... and {len(scopes) - MAX_SCOPES} more scopes")
    return lines


def _snippet(plan: MappingPlan) -> list[str]:
    pairs: list[tuple[str, str]] = []
    taken: set[str] = set()
    unused = set(plan.unused)  # an entry another variable already uses is no fix
    for u in plan.missing:
        if _TIED.match(u.why) or not _UNDECIDED.match(u.why):  # a guess among equals, or a
            continue  # variable a step refused (an LSTM cell with peepholes): no pair is a fix
        for c in u.candidates[:1]:
            if c.name in unused and c.name not in taken and layout_compatible(c.shape, u.shape):
                taken.add(c.name)
                pairs.append((c.name, u.target))
    if not pairs:
        return ["Fix: add a 'map: {checkpoint_key: variable}' rule for each variable above, or "
                "'ignore_target:' for variables that should keep their initial values."]  # fmt: skip
    lines = ["Fix (check each pair), add to the rules:", "map:"]
    lines += [f"  {_quote(s)}: {_quote(t)}" for s, t in pairs[:MAX_PAIRS]]
    if len(pairs) > MAX_PAIRS:
        lines.append(f"  # ... and {len(pairs) - MAX_PAIRS} more")
    return lines
