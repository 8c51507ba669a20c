"""Shard reuse: an output whose untouched tensors stay where they are in (a copy of) the source shard.

``mode="link"``: the output's first shards are hard links of the source's data shards (copies when
the filesystem refuses a link, e.g. across devices); the time taken does not depend on the size.
``mode="copy"``: source shards whose bytes the output mostly uses (at least ``REUSE_FRACTION``)
are copied whole by the kernel (``copy_file_range``), as fast as ``cp``; the tensors of other
shards are copied one by one. Either way one extra shard, written with ``BundleWriter``, holds the
transformed tensors and the object graph, and the ``.index`` is built directly with the format
package's table and proto helpers: entries of untouched tensors point at their original offsets.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ckptbridge.conversion._actions import Action
from ckptbridge.conversion._stream import StreamShard, streamable
from ckptbridge.conversion._write import Partition, WriteStats, raw_source, write_actions
from ckptbridge.format._types import OBJECT_GRAPH_KEY


def write_linked(
    prefix: Path,
    src: Any,
    actions: tuple[Action, ...],
    template: Any,
    step: int | None,
    graph: bytes | None,
    partitions: dict[str, Partition],
    mode: str = "link",
) -> WriteStats:
    """Write ``prefix`` (in a staging directory) reusing source shards; see the module docstring."""
    from ckptbridge.format import BundleWriter
    from ckptbridge.format._bundle import data_path
    from ckptbridge.format._bundle_proto import EntryProto, encode_entry, encode_header
    from ckptbridge.format._dtypes import enum_from_name

    linked: list[tuple[Action, Any]] = []
    rest: list[Action] = []
    for action in actions:
        loc = None if action.key in partitions else raw_source(src, action)
        if loc is None:
            rest.append(action)
        else:
            linked.append((action, loc))
    if mode == "copy":
        linked, rest = _worth_copying(linked, rest)
    shard_ids: dict[Path, int] = {}
    for path in sorted({Path(loc.path) for _, loc in linked}):
        shard_ids[path] = len(shard_ids)

    streamed = [(a, loc) for a in rest if a.key not in partitions and (loc := streamable(src, a))]
    rest = [a for a in rest if a.key in partitions or streamable(src, a) is None]
    stream_entries: list[tuple[Action, Any, tuple[int, int, int]]] = []
    stream_path = prefix.with_name(f"{prefix.name}.stream")
    if streamed:
        shard = StreamShard(stream_path)
        try:
            for action, loc in streamed:
                stream_entries.append((action, loc, shard.add(action, loc)))
        finally:
            shard.close()

    extra = prefix.with_name(f"{prefix.name}.extra")
    with BundleWriter(extra) as writer:
        stats = write_actions(
            writer, src, tuple(rest), template=template, step=step, partitions=partitions
        )
        if graph is not None:
            writer.add(OBJECT_GRAPH_KEY, np.array(graph, dtype=object))
    extra_items, extra_shards = _read_index(extra)
    base = len(shard_ids) + (1 if streamed else 0)
    total = base + extra_shards

    copied_whole: set[Path] = set()
    for path, number in shard_ids.items():
        dest = data_path(prefix, number, total)
        if mode == "copy" or not _link(path, dest):
            _copy_file(path, dest)
            _check_copied(dest, [(a, loc) for a, loc in linked if Path(loc.path) == path])
            copied_whole.add(path)
    if streamed:
        os.replace(stream_path, data_path(prefix, len(shard_ids), total))
    for number in range(extra_shards):
        os.replace(data_path(extra, number, extra_shards), data_path(prefix, base + number, total))
    Path(f"{extra}.index").unlink()

    items: list[tuple[bytes, bytes]] = [(b"", encode_header(total))]
    for action, loc in linked:
        entry = EntryProto(
            dtype=enum_from_name(loc.dtype), shape=tuple(loc.shape),
            shard_id=shard_ids[Path(loc.path)], offset=loc.offset, size=loc.size, crc32c=loc.crc32c,
        )  # fmt: skip
        items.append((action.key.encode("utf-8"), encode_entry(entry)))
        if Path(loc.path) in copied_whole:
            stats.bytes_copied += loc.size
        else:
            stats.bytes_linked += loc.size
    for action, _, (offset, size, crc) in stream_entries:
        entry = EntryProto(
            dtype=enum_from_name(action.dtype), shape=tuple(action.shape),
            shard_id=len(shard_ids), offset=offset, size=size, crc32c=crc,
        )  # fmt: skip
        items.append((action.key.encode("utf-8"), encode_entry(entry)))
        stats.bytes_transformed += size
    for key, entry in extra_items:
        if not entry.slices:
            entry.shard_id += base
        items.append((key, encode_entry(entry)))
    items.sort(key=lambda kv: kv[0])
    _write_index(prefix, items)
    return stats


def _read_index(prefix: Path) -> tuple[list[tuple[bytes, Any]], int]:
    from ckptbridge.format._bundle_proto import decode_entry, decode_header
    from ckptbridge.format._table import read_table

    index = Path(f"{prefix}.index")
    items = read_table(index.read_bytes(), str(index))
    header = decode_header(items[0][1])
    return [(k, decode_entry(v)) for k, v in items[1:]], header.num_shards


def _write_index(prefix: Path, items: list[tuple[bytes, bytes]]) -> None:
    from ckptbridge.format._table import build_table

    tmp = Path(f"{prefix}.index.tmp")
    with tmp.open("wb") as handle:
        handle.write(build_table(items))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, Path(f"{prefix}.index"))


REUSE_FRACTION = 0.9


def _worth_copying(
    raw: list[tuple[Action, Any]], rest: list[Action]
) -> tuple[list[tuple[Action, Any]], list[Action]]:
    """Keep for whole-shard copies only the shards the output uses at least REUSE_FRACTION of."""
    used: dict[Path, int] = {}
    for _, loc in raw:
        used[Path(loc.path)] = used.get(Path(loc.path), 0) + loc.size
    whole = {p for p, n in used.items() if n >= REUSE_FRACTION * p.stat().st_size}
    keep = [(a, loc) for a, loc in raw if Path(loc.path) in whole]
    return keep, rest + [a for a, loc in raw if Path(loc.path) not in whole]


def _check_copied(dest: Path, entries: list[tuple[Action, Any]]) -> None:
    """Check each entry's CRC32C in the copy ``dest`` (what the per-tensor copy checks too), so
    a damaged source fails its item instead of giving a damaged output."""
    from ckptbridge._errors import CorruptCheckpointError
    from ckptbridge.format._table import unmask_crc

    with dest.open("rb") as fin:
        size = os.fstat(fin.fileno()).st_size
        for action, loc in sorted(entries, key=lambda e: int(e[1].offset)):
            start, length = int(loc.offset), int(loc.size)
            whole = start + length <= size
            if not whole or _crc_in_place(fin.fileno(), start, length) != unmask_crc(loc.crc32c):
                name = action.match.sources[0] if action.match is not None else action.key
                raise CorruptCheckpointError(
                    f"{loc.path}: bytes {start}..{start + length} for {name!r} are "
                    f"{'damaged (CRC32C mismatch)' if whole else 'truncated'}. The file is "
                    "damaged or incomplete; copy it again from its source"
                )


_WINDOW = 64 << 20  # bytes mapped at a time: the page cache is read in place, RSS stays small


def _crc_in_place(fd: int, start: int, length: int) -> int:
    """CRC32C of ``length`` bytes at ``start`` of ``fd``, read through short-lived memory maps."""
    import mmap

    import google_crc32c
    import numpy as np

    crc, pos, end = 0, start, start + length
    while pos < end:
        base = pos - pos % mmap.ALLOCATIONGRANULARITY
        span = min(end, base + _WINDOW) - base
        with mmap.mmap(fd, span, access=mmap.ACCESS_READ, offset=base) as view:
            piece = np.frombuffer(view, np.uint8, span - (pos - base), pos - base)
            crc = google_crc32c.extend(crc, piece)
            del piece  # the map cannot close while a view of it is alive
        pos = base + span
    return int(crc)


def _link(source: Path, dest: Path) -> bool:
    """Hard-link ``source`` to ``dest``; False when the filesystem refuses (then copy)."""
    try:
        os.link(source, dest)
    except OSError:
        return False
    return True


def _copy_file(source: Path, dest: Path) -> None:
    """Copy a whole file inside the kernel (``copy_file_range``; reflinks where supported)."""
    with source.open("rb") as fin, dest.open("wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        done = 0
        try:
            while done < size:
                n = os.copy_file_range(fin.fileno(), fout.fileno(), size - done)
                if n == 0:
                    break
                done += n
        except OSError:
            fin.seek(done)
            fout.seek(done)
            shutil.copyfileobj(fin, fout, 8 << 20)
            done = size
        if done < size:
            raise OSError(f"copying {source} stopped at byte {done} of {size}")
        fout.flush()
        if FSYNC_COPIES:
            os.fsync(fout.fileno())


FSYNC_COPIES = (
    False  # like cp and TensorFlow's saver: safe against a killed process, not power loss
)
