"""The one place where ckptbridge imports its optional packages (TensorFlow, tf-keras, Keras, h5py).

``import ckptbridge``, the file-level tools and restore into a Keras 3 model need none of them.
Code that needs one calls :func:`require` (or :func:`import_tensorflow`), which returns the module
or raises :class:`~ckptbridge.MissingDependencyError`, one line naming the extra to install::

    tf = import_tensorflow("converting to a TF2 checkpoint")
    # MissingDependencyError: converting to a TF2 checkpoint needs TensorFlow, which is not
    # installed. Fix: pip install 'ckptbridge[tf]'

TensorFlow 2.21 writes absl/oneDNN/CUDA notices straight to file descriptor 2 while it is imported
and first used, whatever ``TF_CPP_MIN_LOG_LEVEL`` says; :func:`import_tensorflow` drops them, so the
command line stays quiet. ``ckptbridge.NotFoundError`` is built here too: a subclass of
``tf.errors.NotFoundError`` whenever TensorFlow is installed, a ``LookupError`` otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from ckptbridge._errors import CkptBridgeError, MappingError, MissingDependencyError

__all__ = [
    "has_module",
    "import_tensorflow",
    "lazy_exports",
    "not_found_error_class",
    "require",
]

# module -> (what to call it in a message, the pip command that brings it)
_PACKAGES: dict[str, tuple[str, str]] = {
    "tensorflow": ("TensorFlow", "pip install 'ckptbridge[tf]'"),
    "tf_keras": ("tf-keras", "pip install 'ckptbridge[tf]'"),
    "keras": ("Keras 3", "pip install 'ckptbridge[keras]'"),
    "h5py": ("h5py", "pip install 'ckptbridge[keras]'"),
}


def has_module(name: str) -> bool:
    """True when ``name`` is imported or importable, found without importing it.

    >>> has_module("numpy")
    True
    """
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _missing(name: str, purpose: str, cause: BaseException | None = None) -> MissingDependencyError:
    label, fix = _PACKAGES.get(name, (name, f"pip install {name}"))
    why = f" ({type(cause).__name__}: {cause})" if cause is not None and has_module(name) else ""
    state = "cannot be imported" if why else "is not installed"
    return MissingDependencyError(f"{purpose} needs {label}, which {state}{why}. Fix: {fix}")


def require(name: str, purpose: str) -> ModuleType:
    """Import the optional module ``name`` or raise a one-line ``MissingDependencyError``.

    ``purpose`` says what needs it, as the message's subject.

    >>> h5py = require("h5py", "reading a Keras .weights.h5 file")
    """
    if name == "tensorflow":
        return import_tensorflow(purpose)  # type: ignore[no-any-return]
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    if not has_module(name):
        raise _missing(name, purpose)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise _missing(name, purpose, exc) from None


def import_tensorflow(purpose: str = "this") -> Any:
    """Return the ``tensorflow`` module, importing it with file descriptor 2 silenced.

    Python exceptions still propagate; only the C++ notices printed meanwhile are dropped. When
    TensorFlow is already imported (the user's own program did it), this is a dictionary lookup.
    Without TensorFlow: ``MissingDependencyError`` naming ``pip install 'ckptbridge[tf]'``.

    Example::

        tf = import_tensorflow("a tf.Module target")
    """
    loaded = sys.modules.get("tensorflow")
    if loaded is not None:
        return loaded
    if not has_module("tensorflow"):
        raise _missing("tensorflow", purpose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): import as is
        return _import_tf(purpose)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            tensorflow = _import_tf(purpose)
            tensorflow.constant(0)  # device set-up logs its notices on first use
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tensorflow


def _import_tf(purpose: str) -> Any:
    try:
        import tensorflow
    except Exception as exc:  # ImportError, or a broken install (numpy ABI, protobuf) failing
        raise _missing("tensorflow", purpose, exc) from None
    return tensorflow


# -- ckptbridge.NotFoundError ------------------------------------------------------------------

_not_found_cls: type[CkptBridgeError] | None = None

_NOT_FOUND_DOC = """Model variables that have no entry in the checkpoint.

    Raised by :func:`ckptbridge.restore` with ``strict=True`` before anything is assigned.
    ``missing`` holds the unmatched variable names, ``plan`` the full :class:`MappingPlan`.
    A ``tf.errors.NotFoundError`` whenever TensorFlow is installed, a ``LookupError`` otherwise.
    """


def _rebuild_not_found(message: str, missing: tuple[str, ...]) -> CkptBridgeError:
    return not_found_error_class()(message, missing=missing)  # type: ignore[call-arg]


def _build_plain() -> type[CkptBridgeError]:
    class NotFoundError(MappingError, LookupError):
        def __init__(
            self, message: str, *, missing: tuple[str, ...] = (), plan: Any = None
        ) -> None:
            super().__init__(message)
            self.message = message
            self.missing = tuple(missing)
            self.plan = plan

        def __str__(self) -> str:
            return str(self.message)

        def __reduce__(self) -> tuple[Any, ...]:
            return (_rebuild_not_found, (self.message, self.missing))

    return NotFoundError


def _build_tf(tf: Any) -> type[CkptBridgeError]:
    class NotFoundError(MappingError, tf.errors.NotFoundError):  # type: ignore[misc]
        def __init__(
            self, message: str, *, missing: tuple[str, ...] = (), plan: Any = None
        ) -> None:
            tf.errors.NotFoundError.__init__(self, None, None, message)
            self.missing = tuple(missing)
            self.plan = plan

        def __str__(self) -> str:
            return str(self.message)

        def __reduce__(self) -> tuple[Any, ...]:
            return (_rebuild_not_found, (self.message, self.missing))

    return NotFoundError


def not_found_error_class() -> type[CkptBridgeError]:
    """Return ``ckptbridge.NotFoundError``, built on first use.

    With TensorFlow installed (found without importing it, then imported quietly) it subclasses
    ``tf.errors.NotFoundError``; without, it is a plain ``MappingError`` and ``LookupError``.

    Example: ``issubclass(not_found_error_class(), MappingError)`` -> ``True``, with or without
    TensorFlow.
    """
    global _not_found_cls
    if _not_found_cls is None:
        cls: type[CkptBridgeError] | None = None
        if has_module("tensorflow"):
            try:
                cls = _build_tf(import_tensorflow("ckptbridge.NotFoundError"))
            except MissingDependencyError:  # installed but broken: never fail to build the error
                cls = None
        cls = cls or _build_plain()
        cls.__doc__ = _NOT_FOUND_DOC
        cls.__module__ = "ckptbridge"
        cls.__qualname__ = cls.__name__ = "NotFoundError"
        _not_found_cls = cls
    return _not_found_cls


def lazy_exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A PEP 562 module ``__getattr__`` for ``package``: each name of ``names`` (name -> its
    submodule, relative to ``package``) is imported from there on first use, then kept.

    What a package re-exports from a heavy or rarely used half (Pydantic rules, live models, RNN
    converters...) so that a command that never uses it never imports it::

        __getattr__ = lazy_exports(__name__, {"Rules": "_model", "load_rules": "_load"})
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def __getattr__(name: str) -> Any:
    if name == "NotFoundError":
        return not_found_error_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
