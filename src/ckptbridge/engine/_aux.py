"""Recognise checkpoint entries that are not model weights: optimizer state, counters, EMA shadows."""

from __future__ import annotations

import re
from collections.abc import Container, Iterable

from ckptbridge._text import lazy_pattern
from ckptbridge.engine._names import strip_key
from ckptbridge.engine._plan import Auxiliary, AuxKind
from ckptbridge.engine._spec import VarSpec
from ckptbridge.format._types import ATTRIBUTES_SUFFIX

_OPTIMIZERS = (
    "Adam|Momentum|RMSProp|Adagrad|AdagradDA|Ftrl|Adadelta|ProximalAdagrad|ProximalGradientDescent"
    "|LazyAdam|Nadam|Adamax|AdaMax|AdamW|Lamb|LAMB"
)
# TF1 slot: <var>/Adam, <var>/Adam_1, <var>/t_0/Adagrad (canned estimators), ...: a key that
# ``(?P<of>.+?)(?:/t_\d+)?/(?:<_OPTIMIZERS>)(?:_\d+)?`` fullmatches, decided without that pattern
# (its lazy ``.+?`` retries at every character): _AUX_LEAF's ``slot`` group on the leaf, then
# _slot_owner on the scope.
_POWER = lazy_pattern(r"(?:.*/)?beta[12]_power(?:_\d+)?")
_GLOBAL_STEP = lazy_pattern(r"(?:.*/)?global_step(?:_\d+)?")
_LEARNING_RATE = lazy_pattern(r"(?:.*/)?(?:learning_rate|lr)(?:_\d+)?")
_EMA = lazy_pattern(r"(?P<of>.+)/ExponentialMovingAverage(?:_\d+)?")
# Keras optimizers (tf-keras ``Adam/iter``, ``training/Adam/dense/kernel/m``; Keras 3 ``adam/iteration``)
_KERAS_OPT_NAMES = frozenset(
    {
        "adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "ftrl",
        "lion", "lamb", "adafactor", "loss_scale_optimizer",
    }
)  # fmt: skip
_KERAS_HYPER = frozenset(
    {
        "iter", "iteration", "iterations", "beta_1", "beta_2", "decay", "learning_rate", "lr",
        "epsilon", "rho", "momentum", "beta", "l1_regularization_strength",
        "l2_regularization_strength", "l2_shrinkage_regularization_strength",
        "learning_rate_power", "initial_accumulator_value", "amsgrad", "nesterov",
    }
)  # fmt: skip
# The last component every pattern above ends in, one named group per pattern (the groups share no
# string, so one C-level match of the leaf says which single pattern can match the key): a key
# whose leaf is none of these (and that is not under a Keras optimizer's scope) is no auxiliary entry.
_AUX_LEAF = re.compile(
    rf"(?:(?P<ema>ExponentialMovingAverage)|(?P<power>beta[12]_power)|(?P<step>global_step)"
    rf"|(?P<lr>learning_rate|lr)|(?P<slot>{_OPTIMIZERS}))(?:_\d+)?"
)
_LEAF_PATTERNS: dict[str, str | None] = {}  # leaf -> its _AUX_LEAF group (few distinct leaves)
_PLAIN_FIRSTS: dict[str, bool] = {}  # first key component -> _first_is_plain (few distinct)
_OBJECT_GRAPH = "_CHECKPOINTABLE_OBJECT_GRAPH"
_MISSING = "<not yet seen>"
_KERAS3_SLOT = lazy_pattern(r".+_(?:momentum|velocity|velocity_hat|accumulator|linear|m|v)")


def auxiliary_of(spec: VarSpec, known: Container[str] | None = None) -> Auxiliary | None:
    """What the side says ``spec`` is (``VarSpec.auxiliary``), else :func:`classify_auxiliary`.

    >>> auxiliary_of(VarSpec("opt/_variables/2", (3,), auxiliary=Auxiliary("opt/_variables/2",
    ...     "optimizer_slot", "dense/kernel", "_momentums"))).slot
    '_momentums'
    """
    if spec.auxiliary is not None:
        return spec.auxiliary
    return classify_auxiliary(spec.name, spec.shape, known)


