"""Where checkpoint files live: the local disk, or any fsspec file system, behind one small Store.

Local paths stay :class:`pathlib.Path` and are read as before (memory maps, ``pread``). A URL
(``s3://``, ``gs://``, ``http(s)://``, ``memory://``, any fsspec protocol) becomes a
:class:`RemotePath`: the part of the pathlib API the readers use, on top of a :class:`Store` that
reads by byte range. A remote read never fetches a whole object it does not need: an index is one
request, a tensor is its own byte range, split into parts fetched in parallel (at most
``CKPTBRIDGE_REMOTE_CONCURRENCY`` at a time, 8 by default)::

    path = as_location("s3://bucket/run/model.ckpt-5.index")    # a RemotePath
    data = store_of(path).read_range(path, 0, 16)

fsspec and the protocol's backend (s3fs, gcsfs, ...) are imported only when a URL is used; their
configuration is theirs (for S3, the ``AWS_*`` variables including ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol, Union

from ckptbridge._errors import CheckpointNotFoundError, StorageError

if TYPE_CHECKING:  # the pool is made for remote reads only
    from concurrent.futures import Future, ThreadPoolExecutor

PART = 8 << 20  # bytes per ranged request when a read is split
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def concurrency() -> int:
    """How many ranged requests may be in flight at once (``CKPTBRIDGE_REMOTE_CONCURRENCY``)."""
    try:
        return max(1, int(os.environ.get("CKPTBRIDGE_REMOTE_CONCURRENCY", "8")))
    except ValueError:
        return 8


def is_url(path: object) -> bool:
    """True for ``proto://...`` strings (and :class:`RemotePath`), False for local paths.

    Example::

        >>> is_url("s3://bucket/x"), is_url("runs/x"), is_url("file:///tmp/x")
        (True, False, True)
    """
    return isinstance(path, RemotePath) or (isinstance(path, str) and bool(_URL.match(path)))


class RemoteStat(NamedTuple):
    """What ``RemotePath.stat()`` returns: the fields ckptbridge reads from ``os.stat_result``."""

    st_size: int
    st_mtime: float
    st_mtime_ns: int


class Store(Protocol):
    """The storage operations the format layer needs, for one kind of location."""

    def size(self, path: Any) -> int: ...

    def read_range(self, path: Any, offset: int, length: int) -> bytes: ...

    def exists(self, path: Any) -> bool: ...

    def children(self, path: Any) -> list[Any]: ...


class LocalStore:
    """Local files: ``os.stat`` and ``pread``; the readers themselves memory-map data shards."""

    def size(self, path: Path) -> int:
        """Size of a file in bytes."""
        return os.stat(path).st_size

    def read_range(self, path: Path, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` (fewer at the end of the file)."""
        fd = os.open(path, os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def exists(self, path: Path) -> bool:
        """True for an existing file or directory."""
        return path.exists()

    def children(self, path: Path) -> list[Path]:
        """The entries of a directory."""
        return sorted(path.iterdir())


class FsspecStore:
    """One fsspec file system; every read is a byte-range request (see the module docstring)."""

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.fs = _filesystem(protocol)
        self.bytes_read = 0  # payload bytes fetched, for tests and benchmarks
        self._lock = threading.Lock()

    def _count(self, n: int) -> None:
        with self._lock:
            self.bytes_read += n

    def info(self, path: RemotePath) -> dict[str, Any]:
        """The backend's metadata of one object (raises CheckpointNotFoundError)."""
        with _errors(path, "read"):
            return dict(self.fs.info(path.path))

    def size(self, path: RemotePath) -> int:
        """Size of an object in bytes."""
        return int(self.info(path)["size"])

    def read_range(self, path: RemotePath, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``, in one request."""
        if length <= 0:
            return b""
        with _errors(path, "read"):
            data = bytes(self.fs.cat_file(path.path, start=offset, end=offset + length))
        self._count(len(data))
        return data

    def read_parts(self, path: RemotePath, offset: int, length: int) -> Iterator[bytes]:
        """The bytes ``offset .. offset+length`` as consecutive parts of at most :data:`PART`,
        fetched ahead in parallel (at most :func:`concurrency` parts in flight, so memory stays
        bounded whatever ``length`` is)."""
        starts = list(range(offset, offset + length, PART))
        ahead: list[Future[bytes]] = []
        pool = _pool()
        for start in starts:
            ahead.append(
                pool.submit(self.read_range, path, start, min(PART, offset + length - start))
            )
            if len(ahead) >= concurrency():
                yield ahead.pop(0).result()
        for future in ahead:
            yield future.result()

    def read_whole(self, path: RemotePath, limit: int, what: str) -> bytes:
        """A whole object of at most ``limit`` bytes (an index, a state file)."""
        size = self.size(path)
        if size > limit:
            raise StorageError(
                f"{what} {path} is {size} bytes, more than the {limit} bytes a {what} can "
                "sensibly be; it is damaged or not a checkpoint file"
            )
        return b"".join(self.read_parts(path, 0, size)) if size else b""

    def _kind(self, path: RemotePath) -> str | None:
        # ``info`` is a HEAD (or one listing) everywhere; fsspec's HTTP ``exists`` is a GET
        try:
            with _errors(path, "list"):
                return str(self.fs.info(path.path).get("type") or "file")
        except CheckpointNotFoundError:
            return None

    def exists(self, path: RemotePath) -> bool:
        """True for an existing object or a non-empty prefix."""
        return self._kind(path) is not None

    def is_file(self, path: RemotePath) -> bool:
        """True for an existing object."""
        return self._kind(path) == "file"

    def is_dir(self, path: RemotePath) -> bool:
        """True for a prefix ("directory") with something under it."""
        with _errors(path, "list"):
            self.fs.invalidate_cache(path.path)
            if self.protocol in ("http", "https") and self._kind(path) == "file":
                return False  # HTTP "directories" are pages: never fetch a file to parse it
            return bool(self.fs.isdir(path.path))

    def children(self, path: RemotePath) -> list[RemotePath]:
        """The objects and prefixes directly under ``path``."""
        with _errors(path, "list"):
            self.fs.invalidate_cache(path.path)
            names = self.fs.ls(path.path, detail=False)
        out = {path / PurePosixPath(str(n).rstrip("/")).name for n in names}
        return sorted(c for c in out if c.name and c != path)

    def glob(self, path: RemotePath, pattern: str) -> list[RemotePath]:
        """``fsspec`` glob of ``pattern`` under ``path`` (``*.index``, ``runs/*``)."""
        with _errors(path, "list"):
            self.fs.invalidate_cache(path.path)
            found = self.fs.glob(f"{path.path.rstrip('/')}/{pattern}")
        return sorted(RemotePath._from(self, str(p).rstrip("/")) for p in found)

    def open(self, path: RemotePath, mode: str) -> IO[Any]:
        """A file object (reads are ranged and cached in blocks; writes commit on close)."""
        with _errors(path, "write" if "w" in mode else "read"):
            return self.fs.open(path.path, mode)  # type: ignore[no-any-return]

    def put(self, local: Path, path: RemotePath) -> None:
        """Upload a local file as the object ``path`` (visible whole, or not at all)."""
        with _errors(path, "write"):
            self.fs.put_file(str(local), path.path)

    def copy(self, source: RemotePath, dest: RemotePath) -> None:
        """Copy an object inside the store (server-side where the backend can)."""
        with _errors(dest, "copy"):
            self.fs.copy(source.path, dest.path)

    def write_bytes(self, path: RemotePath, data: bytes) -> None:
        """Write a small object in one request."""
        with _errors(path, "write"):
            self.fs.pipe_file(path.path, data)

    def remove(self, path: RemotePath, missing_ok: bool = False) -> None:
        """Delete one object."""
        try:
            with _errors(path, "delete"):
                self.fs.rm_file(path.path)
        except CheckpointNotFoundError:
            if not missing_ok:
                raise


class RemotePath:
    """A location in an fsspec file system, with the pathlib methods ckptbridge uses.

    Example::

        >>> p = RemotePath("memory://bucket/run/model.ckpt-5")
        >>> str(p.parent), p.with_name("checkpoint").name
        ('memory:///bucket/run', 'checkpoint')
    """

    __slots__ = ("path", "store")

    def __init__(self, url: str) -> None:
        protocol = url.split("://", 1)[0].lower()
        self.store = store_for_protocol(protocol)
        self.path: str = self.store.fs._strip_protocol(url).rstrip("/") or "/"

    @classmethod
    def _from(cls, store: FsspecStore, path: str) -> RemotePath:
        out = cls.__new__(cls)
        out.store, out.path = store, path
        return out

    # -- pure path operations ------------------------------------------------------------------
    def __str__(self) -> str:
        return str(self.store.fs.unstrip_protocol(self.path))

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and (self.store.protocol, self.path) == (
            other.store.protocol,
            other.path,
        )

    def __hash__(self) -> int:
        return hash((self.store.protocol, self.path))

    def __lt__(self, other: RemotePath) -> bool:
        return str(self) < str(other)

    def __truediv__(self, other: str | os.PathLike[str]) -> RemotePath:
        tail = os.fspath(other).replace("\\", "/").strip("/")
        return RemotePath._from(
            self.store, f"{self.path.rstrip('/')}/{tail}" if tail else self.path
        )

    @property
    def name(self) -> str:
        """The last part of the path."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> RemotePath:
        """The enclosing prefix (the bucket itself at the top)."""
        head, sep, _ = self.path.rstrip("/").rpartition("/")
        if not sep or head.endswith(":/") or head.endswith(":"):
            return self
        return RemotePath._from(self.store, head or "/")

    @property
    def suffix(self) -> str:
        """The last suffix of the name (``.index``), or ``""``."""
        return PurePosixPath(self.name).suffix

    def with_name(self, name: str) -> RemotePath:
        """The path with its last part replaced."""
        return self.parent / name

    def with_suffix(self, suffix: str) -> RemotePath:
        """The path with its last suffix replaced (``""`` drops it)."""
        return self.with_name(PurePosixPath(self.name).with_suffix(suffix).name)

    def is_absolute(self) -> bool:
        """Always True: a URL names one place."""
        return True

    def resolve(self) -> RemotePath:
        """Itself (no links to follow in object storage)."""
        return self

    def expanduser(self) -> RemotePath:
        """Itself."""
        return self

    # -- queries and I/O -----------------------------------------------------------------------
    def exists(self) -> bool:
        """True for an object or a non-empty prefix."""
        return self.store.exists(self)

    def is_file(self) -> bool:
        """True for an object."""
        return self.store.is_file(self)

    def is_dir(self) -> bool:
        """True for a non-empty prefix."""
        return self.store.is_dir(self)

    def is_symlink(self) -> bool:
        """Always False."""
        return False

    def stat(self) -> RemoteStat:
        """Size and modification time (0 when the backend keeps none)."""
        info = self.store.info(self)
        mtime = _mtime(info)
        return RemoteStat(int(info.get("size") or 0), mtime, int(mtime * 1e9))

    def iterdir(self) -> Iterator[RemotePath]:
        """The objects and prefixes directly under this prefix."""
        return iter(self.store.children(self))

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        """The objects matching ``pattern`` under this prefix."""
        return iter(self.store.glob(self, pattern))

    def open(self, mode: str = "rb", encoding: str | None = None) -> IO[Any]:
        """A binary file object (``rb`` / ``wb``); text modes are not offered."""
        if "b" not in mode:
            raise ValueError(f"RemotePath.open supports binary modes only, got {mode!r}")
        return self.store.open(self, mode)

    def read_bytes(self) -> bytes:
        """The whole object."""
        return b"".join(self.store.read_parts(self, 0, self.store.size(self)))

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The whole object, decoded."""
        return self.read_bytes().decode(encoding, errors)

    def write_bytes(self, data: bytes) -> int:
        """Write the object in one request (readers see the old or the new object whole)."""
        self.store.write_bytes(self, data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        """Write text as the object."""
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        """Delete the object."""
        self.store.remove(self, missing_ok=missing_ok)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: prefixes exist through the objects under them."""


Location = Union[Path, RemotePath]  # noqa: UP007 - a runtime alias, also for Python 3.10


def as_location(path: str | os.PathLike[str] | RemotePath) -> Location:
    """A :class:`RemotePath` for a URL, a :class:`Path` for anything else (``~`` expanded).

    ``file://`` URLs are local paths.

    Example::

        >>> as_location("runs/exp1")
        PosixPath('runs/exp1')
    """
    if isinstance(path, (RemotePath, Path)):
        return path
    text = os.fspath(path)
    if is_url(text):
        if text.lower().startswith("file://"):
            return Path(text[len("file://") :])
        return RemotePath(text)
    return Path(text).expanduser()


def glob_locations(pattern: str) -> list[Location]:
    """The paths matching a glob ``pattern``, local or at a URL; a trailing ``/`` keeps only
    directories (prefixes).

    Example::

        glob_locations("s3://bucket/runs/*/")   # [RemotePath('s3://bucket/runs/a'), ...]
    """
    dirs_only = pattern.endswith("/")
    if is_url(pattern) and not pattern.lower().startswith("file://"):
        store = store_for_protocol(pattern.split("://", 1)[0].lower())
        base = RemotePath._from(store, store.fs._strip_protocol(pattern).rstrip("/") or "/")
        with _errors(base, "list"):
            store.fs.invalidate_cache()
            found = [str(p).rstrip("/") for p in store.fs.glob(base.path)]
        remote = sorted(RemotePath._from(store, p) for p in found)
        return [p for p in remote if not dirs_only or p.is_dir()]
    import glob

    local = sorted(Path(p) for p in glob.glob(os.path.expanduser(str(as_location(pattern)))))
    return [p for p in local if not dirs_only or p.is_dir()]


def is_file(path: Location) -> bool:
    """True for a regular file (local: never blocks on FIFOs or devices) or a remote object."""
    if isinstance(path, RemotePath):
        return path.is_file()
    from ckptbridge.format._files import is_regular

    return is_regular(path)


def store_of(path: Location) -> Store:
    """The store that holds ``path``."""
    return path.store if isinstance(path, RemotePath) else _LOCAL


def iter_range(path: Location, offset: int, length: int, chunk: int) -> Iterator[bytes]:
    """Stream ``length`` bytes at ``offset`` in order: local files by ``read`` in ``chunk``-sized
    pieces, remote objects by ranged parts fetched ahead in parallel. Stops early (fewer bytes)
    when the file is shorter; the caller checks the length and the CRC.
    """
    if isinstance(path, RemotePath):
        size = path.store.size(path)
        yield from path.store.read_parts(path, offset, max(0, min(length, size - offset)))
        return
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining:
            data = handle.read(min(chunk, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data


_LOCAL = LocalStore()
_STORES: dict[str, FsspecStore] = {}
_STORES_LOCK = threading.Lock()
_POOL: ThreadPoolExecutor | None = None


def store_for_protocol(protocol: str) -> FsspecStore:
    """The (one, cached) :class:`FsspecStore` of ``protocol``."""
    with _STORES_LOCK:
        store = _STORES.get(protocol)
        if store is None:
            store = _STORES[protocol] = FsspecStore(protocol)
        return store


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _STORES_LOCK:
        if _POOL is None:
            from concurrent.futures import ThreadPoolExecutor

            _POOL = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ckptbridge-fetch")
        return _POOL


def _filesystem(protocol: str) -> Any:
    try:
        import fsspec
    except ImportError:
        raise StorageError(
            f"reading {protocol}:// paths needs fsspec: pip install 'ckptbridge[remote]'"
        ) from None
    try:
        return fsspec.filesystem(protocol)
    except ValueError:
        raise StorageError(
            f"{protocol}:// is not a protocol fsspec knows; expected s3://, gs://, http(s)://, "
            "memory:// or another fsspec protocol"
        ) from None
    except ImportError as exc:
        raise StorageError(
            f"{protocol}:// paths need fsspec's backend for {protocol!r}, which is not installed "
            f"({str(exc).splitlines()[0] if str(exc) else 'import failed'})"
        ) from None


def _mtime(info: dict[str, Any]) -> float:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return 0.0


class _errors:
    """Turn a backend's exceptions into ckptbridge's (not found; any other failure)."""

    def __init__(self, path: RemotePath, action: str) -> None:
        self.path, self.action = path, action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, StorageError):
            return
        if isinstance(exc, CheckpointNotFoundError):
            return
        if isinstance(exc, FileNotFoundError):
            raise CheckpointNotFoundError(f"{self.path} does not exist") from None
        if isinstance(exc, PermissionError):
            raise StorageError(
                f"{self.action} {self.path} was refused ({_brief(exc)}). Check the credentials "
                "the backend uses (for S3: AWS_* variables or ~/.aws)"
            ) from None
        raise StorageError(
            f"{self.action} {self.path} failed ({_brief(exc)}). Check the endpoint, the "
            "credentials and the network"
        ) from None


def _brief(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__
