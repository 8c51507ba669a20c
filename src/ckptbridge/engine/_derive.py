"""``derive``: rules first, then layer converters, names, structure; precision before recall."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ckptbridge._errors import CkptBridgeError, MappingError, RulesError
from ckptbridge._text import fmt_shape
from ckptbridge.engine._apply_rules import (
    apply_ignores,
    apply_map,
    apply_renames,
    apply_sourced_transforms,
    resolved_map,
)
from ckptbridge.engine._aux import auxiliaries
from ckptbridge.engine._byname import match_by_name
from ckptbridge.engine._names import layout_compatible, strip_key
from ckptbridge.engine._plan import Auxiliary, MappingPlan, Match, Unmatched
from ckptbridge.engine._slots import follow_slots
from ckptbridge.engine._spec import VarSpec
from ckptbridge.engine._state import State, same_dtype
from ckptbridge.engine._structure import match_by_structure
from ckptbridge.engine.families import may_be_bert, slim_order
from ckptbridge.format._gc import collector_paused
from ckptbridge.rules._options import Options
from ckptbridge.rules._steps import Cast, Reshape, Step

if TYPE_CHECKING:
    from ckptbridge.engine.converters import Pin
    from ckptbridge.rules import KeyTransform, Rules


def derive(
    source: Sequence[VarSpec],
    target: Sequence[VarSpec],
    rules: Rules | None = None,
    *,
    source_label: str = "checkpoint",
    target_label: str = "model",
) -> MappingPlan:
    """Derive which ``source`` entries feed which ``target`` variables, and why.

    >>> from ckptbridge.engine import VarSpec
    >>> plan = derive([VarSpec("fc/weights", (4, 2)), VarSpec("fc/biases", (2,))],
    ...               [VarSpec("dense/kernel", (4, 2)), VarSpec("dense/bias", (2,))])
    >>> [(m.target, m.source) for m in plan.matches]
    [('dense/kernel', 'fc/weights'), ('dense/bias', 'fc/biases')]
    """
    with collector_paused():  # millions of small tuples: GC passes would make this superlinear
        return _derive(source, target, rules, (source_label, target_label))


def _derive(
    source: Sequence[VarSpec],
    target: Sequence[VarSpec],
    rules: Rules | None,
    labels: tuple[str, str],
) -> MappingPlan:
    # No rules (a plain plan, convert or restore): nothing to apply, and Pydantic never loads.
    given_presets = rules.presets if rules is not None else ()
    if rules is not None and rules.presets:
        from ckptbridge.rules._load import expand_presets  # reads the shipped preset files

        rules = expand_presets(rules)
    options = rules.options if rules is not None else Options()
    st = State.build(source, target, labels)
    pins: list[Pin] = []
    if rules is not None:
        apply_ignores(st, rules)
        pins = _cell_pins(st, rules)
        apply_map(st, rules, labels, {p.source: p.target for p in pins})
        apply_sourced_transforms(st, rules, labels)
    _classify(st)
    if rules is not None:
        apply_renames(st, rules)
    if options.derive:
        held = _bert_family(st, given_presets)
        _recognise_order(st)
        _run_converters(st, options, pins)
        match_by_name(st, include_aux=options.optimizer_state)
        match_by_structure(st)
        st.release(held)
    if options.optimizer_state:
        follow_slots(st)
    if options.use_ema:
        _use_ema(st)
    _apply_transforms(st, rules.transforms if rules is not None else ())
    return _assemble(st, labels)


def _classify(st: State) -> None:
    st.aux.update(auxiliaries([st.sources[n] for n in st.free_src], st.sources))
    st.target_aux.update(auxiliaries([st.targets[n] for n in st.free_tgt], st.targets))
    st.changed()


def _bert_family(st: State, given_presets: tuple[str, ...]) -> list[str]:
    """Google's BERT, ALBERT or ELECTRA layout into keras-hub's backbone: the family's preset
    renames decide by name (unless the rules named that preset already). The checkpoint's heads
    and optimizer slots are held out of derivation (returned, to end ``unused``); targets the
    family's checkpoints never hold fail with the reason."""
    if not may_be_bert(st.sources):  # bert_family would be None: not imported
        return []
    from ckptbridge.engine.families import bert_family

    targets = [n for t in st.targets.values() for n in (t.name, *t.aliases)]
    family = bert_family(st.sources, targets)
    if family is None:
        return []
    from ckptbridge.rules import Rules  # the family's shipped preset: Pydantic rules
    from ckptbridge.rules._load import expand_presets  # reads the shipped preset file

    st.family = family.name
    if family.preset not in given_presets:
        preset = expand_presets(Rules(presets=(family.preset,)))
        notes = len(st.unused_rules)
        apply_renames(
            st, Rules(rename=preset.rename), label=f"{family.name}: preset:{family.preset}"
        )
        del st.unused_rules[notes:]  # the preset was not asked for: its idle rules are no news
    heads = re.compile(family.heads)
    held = [s.name for s in st.free_sources() if heads.fullmatch(strip_key(s.name))]
    for name in held:
        del st.free_src[name]
    st.changed()
    for pattern, why in family.never_in_checkpoint:
        rx = re.compile(pattern)
        for t in st.free_targets():
            if any(rx.fullmatch(strip_key(n)) for n in (t.name, *t.aliases)):
                st.fail(t.name, why)
    return held


