"""The target of a plan or a conversion, whatever the user passed: a live model, a model factory
(``package.module:function``), a template checkpoint (TF1 or TF2), or a ``.meta`` graph.

:func:`describe_target` is the one resolver: the API (``plan``, ``restore``) and the conversion (and
so the command line) name and describe targets through it, so both see the same variable names.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any, TypeGuard

from ckptbridge._errors import CheckpointNotFoundError, ConversionError, UnsupportedCheckpointError
from ckptbridge._text import lazy_pattern
from ckptbridge.format._storage import as_location
from ckptbridge.sides._checkpoint import Side, describe_checkpoint, meta_specs, read_meta_file

__all__ = [
    "TargetLike",
    "describe_target",
    "dotted_factory_hint",
    "is_factory_spec",
    "load_factory",
]

TargetLike = object
"""A target as users pass it: a path (``str``/``PathLike``), ``"package.module:factory"``, or a live
model of any framework; :func:`describe_target` tells them apart and refuses anything else."""

_FACTORY = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def is_factory_spec(value: object) -> TypeGuard[str]:
    """True for a ``package.module:function`` string that is not also an existing path.

    >>> is_factory_spec("myproject.models:build_vgg"), is_factory_spec("old/model.ckpt-1000")
    (True, False)
    """
    return isinstance(value, str) and bool(_FACTORY.fullmatch(value)) and not os.path.exists(value)


def load_factory(spec: str) -> Any:
    """Import ``package.module:factory`` and call it: the model the CLI converts towards.

    Example: ``load_factory("myproject.models:build_vgg")`` -> the model ``build_vgg()`` returns.
    """
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # the console script does not put the cwd on the path
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise CheckpointNotFoundError(
            f"target {spec!r}: cannot import {attr!r} from module {module_name!r} ({exc}). "
            "Expected 'package.module:factory' importable from the current directory or PYTHONPATH"
        ) from None
    except Exception as exc:  # the module's own code failed while importing
        raise ConversionError(
            f"target {spec!r}: importing module {module_name!r} failed with "
            f"{type(exc).__name__}: {exc}. Fix the module, or run it alone to debug (--debug)"
        ) from exc
    from ckptbridge.sides._live import is_live_model

    if is_live_model(obj):
        return obj
    if not callable(obj):
        raise ConversionError(
            f"target {spec!r} is {_a(obj)}, not a model factory: expected a function (or class) "
            f"that returns a built model. Fix: name the function that builds the model, e.g. "
            f"'{module_name}:build_model'"
        )
    try:
        model = obj()
    except Exception as exc:  # the user's code: report it as unusable input, in one line
        raise ConversionError(
            f"target {spec!r}: calling {attr}() failed with {type(exc).__name__}: {exc}. "
            "Expected a factory that returns a built model; run it alone to debug (--debug)"
        ) from exc
    if not is_live_model(model):
        raise ConversionError(
            f"target {spec!r}: {attr}() returned {_a(model)}, not a model: expected a built "
            "Keras 3 model, a tf-keras model or a tf.Module. Fix: return the model from the factory"
        )
    return model


def _a(obj: object) -> str:
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


_DOTTED = lazy_pattern(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*){2,}")


def dotted_factory_hint(value: object) -> str | None:
    """A hint when ``value`` is no path and reads like ``pkg.mod.factory`` (the colon forgotten).

    >>> dotted_factory_hint("myproject.models.build_vgg").endswith(
    ...     "did you mean 'myproject.models:build_vgg'?")
    True
    >>> dotted_factory_hint("runs/model.ckpt-5") is None
    True
    """
    if not isinstance(value, str) or os.path.exists(value) or not _DOTTED().fullmatch(value):
        return None
    if {"ckpt", "index", "meta", "h5", "keras", "pb"} & set(value.split(".")):
        return None  # a checkpoint name that is not there: the checkpoint error says so
    module, _, attr = value.rpartition(".")
    return (
        f"target {value!r} is not a checkpoint path; as a model factory it needs a colon between "
        f"module and function: did you mean '{module}:{attr}'?"
    )


def describe_target(target: TargetLike) -> Side:
    """The target side of a plan: a live model, a model factory, a template checkpoint, or a
    ``.meta`` file.

    Example: ``describe_target("template/ckpt-1").kind`` -> ``'tf2'``.
    """
    if is_factory_spec(target):
        target = load_factory(target)
    hint = dotted_factory_hint(target)
    if hint is not None:
        raise CheckpointNotFoundError(hint)
    if not isinstance(target, (str, bytes, os.PathLike)):  # a path is never a live model
        from ckptbridge.sides._live import describe_model, is_live_model

        if is_live_model(target):
            live = describe_model(target)
            return Side(specs=live.specs, label=f"model {live.label!r}", kind="model", live=live)
    if not isinstance(target, (str, os.PathLike)):
        raise UnsupportedCheckpointError(
            f"target {_a(target)} is not usable: expected a template checkpoint "
            "(prefix or directory), a .meta file, a built model, or 'package.module:factory'"
        )
    if str(target).endswith(".meta"):
        path = as_location(target)
        return Side(specs=tuple(meta_specs(read_meta_file(path))), label=str(path), kind="meta")
    return describe_checkpoint(target)
