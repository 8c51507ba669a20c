"""The two sides of a plan as VarSpecs: a checkpoint, a ``.meta`` graph, or a live model.

- TF2 checkpoint: one spec per entry (the object-graph entry excepted); the name is the key as
  stored (a model path instead when the stored key goes through an optimizer), the aliases are
  every object-graph path that reaches the variable, then the name the variable had when saved
  (``SerializedTensor.full_name``: ``dense/kernel``); the order is the object-graph order.
  Optimizer objects and their slots (any attribute name) carry ``VarSpec.auxiliary``.
- TF1 checkpoint: the name is the key; the order is the ``.meta`` creation order when a ``.meta``
  lies beside it (``None`` otherwise); partitioned variables are one entry; an LSTM cell's bias
  carries the forget bias its graph adds (``VarSpec.constants``, see ``sides._graph_facts``).
- ``.meta`` file alone: its variables, partitions folded into one spec.
- Keras ``.weights.h5`` / ``.keras`` file: the name is the variable's Keras path, the alias its
  HDF5 path, the order the save order.
Live models are described by :mod:`ckptbridge.sides._live`; :func:`ckptbridge.sides.describe_target`
chooses between them.
"""

from __future__ import annotations

import os
from collections.abc import Set as AbstractSet
from dataclasses import MISSING, fields, replace
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from ckptbridge._errors import CheckpointNotFoundError, CorruptCheckpointError
from ckptbridge._text import lazy_pattern
from ckptbridge.engine._plan import Auxiliary
from ckptbridge.engine._spec import VarSpec
from ckptbridge.format._gc import collector_paused
from ckptbridge.format._storage import Location
from ckptbridge.format._types import ATTRIBUTES_SUFFIX, OBJECT_GRAPH_KEY, strip_attributes

if TYPE_CHECKING:
    from ckptbridge.engine._spec import GraphConstant
    from ckptbridge.format import Checkpoint
    from ckptbridge.sides._live import LiveModel
    from ckptbridge.sides._tf2_optimizer import OptimizerFact

__all__ = [
    "Side",
    "checkpoint_specs",
    "describe_checkpoint",
    "meta_specs",
    "read_meta_file",
]

_PART = lazy_pattern(r"/part_\d+(?=/|$)")


class Side(NamedTuple):
    """One side of a plan: its specs, a label for messages, and what it is (``tf1``, ``meta``...)."""

    specs: tuple[VarSpec, ...]
    label: str
    kind: str
    live: LiveModel | None = None  # when the side is a model


def _tf2_specs(ckpt: Checkpoint) -> list[VarSpec]:
    graph = ckpt.object_graph
    by_key: dict[str, Any] = {}
    facts: dict[str, OptimizerFact] = {}
    if graph is not None:
        from ckptbridge.sides._tf2_optimizer import optimizer_facts  # object graphs only

        facts = optimizer_facts(graph)
        for order, var in enumerate(graph.variables()):
            by_key.setdefault(var.key, (order, var))
    optimizers = {f.optimizer for f in facts.values()}
    shapes: dict[Any, tuple[int, ...]] = {}
    specs: dict[str, VarSpec] = {}  # stored key -> spec
    for key, entry in ckpt.entries.items():
        if key == OBJECT_GRAPH_KEY:
            continue
        order, var = by_key.get(key, (None, None))
        name, aliases = key, cast(tuple[str, ...], ())
        if var is not None:
            paths = var.paths
            if len(paths) == 1 and not paths[0].endswith(ATTRIBUTES_SUFFIX):
                aliases = () if paths[0] == key else paths  # the common case, quicker
            else:
                stripped = dict.fromkeys(strip_attributes(p) for p in paths)
                aliases = tuple(p for p in stripped if p != key)
        if key not in facts:
            if optimizers or "optimizer" in key:  # else no path goes through an optimizer
                name, aliases = _model_name(key, aliases, optimizers)
            if var is not None and var.full_name and var.full_name not in aliases:
                # the name the variable had when it was saved: one more naming signal
                aliases = (*aliases, var.full_name)
        specs[key] = _entry_spec(name, entry, order=order, aliases=aliases, shapes=shapes)
    if not facts:  # no optimizer: no spec to mark auxiliary
        return list(specs.values())
    names = {key: spec.name for key, spec in specs.items()}
    return [
        replace(spec, auxiliary=_auxiliary(spec.name, facts[key], names)) if key in facts else spec
        for key, spec in specs.items()
    ]


