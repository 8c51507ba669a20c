"""The one exception tree of ckptbridge.

Every error ckptbridge raises on purpose derives from :class:`CkptBridgeError`, and also from the
builtin (or TensorFlow) error that callers already catch for the same situation::

    CkptBridgeError(Exception)
    ├── CheckpointNotFoundError(FileNotFoundError)   nothing at the path, or a shard is missing
    ├── EntryNotFoundError(KeyError)                 a key that is not an entry of the checkpoint
    ├── CorruptCheckpointError(ValueError)           the files exist but are damaged or not a checkpoint
    ├── UnsupportedCheckpointError(ValueError)       a valid file ckptbridge cannot handle (yet)
    ├── RulesError(ValueError)                       a rules file or dict that is invalid or does not fit
    ├── MappingError(ValueError)                     a plan that cannot be carried out (ambiguous, bad shapes)
    │   └── NotFoundError(tf.errors.NotFoundError)   model variables with no checkpoint entry (restore)
    ├── OutputExistsError(FileExistsError)           an output is in the way and overwrite=False
    ├── StorageError(OSError)                        a remote store refused or failed a request
    └── ConversionError                              a conversion step failed (the message says which)

``NotFoundError`` also subclasses ``tf.errors.NotFoundError`` so that existing
``except tf.errors.NotFoundError:`` code keeps working. Building it needs TensorFlow, so it is
created on first access (``ckptbridge.NotFoundError``); ``import ckptbridge`` stays TensorFlow-free.

Messages say what went wrong, where, what was expected, what was found, and the fix. They never
contain tensor values.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CheckpointNotFoundError",
    "CkptBridgeError",
    "ConversionError",
    "CorruptCheckpointError",
    "EntryNotFoundError",
    "MappingError",
    "NotFoundError",  # noqa: F822 - created on first access by __getattr__ below
    "OutputExistsError",
    "RulesError",
    "StorageError",
    "UnsupportedCheckpointError",
]


class CkptBridgeError(Exception):
    """Root of every error ckptbridge raises on purpose."""


class CheckpointNotFoundError(CkptBridgeError, FileNotFoundError):
    """Nothing usable at the given path, or a file the checkpoint needs is missing."""

    def __str__(self) -> str:  # FileNotFoundError would format (errno, strerror) otherwise
        return str(self.args[0]) if self.args else ""


class EntryNotFoundError(CkptBridgeError, KeyError):
    """A key asked for by name is not an entry of the checkpoint (the message offers close ones)."""

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0]) if self.args else ""


class CorruptCheckpointError(CkptBridgeError, ValueError):
    """The checkpoint files exist but are damaged, truncated, or not a checkpoint at all."""


class UnsupportedCheckpointError(CkptBridgeError, ValueError):
    """A well-formed checkpoint that uses a feature ckptbridge does not handle."""


class RulesError(CkptBridgeError, ValueError):
    """A rules file or mapping that is invalid, or that does not fit the checkpoint."""


class MappingError(CkptBridgeError, ValueError):
    """A mapping plan that cannot be carried out as asked."""


class OutputExistsError(CkptBridgeError, FileExistsError):
    """An output path already exists and ``overwrite`` was not given."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class StorageError(CkptBridgeError, OSError):
    """Object storage refused or failed a request (credentials, endpoint, network), or the
    fsspec backend of a URL's protocol is not installed."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConversionError(CkptBridgeError):
    """A conversion step failed; the message names the checkpoint and the entry."""


_not_found_cls: type[CkptBridgeError] | None = None


def _build_not_found_error() -> type[CkptBridgeError]:
    import tensorflow as tf

    class NotFoundError(MappingError, tf.errors.NotFoundError):  # type: ignore[misc]
        """Model variables that have no entry in the checkpoint.

        Raised by :func:`ckptbridge.restore` with ``strict=True`` before anything is assigned.
        ``missing`` holds the unmatched variable names, ``plan`` the full :class:`MappingPlan`.
        """

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

    NotFoundError.__module__ = "ckptbridge"
    NotFoundError.__qualname__ = "NotFoundError"
    return NotFoundError


def _rebuild_not_found(message: str, missing: tuple[str, ...]) -> CkptBridgeError:
    return not_found_error_class()(message, missing=missing)  # type: ignore[call-arg]


def not_found_error_class() -> type[CkptBridgeError]:
    """Return ``ckptbridge.NotFoundError``, creating it (and importing TensorFlow) on first use."""
    global _not_found_cls
    if _not_found_cls is None:
        _not_found_cls = _build_not_found_error()
    return _not_found_cls


def __getattr__(name: str) -> Any:
    if name == "NotFoundError":
        return not_found_error_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
