"""Shard reuse: whole-shard copies beside the CRC32C checks of what they hold."""

from __future__ import annotations

import pytest

from ckptbridge.conversion._link import _run_all


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