def auxiliaries(specs: Iterable[VarSpec], known: Container[str]) -> dict[str, Auxiliary]:
    """:func:`auxiliary_of` for each of ``specs``: name -> Auxiliary for those that are one.

    >>> list(auxiliaries([VarSpec("w", (2,)), VarSpec("w/Adam", (2,))], {"w", "w/Adam"}))
    ['w/Adam']
    """
    out: dict[str, Auxiliary] = {}
    leaf_patterns, plain_firsts = _LEAF_PATTERNS, _PLAIN_FIRSTS
    for spec in specs:  # auxiliary_of and classify_auxiliary inlined: 100,000s of entries
        name = spec.name
        if spec.auxiliary is not None:
            out[name] = spec.auxiliary
            continue
        key = strip_key(name)
        # The usual entries, as _classify decides them: no '/.' (object-graph attribute or TF2
        # slot), a first component that names nothing, and a leaf no pattern ends in (a model
        # weight) or an optimizer's (a TF1 slot, ``<var>/Adam``).
        if "/." not in key:
            scope, _, leaf = key.rpartition("/")
            pattern = leaf_patterns.get(leaf, _MISSING)
            if pattern is None or pattern == "slot":
                first = key.partition("/")[0]
                plain = plain_firsts.get(first)
                if plain is None:
                    plain = _first_is_plain(first)
                if plain:
                    if pattern is None:
                        continue
                    # _slot_owner(scope), inline for a scope without a partition or newline
                    owner = (
                        scope if "/t_" not in scope and "\n" not in scope else _slot_owner(scope)
                    )
                    if owner:  # None or '' (no scope): no auxiliary
                        if owner not in known:  # else _resolve_owner's answer
                            owner = _resolve_owner(owner, name, known)
                        out[name] = Auxiliary(name, "optimizer_slot", owner)
                    continue
        found = _classify(key, name, spec.shape)
        if found is not None:
            kind, of = found
            if of is not None:
                of = _resolve_owner(of, name, known)
            out[name] = Auxiliary(name=name, kind=kind, of=of)
    return out


def classify_auxiliary(
    name: str, shape: tuple[int, ...] | None = None, known: Container[str] | None = None
) -> Auxiliary | None:
    """Return an :class:`Auxiliary` when ``name`` is optimizer state, a counter or an EMA shadow.

    ``shape`` (when given) keeps non-scalar ``lr``/``global_step`` look-alikes out; ``known`` (the
    other keys of the checkpoint) lets ``of`` resolve doubled scopes (``model/model/x/Adam`` -> ``model/x``).

    >>> classify_auxiliary("dense/kernel/Adam_1")
    Auxiliary(name='dense/kernel/Adam_1', kind='optimizer_slot', of='dense/kernel', slot=None)
    >>> classify_auxiliary("dense/kernel") is None
    True
    """
    found = _classify(strip_key(name), name, shape)
    if found is None:
        return None
    kind, of = found
    if of is not None and known is not None:
        of = _resolve_owner(of, name, known)
    return Auxiliary(name=name, kind=kind, of=of)


def _classify(
    key: str, raw: str, shape: tuple[int, ...] | None
) -> tuple[AuxKind, str | None] | None:
    scalar = shape is None or len(shape) == 0
    if key == _OBJECT_GRAPH or "/.ATTRIBUTES/" in key:
        return "object_graph", None
    first = key.split("/", 1)[0]
    if first == "save_counter":
        return "save_counter", None
    if "/.OPTIMIZER_SLOT/" in key:
        return "optimizer_slot", _tf2_owner(raw)
    if first == "optimizer":
        return "optimizer_other", None
    scope, sep, leaf = key.rpartition("/")
    pattern = _leaf_pattern(leaf)
    if pattern is None and first != "training" and first.lower() not in _KERAS_OPT_NAMES:
        return None
    # Each pattern below can only match a key whose leaf is its own group of ``_AUX_LEAF``.
    if pattern == "ema":
        m = _EMA().fullmatch(key)
        if m:
            return "ema_shadow", m.group("of")
    elif pattern == "power":
        if _POWER().fullmatch(key):
            return "optimizer_power", None
    elif pattern == "step":
        if scalar and _GLOBAL_STEP().fullmatch(key):
            return "global_step", None
    elif pattern == "slot":
        owner = _slot_owner(scope) if sep else None  # a TF1 slot: the leaf known to fit
        if owner is not None:
            return "optimizer_slot", owner
    keras = _keras_optimizer(key)
    if keras is not None:
        return keras
    if pattern == "lr" and scalar and _LEARNING_RATE().fullmatch(key):
        return "learning_rate", None
    return None


