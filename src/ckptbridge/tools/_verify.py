"""``ckptbridge.verify``: check that every byte of a checkpoint is what its index says it is.

Opening checks the index (every block's CRC32C, every record, every shard's size); then every
entry is read through the decoder users get (``Checkpoint.read``: CRC32C of the entry's bytes,
strings, slices, V1 blocks, Keras datasets; a safetensors file, which has no checksums, has its
header checked against its byte ranges when opened), and entries without a numpy form (``variant``,
``resource``) have their raw bytes checksummed. Damage is collected, not raised: the report names
each damaged entry with its file and byte range::

    report = ckptbridge.verify("old/model.ckpt-1000")
    assert report.ok, str(report)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ckptbridge._errors import CorruptCheckpointError, UnsupportedCheckpointError
from ckptbridge._text import human_bytes

__all__ = ["Damage", "VerifyReport", "verify"]

_CHUNK = 8 << 20


@dataclass(frozen=True)
class Damage:
    """One damaged part: the entry (``None`` for the index itself), the file, the byte range
    (``None`` when the damage is not one range) and the reader's message."""

    key: str | None
    file: str
    start: int | None
    end: int | None
    message: str


@dataclass
class VerifyReport:
    """What :func:`verify` checked in one checkpoint, and what it found damaged."""

    path: str
    prefix: str
    kind: str | None
    entries: int = 0
    bytes_checked: int = 0
    damaged: list[Damage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is damaged."""
        return not self.damaged

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "path": self.path, "prefix": self.prefix, "kind": self.kind, "ok": self.ok,
            "entries": self.entries, "bytes_checked": self.bytes_checked,
            "damaged": [asdict(d) for d in self.damaged],
        }  # fmt: skip

    def to_json(self, indent: int | None = 2) -> str:
        """The report as one JSON document."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def __str__(self) -> str:
        head = f"{self.prefix}: {self.entries} entries, {human_bytes(self.bytes_checked)} checked"
        if self.ok:
            return f"{head}: ok"
        lines = [f"{head}: {len(self.damaged)} damaged"]
        lines += [f"  {d.key or '(index)'}: {d.message}" for d in self.damaged]  # names file, bytes
        return "\n".join(lines)


def verify(
    path: str | os.PathLike[str], *, progress: Callable[[int, int], None] | None = None
) -> VerifyReport:
    """Check every checksum of the checkpoint at ``path`` and read every entry (module docstring).

    ``progress(done_bytes, total_bytes)`` is called after each entry. Raises
    :class:`~ckptbridge.CheckpointNotFoundError` when there is no checkpoint at ``path``.

    Example::

        report = ckptbridge.verify("old/model.ckpt-1000")
        print(report)          # "...: 8 entries, 1.2 MB checked: ok"
    """
    from ckptbridge.format import open_checkpoint
    from ckptbridge.format._resolve import resolve_checkpoint

    prefix, _ = resolve_checkpoint(path)
    report = VerifyReport(path=os.fspath(path), prefix=str(prefix), kind=None)
    try:
        ckpt = open_checkpoint(prefix)
    except CorruptCheckpointError as exc:
        index = f"{prefix}.index" if os.path.exists(f"{prefix}.index") else str(prefix)
        report.damaged.append(Damage(None, index, None, None, str(exc)))
        return report
    with ckpt:
        report.kind = ckpt.kind.value
        total = sum(e.nbytes for e in ckpt.entries.values())
        for key, entry in ckpt.entries.items():
            damage = _check_entry(ckpt, key)
            if damage is not None:
                report.damaged.append(damage)
            report.entries += 1
            report.bytes_checked += entry.nbytes
            if progress is not None:
                progress(report.bytes_checked, total)
    return report


def _check_entry(ckpt: Any, key: str) -> Damage | None:
    loc = ckpt.raw_location(key)
    try:
        value = ckpt.read(key)
        del value
    except UnsupportedCheckpointError:  # no numpy form (variant, resource): its bytes still count
        return None if loc is None else _check_raw(loc, key)
    except CorruptCheckpointError as exc:
        file = str(loc.path) if loc is not None else str(ckpt.prefix)
        start = None if loc is None else int(loc.offset)
        end = None if loc is None else int(loc.offset + loc.size)
        return Damage(key, file, start, end, str(exc))
    return None


def _check_raw(loc: Any, key: str) -> Damage | None:
    import google_crc32c

    crc, got = 0, 0
    try:
        with open(loc.path, "rb") as handle:
            handle.seek(loc.offset)
            while got < loc.size:
                raw = handle.read(min(_CHUNK, loc.size - got))
                if not raw:
                    break
                got += len(raw)
                crc = google_crc32c.extend(crc, raw)
        loc.check_read(crc, got, key)
    except (OSError, CorruptCheckpointError) as exc:
        return Damage(key, str(loc.path), int(loc.offset), int(loc.offset + loc.size), str(exc))
    return None
