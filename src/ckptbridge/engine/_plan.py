"""The result of a derivation: which source feeds which target, how, and why."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, get_args

from ckptbridge._errors import MappingError
from ckptbridge.format._gc import collector_paused
from ckptbridge.rules._steps import Step, step_dict

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from ckptbridge.rules import Rules


@cache
def _steps() -> TypeAdapter[tuple[Step, ...]]:
    """The steps' validator, built when a plan is first read back from a dict (Pydantic)."""
    from pydantic import TypeAdapter

    from ckptbridge.rules._model import StepField

    return TypeAdapter(tuple[StepField, ...])


AuxKind = Literal[
    "optimizer_slot",
    "optimizer_power",
    "global_step",
    "learning_rate",
    "ema_shadow",
    "object_graph",
    "save_counter",
    "optimizer_other",
]

AUX_KINDS: tuple[str, ...] = get_args(AuxKind)


@dataclass(frozen=True)
class Match:
    """``target`` is restored from ``sources`` (usually one) passed through ``steps``.

    ``reason`` names the rule or derivation step that decided it, e.g. ``"rule map[fc2/weights]"``,
    ``"identical name"``, ``"vocabulary: weights->kernel"``, ``"creation order + shape"``.
    """

    target: str
    sources: tuple[str, ...]
    steps: tuple[Step, ...] = ()
    reason: str = ""
    target_shape: tuple[int, ...] = ()
    source_shapes: tuple[tuple[int, ...], ...] = ()
    target_dtype: str = "float32"

    @property
    def source(self) -> str:
        return self.sources[0]


@dataclass(frozen=True)
class Candidate:
    """A source key that came close to an unmatched target."""

    name: str
    shape: tuple[int, ...]
    score: float


@dataclass(frozen=True)
class Unmatched:
    """A target with no source, the closest candidates, and why none was taken."""

    target: str
    shape: tuple[int, ...]
    why: str
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True)
class Auxiliary:
    """A source entry that is not a model weight (optimizer slot, step counter, EMA shadow...).

    ``of``: the entry a slot belongs to, when known. ``slot``: the slot's name per variable when
    the side recorded it (``m``, ``_momentums``); slots of one optimizer kind share it.
    """

    name: str
    kind: AuxKind
    of: str | None = None  # the variable it belongs to, when known
    slot: str | None = None