def _leaf_pattern(leaf: str) -> str | None:
    """The group of ``_AUX_LEAF`` that ``leaf`` matches in full, if any (remembered per leaf)."""
    try:
        return _LEAF_PATTERNS[leaf]
    except KeyError:
        found = _AUX_LEAF.fullmatch(leaf)
        pattern = found.lastgroup if found is not None else None
        if len(_LEAF_PATTERNS) < 4096:  # bounded: unnamed ``Variable_N`` leaves are all distinct
            _LEAF_PATTERNS[leaf] = pattern
        return pattern


def _first_is_plain(first: str) -> bool:
    """Whether a key's first component leaves only its leaf to decide (see :func:`_classify`):
    none of the scopes a counter, an optimizer or its state lives under. Remembered per
    component (bounded as :data:`_LEAF_PATTERNS`)."""
    plain = first not in ("save_counter", "optimizer", "training")
    plain = plain and first.lower() not in _KERAS_OPT_NAMES and first != _OBJECT_GRAPH
    if len(_PLAIN_FIRSTS) < 4096:
        _PLAIN_FIRSTS[first] = plain
    return plain


def _slot_owner(scope: str) -> str | None:
    """The TF1 slot pattern's ``of`` (top of the module) for a slot key whose leaf is an
    optimizer's: ``scope`` without a trailing ``/t_N`` (canned estimators' partitions), as
    ``(?P<of>.+?)(?:/t_\\d+)?`` fullmatched, without the lazy pattern's retry at every character.

    >>> _slot_owner("dnn/w/t_0"), _slot_owner("dnn/w"), _slot_owner("/t_0"), _slot_owner("")
    ('dnn/w', 'dnn/w', '/t_0', None)
    """
    if not scope or "\n" in scope:  # '.' matches neither nothing nor a newline
        return None
    cut = scope.rfind("/t_")
    if cut > 0 and scope[cut + 3 :].isdecimal():  # isdecimal: exactly what \d matches
        return scope[:cut]
    return scope


def _keras_optimizer(key: str) -> tuple[AuxKind, str | None] | None:
    parts = key.split("/")
    if parts[0] == "training" and len(parts) >= 3 and parts[1].lower() in _KERAS_OPT_NAMES:
        parts = parts[1:]  # canned-estimator Keras optimizers live under training/<Opt>/
        if len(parts) >= 3:
            return "optimizer_slot", "/".join(parts[1:-1])
    if len(parts) != 2 or parts[0].lower() not in _KERAS_OPT_NAMES:
        return None
    leaf = parts[1]
    if leaf in ("learning_rate", "lr"):
        return "learning_rate", None
    if leaf in _KERAS_HYPER:
        return "optimizer_other", None
    if _KERAS3_SLOT().fullmatch(leaf):
        return "optimizer_slot", None
    return None


def _tf2_owner(raw: str) -> str:
    owner = raw.split("/.OPTIMIZER_SLOT/", 1)[0]
    return owner + ATTRIBUTES_SUFFIX if raw.endswith(ATTRIBUTES_SUFFIX) else owner


def _resolve_owner(of: str, raw: str, known: Container[str]) -> str:
    if of in known:
        return of
    parts = of.split("/")
    for i in range(1, len(parts)):  # doubled scope: a/a/x -> a/x, a/b/a/b/x -> a/b/x
        if parts[:i] == parts[i : 2 * i]:
            candidate = "/".join(parts[i:])
            if candidate in known:
                return candidate
    for suffix in (":0", ATTRIBUTES_SUFFIX):
        if of + suffix in known:
            return of + suffix
    return of
