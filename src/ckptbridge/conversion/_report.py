"""What a conversion did, per checkpoint: a readable table and a JSON document."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ckptbridge._text import human_bytes, render_table

Status = Literal["converted", "skipped", "failed"]


@dataclass
class ItemReport:
    """One source checkpoint and what became of it.

    ``matched``/``unused``/``auxiliary`` come from the plan; ``missing`` counts the template entries
    the source could not supply (listed in ``dropped``). ``bytes_copied`` counts tensor bytes
    copied unchanged from the source shards, ``bytes_linked`` those left in hard-linked shards,
    ``bytes_transformed`` the bytes of tensors decoded, transformed and re-encoded.
    ``dropped`` lists template entries left out of the output (optimizer slots the source cannot
    supply), ``kept`` template entries written with the template's own value (``save_counter``).
    ``notes``: the plan's notes (values assumed because nothing records them).
    """

    source: str
    output: str
    status: Status = "converted"
    matched: int = 0
    missing: int = 0
    unused: int = 0
    auxiliary: int = 0
    bytes_copied: int = 0
    bytes_transformed: int = 0
    bytes_linked: int = 0
    dropped: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    verified: bool = False
    error: str | None = None
    reason: str | None = None  # why the item was skipped
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of this item."""
        return asdict(self)


@dataclass
class ConversionReport:
    """Everything :func:`ckptbridge.convert` did, one :class:`ItemReport` per source checkpoint.

    Example::

        report = ckptbridge.convert("old/run", "new/run", target="template/ckpt-1")
        print(report)            # a table
        assert report.ok, report.failed
    """

    output_dir: str
    to: str
    items: list[ItemReport] = field(default_factory=list)
    state_file: str | None = None
    warnings: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)  # steps a state file lists that are not there

    @property
    def ok(self) -> bool:
        """True when no item failed."""
        return all(item.status != "failed" for item in self.items)

    @property
    def failed(self) -> list[ItemReport]:
        """The items that failed, with their ``error``."""
        return [item for item in self.items if item.status == "failed"]

    def counts(self) -> dict[str, int]:
        """How many items were converted, skipped and failed."""
        out = {"converted": 0, "skipped": 0, "failed": 0}
        for item in self.items:
            out[item.status] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: output dir, target kind, counts, ``ok`` and every item."""
        return {
            "output_dir": self.output_dir,
            "to": self.to,
            "ok": self.ok,
            "counts": self.counts(),
            "absent": self.absent,
            "state_file": self.state_file,
            "warnings": self.warnings,
            "items": [item.to_dict() for item in self.items],
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The report as one JSON document."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def __str__(self) -> str:
        header = (
            "status",
            "source",
            "output",
            "matched",
            "missing",
            "unused",
            "aux",
            "copied",
            "transformed",
        )
        rows = []
        for it in self.items:
            rows.append(
                (
                    it.status,
                    it.source,
                    it.output,
                    str(it.matched),
                    str(it.missing),
                    str(it.unused),
                    str(it.auxiliary),
                    human_bytes(it.bytes_copied + it.bytes_linked),
                    human_bytes(it.bytes_transformed),
                )
            )
        lines = render_table(header, rows)
        c = self.counts()
        absent = f", {len(self.absent)} absent" if self.absent else ""
        lines.append(
            f"{c['converted']} converted, {c['skipped']} skipped, {c['failed']} failed{absent} "
            f"-> {self.output_dir} ({self.to})"
        )
        if self.absent:
            lines.append(
                f"absent: {len(self.absent)} step(s) listed in a 'checkpoint' state file are not on "
                f"disk (nothing to convert): {_few(self.absent)}"
            )
        lines += [f"warning: {w}" for w in self.warnings]
        for it in self.items:
            if it.dropped:
                lines.append(
                    f"{it.output}: left out {len(it.dropped)} template entries: {_few(it.dropped)}"
                )
            if it.kept:
                lines.append(f"{it.output}: kept template values of {_few(it.kept)}")
            if it.unused and it.status == "converted":
                lines.append(
                    f"{it.source}: {it.unused} weight entr{'y' if it.unused == 1 else 'ies'} had no "
                    f"place in the target and are not in the output; `ckptbridge plan` lists them"
                )
            lines += [f"{it.source}: note: {note}" for note in it.notes]
            if it.error:
                lines.append(f"{it.source}: error: {it.error}")
            if it.reason:
                lines.append(f"{it.source}: skipped: {it.reason}")
        return "\n".join(lines)


def _few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")
