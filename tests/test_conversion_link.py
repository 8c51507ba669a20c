"""Shard reuse: whole-shard copies beside the CRC32C checks of what they hold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckptbridge import CorruptCheckpointError
from ckptbridge.conversion import _link
from ckptbridge.conversion._actions import Action
from ckptbridge.conversion._link import _run_all
from ckptbridge.engine import Match
from ckptbridge.format import BundleWriter, RawLocation, open_checkpoint


def test_every_job_runs_then_the_first_failure_is_raised() -> None:
    done: list[int] = []

    def job(i: int) -> None:
        done.append(i)
        if i in (3, 5):
            raise ValueError(f"job {i}")

    with pytest.raises(ValueError, match=r"^job 3$"):
        _run_all([lambda i=i: job(i) for i in range(8)], workers=3)
    assert sorted(done) == list(range(8))
    _run_all([], workers=2)


def _two_tensors(tmp_path: Path) -> tuple[Path, list[tuple[Action, RawLocation]]]:
    """A shard holding two tensors at offsets that are not buffer multiples, as located entries."""
    rng = np.random.default_rng(7)
    with BundleWriter(tmp_path / "m.ckpt") as w:
        w.add("a", rng.normal(size=(3,)).astype(np.float32))
        w.add("b", rng.normal(size=(250, 41)).astype(np.float64))
        w.add("c", rng.normal(size=(99, 13)).astype(np.float32))
    with open_checkpoint(tmp_path / "m.ckpt") as ckpt:
        entries = []
        for key in ("c", "b"):  # not in file order: the check sorts them
            loc = ckpt.raw_location(key)
            assert loc is not None
            entries.append((Action(key, "match", loc.dtype, loc.shape, Match(key, (key,))), loc))
    return tmp_path / "m.ckpt.data-00000-of-00001", entries


def test_the_check_reads_each_entry_in_pieces_and_passes_an_intact_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard, entries = _two_tensors(tmp_path)
    monkeypatch.setattr(_link, "_BUFFER", 4096 + 3)  # several reads per entry, a short last one
    _link._check_source(shard, entries)


@pytest.mark.parametrize("buffer", [4096 + 3, 1 << 20])
def test_a_flipped_bit_anywhere_in_an_entry_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, buffer: int
) -> None:
    shard, entries = _two_tensors(tmp_path)
    monkeypatch.setattr(_link, "_BUFFER", buffer)
    b = next(loc for action, loc in entries if action.key == "b")
    data = bytearray(shard.read_bytes())
    data[b.offset + b.size - 1] ^= 0x01  # the last byte of the middle entry
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=r"for 'b' are damaged \(CRC32C mismatch\)"):
        _link._check_source(shard, entries)
