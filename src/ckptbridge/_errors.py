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
    │   └── NotFoundError(tf.errors.NotFoundError    model variables with no checkpoint entry (restore)
    │                     or LookupError)
    ├── OutputExistsError(FileExistsError)           an output is in the way and overwrite=False
    ├── StorageError(OSError)                        a remote store refused or failed a request
    ├── MissingDependencyError(ImportError)          an optional package is not installed (names the extra)
    └── ConversionError                              a conversion step failed (the message says which)

``NotFoundError`` subclasses ``tf.errors.NotFoundError`` whenever TensorFlow is installed, so that
existing ``except tf.errors.NotFoundError:`` code keeps working, and ``LookupError`` otherwise. It is
built on first access (``ckptbridge.NotFoundError``) by :mod:`ckptbridge._optional`, which decides
whether TensorFlow is there; ``import ckptbridge`` stays TensorFlow-free.

Messages say what went wrong, where, what was expected, what was found, and the fix. They never
contain tensor values.
"""

from __future__ import annotations

__all__ = [
    "CheckpointNotFoundError",
    "CkptBridgeError",
    "ConversionError",
    "CorruptCheckpointError",
    "EntryNotFoundError",
    "MappingError",
    "MissingDependencyError",
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


class MissingDependencyError(CkptBridgeError, ImportError):
    """An optional package (TensorFlow, tf-keras, Keras, h5py) is needed and not installed; the
    message names the extra to install (``pip install 'ckptbridge[tf]'``)."""

    def __str__(self) -> str:  # ImportError would show only msg=..., keep the one line
        return str(self.args[0]) if self.args else ""


class ConversionError(CkptBridgeError):
    """A conversion step failed; the message names the checkpoint and the entry."""
