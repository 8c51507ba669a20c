"""The rules half of a derivation: ignore, ignore_target, map, sourced transforms, rename."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ckptbridge._errors import RulesError
from ckptbridge.engine._names import normalise, strip_key
from ckptbridge.engine._state import State

if TYPE_CHECKING:
    from ckptbridge.rules import Rules


def apply_ignores(st: State, rules: Rules) -> None:
    """Remove ``ignore``d sources and ``ignore_target``ed targets from play."""
    _drop(st, st.free_src, st.ignored, rules.ignore, "ignore", "checkpoint key")
    _drop(st, st.free_tgt, st.ignored_targets, rules.ignore_target, "ignore_target", "target name")


def _drop(
    st: State,
    free: dict[str, None],
    dropped: list[str],
    patterns: tuple[str, ...],
    rule: str,
    what: str,
) -> None:
    for i, pattern in enumerate(patterns):
        rx = re.compile(pattern)
        hits = [n for n in free if _fullmatch(rx, n)]
        for n in hits:
            free.pop(n)
            dropped.append(n)
        if not hits:
            st.unused_rules.append(f"{rule}[{i}] ({pattern!r}) matched no {what}")
    st.changed()


def resolved_map(st: State, rules: Rules) -> dict[str, str]:
    """The ``map`` pairs whose key and name both resolve: checkpoint key -> target name.

    >>> from ckptbridge.engine import VarSpec
    >>> from ckptbridge.rules import Rules
    >>> st = State.build([VarSpec("fc/weights", (3, 2), "float32")],
    ...                  [VarSpec("dense/kernel", (3, 2), "float32")], ("ckpt", "model"))
    >>> resolved_map(st, Rules(map={"fc/weights:0": "dense/kernel"}))
    {'fc/weights': 'dense/kernel'}
    """
    src_lookup, tgt_lookup = _lookup(st.sources), _lookup(st.targets)
    out: dict[str, str] = {}
    for src_key, tgt_key in rules.map.items():
        src = _resolve(src_key, src_lookup)
        tgt = _resolve(tgt_key, tgt_lookup) or _resolve_suffix(tgt_key, st)
        if src is not None and tgt is not None:
            out[src] = tgt
    return out


def apply_map(
    st: State, rules: Rules, labels: tuple[str, str], handled: Mapping[str, str] | None = None
) -> None:
    """Explicit ``map`` pairs; a key that names nothing is a RulesError with "Did you mean".

    Pairs in ``handled`` (resolved key -> name) are left to whoever handles them (the layer
    converters, for a pair that names two RNN cells).
    """
    if not rules.map:
        return
    problems: list[str] = []
    src_lookup = _lookup(st.sources)
    tgt_lookup = _lookup(st.targets)
    handled = handled or {}
    for src_key, tgt_key in rules.map.items():
        src = _resolve(src_key, src_lookup)
        tgt = _resolve(tgt_key, tgt_lookup) or _resolve_suffix(tgt_key, st)
        if src is None:
            problems.append(_unknown(f"map[{src_key}]", src_key, "key", labels[0], st.sources))
        if tgt is None:
            problems.append(_unknown(f"map[{src_key}]", tgt_key, "name", labels[1], st.targets))
        if src is not None and tgt is not None and handled.get(src) == tgt:
            continue
        if src is not None and tgt is not None:
            if src in st.ignored:  # an explicit pair is more specific than an ignore pattern
                st.ignored.remove(src)
            st.take((src,), tgt, (), f"rule map[{src_key}]")
    if problems:
        raise RulesError("\n".join(problems))


def apply_sourced_transforms(st: State, rules: Rules, labels: tuple[str, str]) -> None:
    """``transforms`` entries that name their ``sources`` feed every free target they fullmatch."""
    if all(kt.sources is None for kt in rules.transforms):
        return
    problems: list[str] = []
    src_lookup = _lookup(st.sources)
    for i, kt in enumerate(rules.transforms):
        if kt.sources is None:
            continue
        names: list[str] = []
        for key in kt.sources:
            found = _resolve(key, src_lookup)
            if found is None:
                problems.append(
                    _unknown(f"transforms[{i}].sources", key, "key", labels[0], st.sources)
                )
            else:
                names.append(found)
        if len(names) != len(kt.sources):
            continue
        rx = re.compile(kt.target)
        hits = [n for n in st.free_tgt if _fullmatch(rx, n)]
        for n in hits:
            st.take(names, n, kt.steps, f"rule transforms[{i}]")
    if problems:
        raise RulesError("\n".join(problems))


def apply_renames(st: State, rules: Rules, *, label: str = "rule") -> None:
    """Ordered renames: the first rule whose pattern fullmatches a source key decides it.

    Each match's reason is ``f"{label} rename[i]"``.
    """
    if not rules.rename:
        return
    compiled = [re.compile(r.pattern) for r in rules.rename]
    tgt_norm: dict[str, list[str]] = {}
    for t in st.free_targets(aux=True):
        for n in dict.fromkeys((t.name, *t.aliases)):  # ordered: no PYTHONHASHSEED
            tgt_norm.setdefault(normalise(n), []).append(t.name)
    proposals: dict[str, list[tuple[str, int]]] = {}
    fired: dict[int, list[tuple[str, str]]] = {}
    for s in list(st.free_src):
        for i, rx in enumerate(compiled):
            m = rx.fullmatch(s) or rx.fullmatch(strip_key(s))
            if m is None:
                continue
            new = _expand(m, rules.rename[i].replace, i)
            target = _find_target(normalise(new), tgt_norm)
            fired.setdefault(i, []).append((s, new))
            if target is not None:
                proposals.setdefault(target, []).append((s, i))
            break
    used: set[int] = set()
    for target, props in proposals.items():
        if len(props) > 1:
            srcs = ", ".join(repr(s) for s, _ in props)
            rules_used = ", ".join(sorted({f"rename[{i}]" for _, i in props}))
            st.fail(target, f"{rules_used} map several checkpoint keys ({srcs}) to it; make the "
                    f"pattern more specific or add 'map: {{{props[0][0]}: {target}}}'")  # fmt: skip
            continue
        (s, i) = props[0]
        st.take((s,), target, (), f"{label} rename[{i}]")
        used.add(i)
    for i, r in enumerate(rules.rename):
        if i in used:
            continue
        if i not in fired:
            st.unused_rules.append(f"rename[{i}] ({r.pattern!r}) matched no checkpoint key")
        else:
            s, new = fired[i][0]
            st.unused_rules.append(
                f"rename[{i}] ({r.pattern!r}) renamed {len(fired[i])} key(s) but none to a target "
                f"name (e.g. {s!r} -> {new!r})"
            )


def _expand(m: re.Match[str], replace: str, i: int) -> str:
    try:
        return m.expand(replace)
    except (re.error, IndexError) as exc:
        raise RulesError(
            f"rules: rename[{i}].replace: {replace!r} does not fit pattern {m.re.pattern!r}: {exc}"
        ) from None


def _find_target(norm: str, index: dict[str, list[str]]) -> str | None:
    exact = set(index.get(norm, ()))
    if len(exact) == 1:
        return exact.pop()
    if exact:
        return None
    tail = "/" + norm
    hits = {t for key, names in index.items() if key.endswith(tail) for t in names}
    return hits.pop() if len(hits) == 1 else None


def _fullmatch(rx: re.Pattern[str], name: str) -> bool:
    return rx.fullmatch(name) is not None or rx.fullmatch(strip_key(name)) is not None


def _lookup(specs: Mapping[str, object]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name in specs:
        out.setdefault(name, []).append(name)
        stripped = strip_key(name)
        if stripped != name:
            out.setdefault(stripped, []).append(name)
    return out


def _resolve(key: str, lookup: dict[str, list[str]]) -> str | None:
    """Exact name, else the unique name equal after stripping ``:0``/``.ATTRIBUTES`` decorations."""
    hits = lookup.get(key)
    if hits and key in hits:
        return key
    hits = lookup.get(strip_key(key))
    if hits and len(set(hits)) == 1:
        return hits[0]
    return None


def _resolve_suffix(key: str, st: State) -> str | None:
    """The unique target whose name ends in ``/key`` (a Sequential model's own name in front)."""
    tail = "/" + strip_key(key)
    hits = [n for n in st.targets if strip_key(n).endswith(tail)]
    return hits[0] if len(hits) == 1 else None


def _unknown(where: str, key: str, what: str, label: str, names: Mapping[str, object]) -> str:
    import difflib  # only for an error message

    close = difflib.get_close_matches(key, list(names), n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    side = "checkpoint" if what == "key" else "target"
    return f"rules: {where}: no {side} {what} {key!r} in {label!r}.{hint}"
