"""The public verbs: :class:`Bridge` holds one configuration; ``restore``, ``plan`` and
``convert`` are the same verbs on a default Bridge.

A migration or batch script configures once and reuses it::

    bridge = ckptbridge.Bridge(rules="rules.yaml")
    for ckpt in checkpoints:
        print(bridge.restore(model, ckpt))

``import ckptbridge`` stays TensorFlow-free: only restoring into (or planning against) a live
model imports TensorFlow.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ckptbridge.rules._load import RulesLike
from ckptbridge.rules._model import Rules

if TYPE_CHECKING:  # pragma: no cover
    from ckptbridge.conversion import ConversionReport
    from ckptbridge.engine._plan import MappingPlan
    from ckptbridge.restoring import RestoreReport
    from ckptbridge.sides._target import TargetLike

__all__ = ["Bridge", "convert", "plan", "restore"]

PathLike = str | os.PathLike[str]


class Bridge:
    """One configuration (rules, strictness) and the verbs that use it.

    ``rules``: ``None``, a :class:`Rules`, a dict, a path to a YAML/TOML/JSON file, or
    ``"preset:NAME"``; loaded (and validated) once, here. ``strict``: whether :meth:`restore`
    requires every model variable to be restored (the rules' ``options.strict: false`` relaxes it).

    >>> Bridge(rules={"map": {"fc2/weights": "dense_1/kernel"}})
    Bridge(rules=<0 renames, 1 pairs>, strict=True)

    Example: ``Bridge(rules="rules.yaml").restore(model, "old/model.ckpt-1000")``.
    """

    def __init__(self, rules: RulesLike = None, *, strict: bool = True) -> None:
        from ckptbridge.rules import load_rules

        self.rules: Rules = rules if isinstance(rules, Rules) else load_rules(rules)
        self.strict = strict

    def __repr__(self) -> str:
        return f"Bridge(rules=<{len(self.rules.rename)} renames, {len(self.rules.map)} pairs>, strict={self.strict})"

    def restore(
        self,
        model: Any,
        checkpoint: PathLike,
        *,
        strict: bool | None = None,
        progress: bool | None = None,
    ) -> RestoreReport:
        """Restore ``checkpoint`` into ``model`` (built Keras 3 / tf-keras model or tf.Module).

        All-or-nothing: with ``strict`` every variable must have a source, else
        ``ckptbridge.NotFoundError`` (a ``tf.errors.NotFoundError``) is raised before any
        assignment. ``strict=None`` uses the Bridge's setting. ``progress``: a byte bar on
        stderr while values are read (None: only when stderr is a terminal).

        Example: ``print(Bridge().restore(model, "old/model.ckpt-1000"))``.
        """
        from ckptbridge.restoring import restore_into

        use_strict = self.strict if strict is None else strict
        return restore_into(model, checkpoint, self.rules, strict=use_strict, progress=progress)

    def plan(self, checkpoint: PathLike, target: TargetLike) -> MappingPlan:
        """Derive the mapping from ``checkpoint`` to ``target`` without assigning anything.

        ``target``: a live model, a template checkpoint (TF1 or TF2: prefix or directory), or a
        ``.meta`` file.

        Example: ``Bridge().plan("old/model.ckpt-1000", "new/ckpt-1").complete`` -> ``True``.
        """
        from ckptbridge.engine import derive
        from ckptbridge.sides import describe_checkpoint, describe_target

        target_side = describe_target(target)
        source_side = describe_checkpoint(checkpoint)
        return derive(
            list(source_side.specs),
            list(target_side.specs),
            self.rules,
            source_label=source_side.label,
            target_label=target_side.label,
        )

    def convert(self, src: PathLike, dst_dir: PathLike, **kwargs: Any) -> ConversionReport:
        """Re-save ``src`` under ``dst_dir`` in the target's format, with this Bridge's rules.

        Keyword arguments go to ``ckptbridge.conversion.convert`` (``target=``, ``to=``,
        ``overwrite=``, ``link=``, ``verify=``).

        Example: ``Bridge(rules="rules.yaml").convert("old/", "new/", target="template/ckpt-1")``.
        """
        from ckptbridge.conversion import convert as run

        kwargs.setdefault("rules", self.rules)
        return run(src, dst_dir, **kwargs)


def restore(
    model: Any,
    checkpoint: PathLike,
    rules: RulesLike = None,
    *,
    strict: bool = True,
    progress: bool | None = None,
) -> RestoreReport:
    """Restore a TF1 (V1 or V2) or TF2 checkpoint into a live model; see :meth:`Bridge.restore`.

    Example: ``print(ckptbridge.restore(model, "old/model.ckpt-1000"))``.
    """
    return Bridge(rules, strict=strict).restore(model, checkpoint, progress=progress)


def plan(checkpoint: PathLike, target: TargetLike, rules: RulesLike = None) -> MappingPlan:
    """Derive the mapping from ``checkpoint`` to ``target`` without assigning; see :meth:`Bridge.plan`.

    Example: ``ckptbridge.plan("old/model.ckpt-1000", model).complete`` -> ``True``.
    """
    return Bridge(rules).plan(checkpoint, target)


def convert(
    src: PathLike, dst_dir: PathLike, *, rules: RulesLike = None, **kwargs: Any
) -> ConversionReport:
    """Re-save a checkpoint in the target's format; see :meth:`Bridge.convert`.

    Example: ``ckptbridge.convert("old/model.ckpt-1000", "new/", target="template/ckpt-1")``.
    """
    return Bridge(rules).convert(src, dst_dir, **kwargs)