def _auxiliary(name: str, fact: OptimizerFact, spec_name: dict[str, str]) -> Auxiliary:
    of = spec_name.get(fact.of, fact.of) if fact.of else None
    return Auxiliary(name, fact.kind, of, fact.slot)  # type: ignore[arg-type]


def _through(path: str, optimizers: AbstractSet[str]) -> bool:
    """Whether a path goes through an optimizer object (``opt/_trainable_variables/0``)."""
    if "optimizer" in path and "optimizer" in path.split("/"):  # the substring test is quicker
        return True
    return bool(optimizers) and any(path == o or path.startswith(o + "/") for o in optimizers)


def _model_named(spec: VarSpec, optimizers: AbstractSet[str] = frozenset()) -> VarSpec:
    """Name a TF2 entry by a model path when its stored key goes through an optimizer.

    A Keras 3 optimizer tracks the model's variables, so a checkpoint saved with its optimizer
    stores ``model/.../_kernel`` under ``optimizer/_trainable_variables/0`` (or whatever attribute
    holds the optimizer: ``opt/...``): by that key it would read as optimizer state and restore
    nothing. The spec takes its first path outside every optimizer as name (``Checkpoint.read``
    and ``stored_key`` resolve it); the stored key becomes its first alias.
    """
    name, aliases = _model_name(spec.name, spec.aliases, optimizers)
    return spec if name == spec.name else replace(spec, name=name, aliases=aliases)


def _model_name(
    name: str, aliases: tuple[str, ...], optimizers: AbstractSet[str]
) -> tuple[str, tuple[str, ...]]:
    """:func:`_model_named` on a name and its aliases: the (name, aliases) to use."""
    if not _through(name, optimizers):
        return name, aliases
    for alias in aliases:
        if not _through(alias, optimizers):
            rest = tuple(a for a in aliases if a != alias)
            return alias + ATTRIBUTES_SUFFIX, (name, *rest)
    return name, aliases


_new_object, _set_field = object.__new__, object.__setattr__
# VarSpec is a plain frozen dataclass whose defaults are class attributes: an instance given only
# its name, shape and the fields that differ from their defaults reads, compares, hashes, copies
# and pickles as the constructor's, in the same split (shared-key) dict, ~3x faster than its
# __init__ (one object.__setattr__ per field, 11 fields) for 100,000s of entries.
_SPEC_DEFAULTS = {f.name: f.default for f in fields(VarSpec)}
_FAST_SPEC = (
    "__slots__" not in VarSpec.__dict__
    and not hasattr(VarSpec, "__post_init__")
    and list(_SPEC_DEFAULTS)[:2] == ["name", "shape"]
    and all(
        default is not MISSING and VarSpec.__dict__.get(name, MISSING) is default
        for name, default in list(_SPEC_DEFAULTS.items())[2:]
    )
)
_FLOAT32, _NO_ALIASES, _NO_PARTITION = (
    _SPEC_DEFAULTS.get("dtype"), _SPEC_DEFAULTS.get("aliases"), _SPEC_DEFAULTS.get("partition")
)  # fmt: skip


