"""Opening checkpoint files safely: regular files only, bounded sizes, OS errors as our errors.

Every file of a checkpoint is checked with ``stat`` before it is opened, so a FIFO, a device or a
directory is refused without blocking, and a file larger than its kind can sensibly be is refused
before anything is allocated. Files are opened with ``O_NONBLOCK`` (a FIFO swapped in after the
check cannot block either) and checked again with ``fstat``::

    data = read_regular(Path("m.ckpt.index"), INDEX_LIMIT, "checkpoint index")
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

from ckptbridge._errors import CheckpointNotFoundError, CkptBridgeError, CorruptCheckpointError

INDEX_LIMIT = 1 << 30  # 1 GiB: about 20 million entries
META_LIMIT = 1 << 30  # protobuf itself refuses messages of 2 GiB
STATE_LIMIT = 16 << 20  # a text file of paths
_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NOT_FOUND = {errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG, errno.EACCES, errno.EPERM}


def os_error(exc: OSError, path: Path | str, what: str) -> CkptBridgeError:
    """Turn an ``OSError`` met on a checkpoint path into the matching ckptbridge error.

    Example::

        >>> str(os_error(FileNotFoundError(2, "No such file"), "m.ckpt.index", "checkpoint index"))
        'checkpoint index m.ckpt.index cannot be opened: No such file. Check the path.'
    """
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ENAMETOOLONG:
        return CheckpointNotFoundError(
            f"{what} path is too long for the file system ({len(str(path))} characters): "
            f"{str(path)[:120]}... Check the path (or the state file that names it)."
        )
    if exc.errno in _NOT_FOUND:
        fix = (
            "Check its permissions."
            if exc.errno in (errno.EACCES, errno.EPERM)
            else "Check the path."
        )
        return CheckpointNotFoundError(f"{what} {path} cannot be opened: {reason}. {fix}")
    if exc.errno == errno.ELOOP:
        return CorruptCheckpointError(
            f"{what} {path} cannot be read: it is a symbolic link that loops ({reason}). "
            "Point the link at the file."
        )
    return CorruptCheckpointError(
        f"{what} {path} cannot be read: {reason}. Check the file and the disk, or copy it again."
    )


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _check(st: os.stat_result, path: Path, limit: int | None, what: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise CorruptCheckpointError(
            f"{what} {path} is {_kind(st.st_mode)}, not a regular file. Point the path at the "
            "checkpoint's files (a symbolic link to a regular file is fine)."
        )
    if limit is not None and st.st_size > limit:
        raise CorruptCheckpointError(
            f"{what} {path} is {st.st_size} bytes, more than the {limit} bytes a {what} can "
            "sensibly be; the file is damaged or not a checkpoint file. Copy it again."
        )


def regular_stat(path: Path, what: str, limit: int | None = None) -> os.stat_result:
    """``stat`` of a regular file (following links); anything else raises a ckptbridge error."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise os_error(exc, path, what) from None
    except ValueError:  # an embedded NUL byte
        raise CheckpointNotFoundError(
            f"{what} path {str(path)[:120]!r} contains a NUL byte"
        ) from None
    _check(st, path, limit, what)
    return st


def open_regular(path: Path, what: str, limit: int | None = None) -> int:
    """Open a regular file read-only without ever blocking; return its descriptor.

    Example::

        fd = open_regular(Path("m.ckpt.data-00000-of-00001"), "data shard")
    """
    regular_stat(path, what, limit)
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise os_error(exc, path, what) from None
    try:
        _check(os.fstat(fd), path, limit, what)  # the path may have changed since the stat
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path, limit: int, what: str) -> bytes:
    """Read a whole regular file of at most ``limit`` bytes.

    Example::

        data = read_regular(Path("checkpoint"), STATE_LIMIT, "state file")
    """
    fd = open_regular(path, what, limit)
    try:
        chunks: list[bytes] = []
        total = 0
        while True:  # the file may grow or shrink while it is read: stop at the limit
            chunk = os.read(fd, min(limit + 1 - total, 16 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise CorruptCheckpointError(
                    f"{what} {path} grew past {limit} bytes while it was read. Copy it again."
                )
        return b"".join(chunks)
    except OSError as exc:
        raise os_error(exc, path, what) from None
    finally:
        os.close(fd)


def is_regular(path: Path) -> bool:
    """True when ``path`` is (or links to) a regular file; False for anything else, or any OS error."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # ValueError: an embedded NUL byte
        return False


def is_directory(path: Path) -> bool:
    """True when ``path`` is (or links to) a directory; False on any OS error."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def corrupt_guard(where: str) -> Iterator[None]:
    """Turn any failure of a parser on damaged bytes into a :class:`CorruptCheckpointError`.

    The parsers raise their own errors for everything they anticipate; this guard keeps the
    contract "only ckptbridge errors escape" for what they do not (an allocation that fails, an
    index past a damaged end), naming ``where``.

    Example::

        with corrupt_guard("m.ckpt.index"):
            items = read_table(data, "m.ckpt.index")
    """
    try:
        yield
    except CkptBridgeError:
        raise
    except (ValueError, TypeError, IndexError, OverflowError, MemoryError, struct.error,
            RecursionError, UnicodeError) as exc:  # fmt: skip
        raise CorruptCheckpointError(
            f"{where} is damaged: decoding it failed ({type(exc).__name__}: {str(exc)[:200]}). "
            "Copy the checkpoint again from its source."
        ) from None
