"""Mutable bookkeeping shared by the derivation steps: what is still free, what is decided."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import filterfalse

from ckptbridge._errors import MappingError
from ckptbridge._text import fmt_shape
from ckptbridge.engine._names import layout_compatible
from ckptbridge.engine._plan import Auxiliary, Match, Unmatched
from ckptbridge.engine._spec import VarSpec
from ckptbridge.rules._steps import Reshape, Step


def same_dtype(a: str, b: str) -> bool:
    """Dtype names compare case-insensitively, ignoring TF's ``_ref`` suffix."""
    return a == b or a.lower().removesuffix("_ref") == b.lower().removesuffix("_ref")


def fit(src: VarSpec, tgt: VarSpec) -> tuple[Step, ...] | None:
    """Steps that carry ``src`` onto ``tgt`` unchanged in value: () for equal shapes, a Reshape for a
    layout difference, None when the shapes (or dtypes) do not fit."""
    if not same_dtype(src.dtype, tgt.dtype):
        return None
    if src.shape == tgt.shape:
        return ()
    if layout_compatible(src.shape, tgt.shape):
        return (Reshape(shape=tgt.shape),)
    return None


def with_reshape_note(reason: str, steps: tuple[Step, ...], src: VarSpec, tgt: VarSpec) -> str:
    """Append the layout reshape to a reason when one was needed."""
    if steps:
        return f"{reason} + layout reshape {fmt_shape(src.shape)}->{fmt_shape(tgt.shape)}"
    return reason


class State:
    """Both sides, what is still free, and every decision made so far.

    A plain class, not a dataclass: one per derivation, never compared nor printed, and a
    dataclass costs every command ~1 ms of start-up to create."""

    def __init__(
        self,
        sources: dict[str, VarSpec],
        targets: dict[str, VarSpec],
        free_src: dict[str, None],
        free_tgt: dict[str, None],
    ) -> None:
        self.sources = sources
        self.targets = targets
        self.free_src = free_src
        self.free_tgt = free_tgt
        self.matches: dict[str, Match] = {}
        self.failed: dict[str, Unmatched] = {}
        self.aux: dict[str, Auxiliary] = {}
        self.target_aux: dict[str, Auxiliary] = {}
        self.ignored: list[str] = []
        self.ignored_targets: list[str] = []
        self.unused_rules: list[str] = []
        self.family: str | None = None  # the model family recognised by its names (engine.families)
        self.notes: list[str] = []
        # free non-auxiliary specs as last listed, with the stamp they were listed at (see _stamp)
        self._free_cache: dict[bool, tuple[tuple[int, int, int], list[VarSpec]]] = {}
        self._version = 0

    @classmethod
    def build(
        cls, source: Sequence[VarSpec], target: Sequence[VarSpec], labels: tuple[str, str]
    ) -> State:
        return cls(_index(source, labels[0]), _index(target, labels[1]),
                   dict.fromkeys(s.name for s in source),
                   dict.fromkeys(t.name for t in target))  # fmt: skip

    def free_sources(self, *, aux: bool = False) -> list[VarSpec]:
        """Free source specs, in input order (auxiliary ones only with ``aux=True``).

        The non-auxiliary list is kept between calls while nothing changed (a new list each call:
        callers may keep or change it).
        """
        if aux:
            return list(map(self.sources.__getitem__, self.free_src))
        return list(self._free(True))

    def free_targets(self, *, aux: bool = False) -> list[VarSpec]:
        """Free target specs, in input order (auxiliary ones only with ``aux=True``)."""
        if aux:
            return list(map(self.targets.__getitem__, self.free_tgt))
        return list(self._free(False))

    def changed(self) -> None:
        """Say that ``free_src``/``free_tgt``, ``aux``/``target_aux`` or a spec of ``sources``/
        ``targets`` was changed directly (``take``, ``fail``, ``release`` say it themselves)."""
        self._version += 1

    def release(self, names: Iterable[str]) -> None:
        """Return sources to the free list (at the end of its order, as a dict insert does)."""
        self.free_src.update(dict.fromkeys(names))
        self._version += 1

    def _free(self, sources: bool) -> list[VarSpec]:
        free, aux, specs = (
            (self.free_src, self.aux, self.sources)
            if sources
            else (self.free_tgt, self.target_aux, self.targets)
        )
        # the lengths catch a direct change nobody announced, short of a removal and an addition
        stamp = (self._version, len(free), len(aux))
        hit = self._free_cache.get(sources)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        out = list(map(specs.__getitem__, filterfalse(aux.__contains__, free)))  # C-level
        self._free_cache[sources] = (stamp, out)
        return out

    def take(
        self, sources: Iterable[str], target: str, steps: tuple[Step, ...], reason: str
    ) -> None:
        """Record a match and mark its target (and sources) as used."""
        srcs = tuple(sources)
        tgt = self.targets[target]
        self.matches[target] = Match(
            target=target,
            sources=srcs,
            steps=steps,
            reason=reason,
            target_shape=tgt.shape,
            source_shapes=tuple(self.sources[s].shape for s in srcs),
            target_dtype=tgt.dtype,
        )
        self.free_tgt.pop(target, None)
        for s in srcs:
            self.free_src.pop(s, None)
        self._version += 1

    def fail(self, target: str, why: str) -> None:
        """Give up on ``target``: it ends in ``missing`` with ``why``; no later step may match it."""
        self.failed[target] = Unmatched(target, self.targets[target].shape, why)
        self.free_tgt.pop(target, None)
        self._version += 1

    def take_pair(self, src: VarSpec, tgt: VarSpec, steps: tuple[Step, ...], reason: str) -> None:
        """Record a one-to-one derived match (:meth:`take` of one source, inline)."""
        if steps:
            reason = with_reshape_note(reason, steps, src, tgt)
        name, target = src.name, tgt.name
        spec = self.targets[target]
        self.matches[target] = Match(
            target, (name,), steps, reason, spec.shape, (self.sources[name].shape,), spec.dtype
        )
        self.free_tgt.pop(target, None)
        self.free_src.pop(name, None)
        self._version += 1


def _index(specs: Sequence[VarSpec], label: str) -> dict[str, VarSpec]:
    out: dict[str, VarSpec] = {}
    for spec in specs:
        if spec.name in out:
            raise MappingError(
                f"{label}: the name {spec.name!r} appears twice; every entry must have a unique "
                "name (check that the reader or model listing did not repeat it)"
            )
        out[spec.name] = spec
    return out