def _entry_spec(
    key: str,
    entry: Any,
    *,
    order: int | None,
    aliases: tuple[str, ...] = (),
    meta: Any = None,
    shapes: dict[Any, tuple[int, ...]] | None = None,
) -> VarSpec:
    """The spec of one entry; ``shapes`` caches shapes as tuples of ints across calls."""
    shape = entry.shape
    cached = shapes.get(shape) if shapes is not None and type(shape) is tuple else None
    if cached is None:
        cached = tuple(int(d) for d in shape)
        if shapes is not None and type(shape) is tuple and len(shapes) < 4096:
            shapes[shape] = cached
    dtype = entry.dtype if type(entry.dtype) is str else str(entry.dtype)
    trainable = None if meta is None else meta.get("trainable")
    partition = () if meta is None else meta.get("partition", ())
    if not _FAST_SPEC:
        return VarSpec(
            name=key, shape=cached, dtype=dtype, order=order, aliases=aliases,
            trainable=trainable, partition=partition,
        )  # fmt: skip
    spec = _new_object(VarSpec)  # VarSpec(key, cached, dtype, order, aliases, ...), in field order
    _set_field(spec, "name", key)
    _set_field(spec, "shape", cached)
    if dtype != _FLOAT32:
        _set_field(spec, "dtype", dtype)
    if order is not None:
        _set_field(spec, "order", order)
    if aliases != _NO_ALIASES:
        _set_field(spec, "aliases", aliases)
    if trainable is not None:
        _set_field(spec, "trainable", trainable)
    if partition != _NO_PARTITION:
        _set_field(spec, "partition", partition)
    return spec


def _meta_index(meta: Any) -> dict[str, dict[str, Any]]:
    """Full variable name -> {order, trainable, shape, dtype, partition} from a MetaInfo."""
    index: dict[str, dict[str, Any]] = {}
    for position, var in enumerate(meta.variables):
        full, shape, part = _full_name(var)
        order = var.order if getattr(var, "order", None) is not None else position
        info = index.get(full)
        if info is None:
            index[full] = {
                "order": order,
                "trainable": getattr(var, "trainable", None),
                "shape": shape,
                "dtype": str(getattr(var, "dtype", "float32")),
                "partition": (part,) if part else (),
            }
        else:
            info["order"] = min(info["order"], order)
            if part:
                info["partition"] = (*info["partition"], part)
    return index


def _full_name(var: Any) -> tuple[str, tuple[int, ...], str]:
    """A partitioned part (``w/part_0``) -> (``w``, full shape, save-slice spec ``"20 16 0,7:0,16"``).

    ``save_slice`` is ``(full_name, full_shape, var_offset, var_shape)`` as the ``.meta`` stores it.
    """
    shape = tuple(int(d) for d in (getattr(var, "shape", None) or ()))
    save_slice = getattr(var, "save_slice", None)
    if save_slice and save_slice[0]:
        full_name, full_shape, offset, part_shape = save_slice
        spec = (
            " ".join(str(d) for d in full_shape)
            + " "
            + ":".join(f"{o},{n}" for o, n in zip(offset, part_shape, strict=False))
        )
        return str(full_name), tuple(int(d) for d in full_shape), spec
    name = str(var.name)
    return _PART().sub("", name), shape, ""


def _tf1_specs(ckpt: Checkpoint) -> list[VarSpec]:
    meta = ckpt.meta
    index: dict[str, dict[str, Any]] = {}
    constants: dict[str, tuple[GraphConstant, ...]] = {}
    if meta is not None:  # .meta facts only beside a .meta: its graph modules load then
        from ckptbridge.sides._graph_facts import forget_biases

        index, constants = _meta_index(meta), forget_biases(meta)
    shapes: dict[Any, tuple[int, ...]] = {}
    specs = []
    for key, entry in ckpt.entries.items():
        info = index.get(key)
        spec = _entry_spec(
            key, entry, order=None if info is None else info["order"], meta=info, shapes=shapes
        )
        specs.append(replace(spec, constants=constants[key]) if key in constants else spec)
    return specs