def _recognise_order(st: State) -> None:
    """A checkpoint without creation order whose names are a known family's (TF-slim's ResNet,
    Inception) gets the order those names encode; the plan names the family."""
    free = st.free_sources()
    if st.family or not free or all(s.order is not None for s in free):
        return
    order = slim_order(s.name for s in free)
    if order is None:
        return
    for name, rank in order.ranks.items():
        st.sources[name] = replace(st.sources[name], order=rank)
    st.changed()
    st.family = order.family


def _cell_pins(st: State, rules: Rules) -> list[Pin]:
    """``map`` pairs that name which RNN cell feeds which (``converters.cell_pins``): the layer
    converters carry them with their steps, instead of a plain copy that cannot fit."""
    if not rules.map or not rules.options.derive:
        return []
    from ckptbridge.engine.converters import cell_pins  # imports the engine's own modules

    return cell_pins(st.free_sources(), st.free_targets(), resolved_map(st, rules))


def _run_converters(st: State, options: Options, pins: Sequence[Pin] = ()) -> None:
    """Layer-converter hook: ``ckptbridge.engine.converters.propose(source, target, options)``.

    Its ``matches`` are taken as they are (several sources and steps allowed; a source may feed
    several targets); its ``unmatched`` are targets it recognised but refuses (peepholes,
    ``reset_after=True``...): they end in ``missing`` with its ``why``.
    """
    from ckptbridge.engine.converters._gate import may_propose

    srcs, tgts = st.free_sources(), st.free_targets()
    if not srcs or not tgts:
        return
    if not pins and not options.forget_bias_per_key and not may_propose(srcs, tgts):
        return  # no side holds a cell's or a block's words: propose would detect nothing
    from ckptbridge.engine.converters import propose  # imports the engine's own modules

    result = propose(srcs, tgts, options, pins)
    for m in result.matches:
        if m.target in st.free_tgt and all(s in st.sources for s in m.sources):
            st.take(m.sources, m.target, tuple(m.steps), m.reason or "layer converter")
    for u in result.unmatched:
        if u.target in st.free_tgt:
            st.fail(u.target, u.why)
    st.notes += result.notes


def _use_ema(st: State) -> None:
    """``options.use_ema``: feed every matched variable from its ``<source>/ExponentialMovingAverage``.

    What TF1's ``Saver(ema.variables_to_restore())`` does: averaged variables come from their
    shadows, the others (typically batch-norm moving statistics, which TF1 code rarely averages)
    keep their raw value; such a match says so in its reason (explicit ``map``/``transforms`` pairs
    keep theirs) and one plan note lists them all. A checkpoint with no shadow for
    any matched variable is a :class:`RulesError`: the option cannot do what it asks. Raw weights
    replaced by their shadows are left over (``unused``) unless another match still reads them.
    """
    shadows = {a.of: a.name for a in st.aux.values() if a.kind == "ema_shadow" and a.of}
    matches = [  # in model order; optimizer state is never averaged
        st.matches[n]
        for n in st.targets
        if n in st.matches and not all(s in st.aux for s in st.matches[n].sources)
    ]
    if not matches:
        return
    if not any(s in shadows for m in matches for s in m.sources):
        raise RulesError(_no_shadow_message(matches, len(shadows)))
    replaced: dict[str, None] = {}  # ordered: sources return to the free list in a defined order
    raw: list[str] = []
    for m in matches:
        new = tuple(shadows.get(s, s) for s in m.sources)
        kept = [s for s, n in zip(m.sources, new, strict=True) if s == n]
        if len(kept) == len(new):
            raw.append(m.target)
            if not m.reason.startswith(("rule map[", "rule transforms[")):  # explicit pairs stay
                st.matches[m.target] = replace(m, reason=f"{m.reason}{_RAW_KEPT}")
            continue
        replaced.update(dict.fromkeys(s for s in m.sources if s not in kept))
        note = f" ({', '.join(kept)} kept raw: no shadow)" if kept else ""
        st.take(new, m.target, m.steps, f"{m.reason} + EMA shadow (options.use_ema){note}")
    still_read = {s for m in st.matches.values() for s in m.sources}
    st.release(s for s in replaced if s not in still_read)
    if raw:
        shown = ", ".join(raw[:5]) + (f" and {len(raw) - 5} more" if len(raw) > 5 else "")
        st.unused_rules.append(f"options.use_ema: {len(raw)} of {len(matches)} matched variables "
                               f"have no EMA shadow and keep their raw weights: {shown}")  # fmt: skip


_RAW_KEPT = " + raw weight: no EMA shadow in the checkpoint (as TF1's variables_to_restore())"