@dataclass
class MappingPlan:
    """Everything a restore or conversion needs, and everything a user needs to check it.

    ``matches``: targets with their source(s), steps and reason. ``missing``: targets with no source.
    ``unused``: source entries nobody reads (not auxiliary, not ignored). ``auxiliary``: source
    entries that are optimizer state, counters, EMA shadows... ``target_auxiliary``: the same on the
    target side (never required). ``ignored`` / ``ignored_targets``: removed by ``ignore`` /
    ``ignore_target`` rules. ``unused_rules``: rules that decided nothing. ``family``: the model
    family recognised by the checkpoint's names (``'TF-slim ResNet v1 (resnet_v1_50)'``), if any.
    ``notes``: values the plan assumed because neither side records them (a TF1 LSTM cell's
    forget bias without a ``.meta``), and other facts a user should check.

    >>> plan = MappingPlan(matches=[Match("dense/kernel", ("fc/weights",), reason="rule map[fc/weights]")])
    >>> plan.complete
    True
    """

    matches: list[Match] = field(default_factory=list)
    missing: list[Unmatched] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    auxiliary: list[Auxiliary] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    source_label: str = "checkpoint"
    target_label: str = "model"
    target_auxiliary: list[Auxiliary] = field(default_factory=list)
    ignored_targets: list[str] = field(default_factory=list)
    unused_rules: list[str] = field(default_factory=list)
    family: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every required target has a source."""
        return not self.missing

    def match_for(self, target: str) -> Match | None:
        """The match that feeds ``target``, or None."""
        for m in self.matches:
            if m.target == target:
                return m
        return None

    def __str__(self) -> str:
        from ckptbridge.engine._table import render_plan

        return render_plan(self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, lists in plan order (``derive`` emits them in input order).

        >>> MappingPlan().to_dict()["complete"]
        True
        """
        with collector_paused():  # ~10 small objects per entry, none cyclic: GC passes were 80%
            return self._to_dict()

    def _to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "source_label": self.source_label,
            "target_label": self.target_label,
            "complete": self.complete,
            "matches": [_match_dict(m) for m in self.matches],
            "missing": [_unmatched_dict(u) for u in self.missing],
            "unused": list(self.unused),
            "auxiliary": [_aux_dict(a) for a in self.auxiliary],
            "target_auxiliary": [_aux_dict(a) for a in self.target_auxiliary],
            "ignored": list(self.ignored),
            "ignored_targets": list(self.ignored_targets),
            "unused_rules": list(self.unused_rules),
            "family": self.family,
            **({"notes": list(self.notes)} if self.notes else {}),  # only when there are any
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The plan as JSON text (see :meth:`to_dict`).

        ``indent=None`` gives ``json.dumps(plan.to_dict())``'s text exactly, written without the
        dict of every match and auxiliary entry (what makes 12 MB plans quick to print).
        """
        if indent is not None:
            return json.dumps(self.to_dict(), indent=indent, sort_keys=False)
        with collector_paused():  # only acyclic strings and lists are made
            return _compact_json(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MappingPlan:
        """Rebuild a plan written by :meth:`to_dict` (``MappingPlan.from_dict(plan.to_dict()) == plan``)."""
        return cls(
            matches=[_match_from(d) for d in data.get("matches", [])],
            missing=[_unmatched_from(d) for d in data.get("missing", [])],
            unused=list(data.get("unused", [])),
            auxiliary=[_aux_from(d) for d in data.get("auxiliary", [])],
            ignored=list(data.get("ignored", [])),
            source_label=str(data.get("source_label", "checkpoint")),
            target_label=str(data.get("target_label", "model")),
            target_auxiliary=[_aux_from(d) for d in data.get("target_auxiliary", [])],
            ignored_targets=list(data.get("ignored_targets", [])),
            unused_rules=list(data.get("unused_rules", [])),
            family=data.get("family"),
            notes=list(data.get("notes", [])),
        )

    @classmethod
    def from_json(cls, text: str) -> MappingPlan:
        """Rebuild a plan from :meth:`to_json` text."""
        return cls.from_dict(json.loads(text))

    def to_rules(self) -> Rules:
        """Rules that reproduce exactly these matches when fed back to ``derive`` (nothing derived).

        Single-source matches without steps become ``map`` entries; anything with steps, several
        sources, or a source shared with another match becomes a ``transforms`` entry with
        explicit ``sources``.
        """
        from ckptbridge.rules import KeyTransform, Options, Rules  # Pydantic: only when asked

        uses: dict[str, int] = {}
        for m in self.matches:
            for s in m.sources:
                uses[s] = uses.get(s, 0) + 1
        mapping: dict[str, str] = {}
        transforms: list[KeyTransform] = []
        for m in sorted(self.matches, key=lambda m: m.target):
            if len(m.sources) == 1 and not m.steps and uses[m.source] == 1:
                mapping[m.source] = m.target
            else:
                transforms.append(
                    KeyTransform(target=re.escape(m.target), sources=m.sources, steps=m.steps)
                )
        return Rules(
            map=dict(sorted(mapping.items())),
            transforms=tuple(transforms),
            ignore=tuple(re.escape(k) for k in sorted(self.ignored)),
            ignore_target=tuple(re.escape(k) for k in sorted(self.ignored_targets)),
            options=Options(derive=False),
        )


def _match_dict(m: Match) -> dict[str, Any]:
    return {
        "target": m.target,
        "sources": list(m.sources),
        "steps": [step_dict(s) for s in m.steps],
        "reason": m.reason,
        "target_shape": list(m.target_shape),
        "source_shapes": [list(s) for s in m.source_shapes],
        "target_dtype": m.target_dtype,
    }


def _compact_json(plan: MappingPlan) -> str:
    """``json.dumps(plan.to_dict())``: each match and auxiliary entry written as the encoder
    writes its dict (same keys, order, separators and string escapes), every other value given
    to ``json.dumps`` itself."""
    dumps, text = json.dumps, _Texts()
    fields: list[tuple[str, str]] = [
        ("version", "1"),
        ("source_label", dumps(plan.source_label)),
        ("target_label", dumps(plan.target_label)),
        ("complete", dumps(plan.complete)),
        ("matches", "[" + ", ".join([_match_json(m, text) for m in plan.matches]) + "]"),
        ("missing", dumps([_unmatched_dict(u) for u in plan.missing])),
        ("unused", dumps(list(plan.unused))),
        ("auxiliary", "[" + ", ".join([_aux_json(a, text) for a in plan.auxiliary]) + "]"),
        (
            "target_auxiliary",
            "[" + ", ".join([_aux_json(a, text) for a in plan.target_auxiliary]) + "]",
        ),
        ("ignored", dumps(list(plan.ignored))),
        ("ignored_targets", dumps(list(plan.ignored_targets))),
        ("unused_rules", dumps(list(plan.unused_rules))),
        ("family", dumps(plan.family)),
    ]
    if plan.notes:
        fields.append(("notes", dumps(list(plan.notes))))
    return "{" + ", ".join([f'"{key}": {value}' for key, value in fields]) + "}"


class _Texts:
    """JSON text of the values plans repeat: strings (reasons, dtypes, kinds) by value, shapes by
    identity (sides share one tuple per distinct shape; an equal tuple is not always the same
    JSON: ``(1,) == (True,)``), each encoded once by ``json``'s own encoder."""

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}
        self.shapes: dict[int, tuple[tuple[int, ...], str]] = {}
        self.encode = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]

    def string(self, value: str) -> str:
        out = self.strings.get(value)
        if out is None:
            out = self.strings[value] = json.dumps(value)
        return out

    def shape(self, shape: tuple[int, ...]) -> str:
        hit = self.shapes.get(id(shape))
        if hit is not None and hit[0] is shape:
            return hit[1]
        out = json.dumps(list(shape))
        self.shapes[id(shape)] = (shape, out)  # holds the tuple: its id stays its own
        return out


