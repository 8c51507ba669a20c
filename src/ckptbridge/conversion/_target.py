"""What a conversion writes towards: a TF2 template, a TF1 template or ``.meta``, or a live model.

:func:`resolve_target` turns the user's ``target`` (and ``to``) into a :class:`Target`: the specs
the plan maps onto, the template checkpoint that supplies the object graph and kept values, the
partitioning of TF1 variables, and an identity string used to recognise an earlier identical run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptbridge._errors import UnsupportedCheckpointError
from ckptbridge._optional import import_tensorflow
from ckptbridge.conversion._write import Partition
from ckptbridge.engine._spec import VarSpec
from ckptbridge.format._storage import Location, as_location
from ckptbridge.sides import Side, describe_target

if TYPE_CHECKING:
    import tempfile

    from ckptbridge.sides._live import LiveModel
    from ckptbridge.sides._target import TargetLike

TO_KINDS = ("tf1", "tf2", "keras", "safetensors")


class Target:
    """A resolved conversion target (see the module docstring).

    A plain class, not a dataclass: one per conversion, never compared nor printed, and a
    dataclass costs every command ~1 ms of start-up to create."""

    def __init__(
        self,
        kind: str,  # "tf1" | "tf2" | "meta" | "model"
        to: str,  # "tf1" | "tf2" | "keras" | "safetensors"
        label: str,
        specs: tuple[VarSpec, ...],
        identity: str,
        *,
        template: Location | None = None,
        partitions: dict[str, Partition] | None = None,
        keys: dict[str, str] | None = None,  # spec name -> output key, where they differ
        live: LiveModel | None = None,
        model: Any = None,
    ) -> None:
        self.kind = kind
        self.to = to
        self.label = label
        self.specs = specs
        self.identity = identity
        self.template = template
        self.partitions: dict[str, Partition] = {} if partitions is None else partitions
        self.keys: dict[str, str] = {} if keys is None else keys
        self.live = live
        self.model = model
        # a TemporaryDirectory holding a template written from a model
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        """Remove the temporary template written for a model target, if any."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def resolve_target(target: TargetLike, to: str | None) -> Target:
    """Resolve ``target`` into a :class:`Target`, ``to`` defaulting to the target's own kind.

    Example: ``resolve_target("template/ckpt-1", None).to`` -> ``"tf2"``.
    """
    from ckptbridge.sides import is_factory_spec, load_factory

    if to is not None and to not in TO_KINDS:
        raise UnsupportedCheckpointError(
            f"to={to!r} is not an output kind: expected one of {', '.join(TO_KINDS)}"
        )
    if is_factory_spec(target):
        return _model_target(load_factory(target), to, identity=f"factory:{target}")
    if not isinstance(target, (str, bytes, os.PathLike)):  # a path is never a live model
        from ckptbridge.sides import is_live_model

        if is_live_model(target):
            return _model_target(target, to, identity="")
    if not isinstance(target, (str, os.PathLike)) or str(target).endswith(".meta"):
        side = describe_target(target)  # the one resolver (refuses what is no target)
        assert isinstance(target, (str, os.PathLike))
        return _meta_target(as_location(target), to, side)
    return _checkpoint_target(as_location(target), to)


def _checkpoint_target(path: Location, to: str | None) -> Target:
    from ckptbridge.format import open_checkpoint
    from ckptbridge.sides._checkpoint import checkpoint_side

    with open_checkpoint(path) as ckpt:  # opened once: names as describe_target gives them
        kind = ckpt.kind.value if ckpt.kind.value in ("tf2", "keras", "safetensors") else "tf1"
        specs = checkpoint_side(ckpt).specs
        prefix = ckpt.prefix
        partitions = _partitions_of_meta(ckpt.meta) if kind == "tf1" else {}
        # TF2 entries named by a model path (see _sides) are written under their stored key
        keys = {s.name: ckpt.stored_key(s.name) for s in specs if s.name not in ckpt.entries}
    if kind == "keras" and to != "safetensors":
        raise UnsupportedCheckpointError(
            f"target {str(path)!r} is a Keras weights file: as a template it can only name "
            f"safetensors output (to='safetensors'), not to={to!r}. For Keras output pass the "
            "model ('package.module:factory') as target"
        )
    to = to or kind
    if to != kind and to != "safetensors":
        raise UnsupportedCheckpointError(
            f"target {str(path)!r} is a {kind.upper()} checkpoint but to={to!r} was asked: a "
            f"template decides the output's names, so it must be of the output kind. Pass a "
            f"{to.upper() if to != 'keras' else 'model'} target, or leave `to` out"
        )
    return Target(
        kind=kind,
        to=to,
        label=str(prefix),
        specs=specs,
        identity=f"{kind}:{prefix.resolve()}:{_stamp(prefix)}",
        template=prefix,
        partitions=partitions,
        keys=keys,
    )