def _no_shadow_message(matches: list[Match], n_shadows: int) -> str:
    example = matches[0].source
    others = f"; its {n_shadows} shadow(s) belong to no matched variable" if n_shadows else ""
    return (
        f"options.use_ema is true, but the checkpoint has no ExponentialMovingAverage shadow for "
        f"any of the {len(matches)} matched variables (e.g. no {example + '/ExponentialMovingAverage'!r} "
        f"beside {example!r}){others}. Expected the checkpoint written by a training job that "
        "applied tf.train.ExponentialMovingAverage. Fix: remove options.use_ema to restore the "
        "raw weights, or point at the checkpoint that holds the shadows."
    )


def _apply_transforms(st: State, transforms: Sequence[KeyTransform]) -> None:
    """Give every match its ``transforms`` steps, then check that the result has the target shape."""
    from ckptbridge.transforms import infer_shape

    compiled = [(i, re.compile(kt.target), kt) for i, kt in enumerate(transforms)]
    used: set[int] = set()
    reads: Counter[str] | None = None  # how many matches read each source, once one is released
    targets, sources = st.targets, st.sources
    for target, m in list(st.matches.items()):
        steps, reason = m.steps, m.reason
        for i, rx, kt in compiled:
            if rx.fullmatch(target):
                used.add(i)
                if kt.sources is None:
                    steps, reason = kt.steps, f"{m.reason} + transforms[{i}]"
                break
        tgt = targets[target]
        tgt_shape = tgt.shape
        if not steps and len(m.source_shapes) == 1:
            shape = tuple(m.source_shapes[0])  # infer_shape's answer: no step to check
        else:
            try:
                shape = infer_shape(m.source_shapes, steps)
            except CkptBridgeError as exc:
                st.fail(target, f"{reason}: the steps do not fit the source shape(s): {exc}")
                reads = _release(st, m, reads)
                continue
        if shape != tgt_shape:
            if len(m.sources) == 1 and layout_compatible(shape, tgt_shape):
                steps = (*steps, Reshape(shape=tgt_shape))
            else:
                shapes = ", ".join(fmt_shape(s) for s in m.source_shapes)
                st.fail(target, f"{reason} gives shape {fmt_shape(shape)} (from {shapes}), but "
                        f"{target!r} has shape {fmt_shape(tgt_shape)}; fix the rule or add "
                        "transforms steps")  # fmt: skip
                reads = _release(st, m, reads)
                continue
        out_dtype = sources[m.sources[0]].dtype
        if steps:
            out_dtype = _result_dtype(out_dtype, steps)
        if out_dtype != tgt.dtype and not same_dtype(out_dtype, tgt.dtype):
            st.fail(target, _dtype_misfit(reason, target, out_dtype, tgt.dtype))
            reads = _release(st, m, reads)
            continue
        if steps != m.steps or reason != m.reason:
            st.matches[target] = replace(m, steps=tuple(steps), reason=reason)
    for i, kt in enumerate(transforms):
        if i not in used and kt.sources is None:
            st.unused_rules.append(f"transforms[{i}] ({kt.target!r}) matched no target")


def _result_dtype(source_dtype: str, steps: Sequence[Step]) -> str:
    """The dtype a source has after ``steps``: the last cast's, else its own."""
    casts = [step.dtype for step in steps if isinstance(step, Cast)]
    return casts[-1] if casts else source_dtype


def _dtype_misfit(reason: str, target: str, got: str, expected: str) -> str:
    return (f"{reason} gives dtype {got}, but {target!r} has dtype {expected}; add a cast step: "
            f"transforms: [{{target: '{target}', steps: [{{op: cast, dtype: {expected}}}]}}]")  # fmt: skip


def _release(st: State, m: Match, reads: Counter[str] | None) -> Counter[str]:
    """Drop a failed match; its sources no other match reads are free again. ``reads`` (counted
    on the first release, then kept up to date) saves a scan of every match per failure."""
    del st.matches[m.target]
    if reads is None:
        reads = Counter(s for other in st.matches.values() for s in other.sources)
    else:
        reads.subtract(m.sources)
    st.release(s for s in m.sources if reads[s] <= 0)
    return reads


def _assemble(st: State, labels: tuple[str, str]) -> MappingPlan:
    used = {s for m in st.matches.values() for s in m.sources}
    missing: list[Unmatched] = []
    if st.failed or st.free_targets():  # explain_missing's own test: nothing to explain
        from ckptbridge.engine._diagnose import explain_missing

        missing = explain_missing(st)
    aux: list[Auxiliary] = [a for n, a in st.aux.items() if n not in used]
    matches = [st.matches[n] for n in st.targets if n in st.matches]
    if len({m.target for m in matches}) != len(matches):  # pragma: no cover - internal invariant
        raise MappingError("internal error: a target was matched twice; please report this")
    return MappingPlan(
        matches=matches,
        missing=missing,
        unused=[n for n in st.sources if n in st.free_src and n not in st.aux and n not in used],
        auxiliary=aux,
        ignored=st.ignored,
        source_label=labels[0],
        target_label=labels[1],
        target_auxiliary=[a for n, a in st.target_aux.items() if n not in st.matches],
        ignored_targets=st.ignored_targets,
        unused_rules=st.unused_rules,
        family=st.family,
        notes=st.notes,
    )