def _match_json(m: Match, text: _Texts) -> str:
    """``json.dumps(_match_dict(m))``."""
    enc, shape = text.encode, text.shape
    sources = m.sources[0] if len(m.sources) == 1 else None
    return (
        f'{{"target": {enc(m.target)}, "sources": '
        + (f"[{enc(sources)}]" if sources is not None else json.dumps(list(m.sources)))
        + ', "steps": '
        + (json.dumps([step_dict(s) for s in m.steps]) if m.steps else "[]")
        + f', "reason": {text.string(m.reason)}, "target_shape": {shape(m.target_shape)}'
        + ', "source_shapes": ['
        + ", ".join([shape(s) for s in m.source_shapes])
        + f'], "target_dtype": {text.string(m.target_dtype)}}}'
    )


def _aux_json(a: Auxiliary, text: _Texts) -> str:
    """``json.dumps(_aux_dict(a))``."""
    enc = text.encode
    of = "null" if a.of is None else enc(a.of)
    out = f'{{"name": {enc(a.name)}, "kind": {text.string(a.kind)}, "of": {of}'
    return out + (f', "slot": {json.dumps(a.slot)}}}' if a.slot is not None else "}")


def _match_from(d: dict[str, Any]) -> Match:
    return Match(
        target=d["target"],
        sources=tuple(d["sources"]),
        steps=_steps().validate_python(d.get("steps", [])),
        reason=d.get("reason", ""),
        target_shape=tuple(d.get("target_shape", ())),
        source_shapes=tuple(tuple(s) for s in d.get("source_shapes", ())),
        target_dtype=d.get("target_dtype", "float32"),
    )


def _unmatched_dict(u: Unmatched) -> dict[str, Any]:
    return {
        "target": u.target,
        "shape": list(u.shape),
        "why": u.why,
        "candidates": [
            {"name": c.name, "shape": list(c.shape), "score": round(c.score, 4)}
            for c in u.candidates
        ],
    }


def _unmatched_from(d: dict[str, Any]) -> Unmatched:
    cands = tuple(
        Candidate(c["name"], tuple(c["shape"]), float(c["score"])) for c in d.get("candidates", [])
    )
    return Unmatched(d["target"], tuple(d["shape"]), d.get("why", ""), cands)


def _aux_dict(a: Auxiliary) -> dict[str, Any]:
    out = {"name": a.name, "kind": a.kind, "of": a.of}
    return {**out, "slot": a.slot} if a.slot is not None else out


def _aux_from(d: dict[str, Any]) -> Auxiliary:
    kind = d["kind"]
    if kind not in AUX_KINDS:
        raise MappingError(
            f"plan JSON: auxiliary entry {d['name']!r} has unknown auxiliary kind {kind!r}; expected one of {', '.join(AUX_KINDS)}"
        )
    return Auxiliary(d["name"], kind, d.get("of"), d.get("slot"))