def _meta_target(path: Location, to: str | None, side: Side) -> Target:
    from ckptbridge.sides import read_meta_file

    if (to or "tf1") not in ("tf1", "safetensors"):
        raise UnsupportedCheckpointError(
            f"target {str(path)!r} is a .meta graph: it can only give TF1 output (to='tf1'), "
            f"not to={to!r}"
        )
    meta = read_meta_file(path)
    st = path.stat()
    return Target(
        kind="meta",
        to=to or "tf1",
        label=side.label,
        specs=side.specs,
        identity=f"meta:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}",
        partitions=_partitions_of_meta(meta),
    )


def _model_target(model: Any, to: str | None, *, identity: str) -> Target:
    from ckptbridge.sides._live import describe_model

    live = describe_model(model)
    to = to or ("keras" if live.kind == "keras" else "tf2")
    if to == "keras" and live.kind != "keras":
        raise UnsupportedCheckpointError(
            f"to='keras' writes Keras 3 .weights.h5 and needs a Keras 3 model; "
            f"model {live.label!r} is {live.kind}. Use to='tf2' or to='tf1'"
        )
    ident = (
        (identity or f"model:{type(model).__name__}")
        + ":"
        + ";".join(f"{s.name}{list(s.shape)}{s.dtype}" for s in live.specs)
    )  # the variables too: a changed factory is another target (a rerun must not skip)
    if to != "tf2":
        return Target(
            "model", to, f"model {live.label!r}", live.specs, ident, live=live, model=model
        )
    import tempfile  # only a model target with to='tf2' writes a template

    tf = import_tensorflow(f"to='tf2' from model {live.label!r} (its TF2 template checkpoint)")
    tmp = tempfile.TemporaryDirectory(prefix="ckptbridge-template-")
    ckpt = tf.train.Checkpoint(model=model)
    ckpt.save_counter.assign_add(1)  # what ckpt.save() records: restore() then finds every object
    prefix = Path(ckpt.write(os.path.join(tmp.name, "template")))
    target = _checkpoint_target(prefix, "tf2")
    target.kind, target.label, target.identity, target.live = (
        "model",
        f"model {live.label!r}",
        ident,
        live,
    )
    target.model, target._tmp = model, tmp
    return target


def _stamp(prefix: Location) -> str:
    index = prefix.with_name(prefix.name + ".index")
    st = (index if index.exists() else prefix).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def _partitions_of_meta(meta: Any) -> dict[str, Partition]:
    """Full name -> Partition, from the save-slice info of a MetaInfo's variables."""
    if meta is None:
        return {}
    parts: dict[str, list[tuple[tuple[int, ...], tuple[int, ...]]]] = {}
    full_shapes: dict[str, tuple[int, ...]] = {}
    for var in getattr(meta, "variables", ()):
        info = _save_slice(getattr(var, "save_slice", None))
        if info is None:
            continue
        full_name, full_shape, offset, shape = info
        parts.setdefault(full_name, []).append((offset, shape))
        full_shapes[full_name] = full_shape
    return {
        name: Partition(full_shapes[name], tuple(sorted(p)))
        for name, p in parts.items()
        if p != [((0,) * len(full_shapes[name]), full_shapes[name])]  # one part = the whole: plain
    }


def _save_slice(
    value: Any,
) -> tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    if not value:
        return None
    if isinstance(value, tuple) and len(value) == 4:
        name, full, off, shape = value
        return str(name), tuple(full), tuple(off), tuple(shape)
    return None