def _keras_specs(ckpt: Checkpoint) -> list[VarSpec]:
    specs = []
    for key, entry in ckpt.entries.items():
        layout = ckpt.keras_layout(key)
        assert layout is not None  # checkpoint_specs calls this for Keras weights files only
        order, aliases, layer = layout
        spec = _entry_spec(key, entry, order=order, aliases=aliases)
        specs.append(replace(spec, layer=layer) if layer else spec)
    return specs


def checkpoint_specs(ckpt: Checkpoint) -> list[VarSpec]:
    """VarSpecs of an open checkpoint (see the module docstring for names, aliases and order).

    Example: ``with open_checkpoint("old/model.ckpt-1000") as ckpt: specs = checkpoint_specs(ckpt)``.
    """
    if ckpt.kind == "keras":
        return _keras_specs(ckpt)
    with collector_paused():  # one spec per entry, no cycles
        return _tf2_specs(ckpt) if ckpt.kind == "tf2" else _tf1_specs(ckpt)


def meta_specs(meta: Any) -> list[VarSpec]:
    """VarSpecs of the variables a ``.meta`` graph declares, partitions folded into one spec.

    Example: ``meta_specs(read_meta_file(Path("old/model.ckpt-1000.meta")))``.
    """
    from ckptbridge.sides._graph_facts import forget_biases

    constants = forget_biases(meta)
    return [
        VarSpec(
            name=name,
            shape=info["shape"],
            dtype=info["dtype"],
            order=info["order"],
            trainable=info["trainable"],
            partition=info["partition"],
            constants=constants.get(name, ()),
        )
        for name, info in _meta_index(meta).items()
    ]


def read_meta_file(path: Location) -> Any:
    """Decode a ``.meta`` file (MetaGraphDef) into the format package's ``MetaInfo``.

    Example: ``read_meta_file(Path("old/model.ckpt-1000.meta")).variables``.
    """
    from ckptbridge.format import MetaInfo

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointNotFoundError(
            f"cannot read .meta file {str(path)!r}: {exc.strerror or exc}. Expected a "
            "MetaGraphDef written by a TF1 Saver. Check the path, or pass the checkpoint prefix."
        ) from None
    try:
        return MetaInfo.decode(data)
    except ValueError as exc:
        raise CorruptCheckpointError(
            f"cannot read {str(path)!r} as a .meta file: expected a MetaGraphDef written by a TF1 "
            f"Saver, but decoding failed ({exc}). Pass the checkpoint prefix instead."
        ) from None


def describe_checkpoint(path: str | os.PathLike[str]) -> Side:
    """Open a checkpoint (prefix, directory or file) and describe it as a plan side.

    >>> import tempfile
    >>> import numpy as np
    >>> from ckptbridge.format import BundleWriter
    >>> tmp = tempfile.TemporaryDirectory()
    >>> with BundleWriter(f"{tmp.name}/model.ckpt-1") as writer:
    ...     writer.add("fc/weights", np.zeros((3, 2), np.float32))
    ...     writer.add("global_step", np.int64(1))
    >>> side = describe_checkpoint(f"{tmp.name}/model.ckpt-1")
    >>> side.kind, [(s.name, s.shape, s.dtype) for s in side.specs]
    ('tf1', [('fc/weights', (3, 2), 'float32'), ('global_step', (), 'int64')])
    >>> tmp.cleanup()
    """
    from ckptbridge.format import open_checkpoint

    with open_checkpoint(path) as ckpt:
        return checkpoint_side(ckpt)


def checkpoint_side(ckpt: Checkpoint) -> Side:
    """An open checkpoint as a plan side (what :func:`describe_checkpoint` returns for its path).

    Example: ``with open_checkpoint("old/model.ckpt-1000") as ckpt: side = checkpoint_side(ckpt)``.
    """
    return Side(
        specs=tuple(checkpoint_specs(ckpt)), label=str(ckpt.prefix), kind=str(ckpt.kind.value)
    )
