"""Atomic output: kill -9 at any moment leaves nothing half-written, and the next run completes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ckptbridge.conversion import convert
from ckptbridge.conversion._stage import OLD_MARK, STAGE_PREFIX, clean_stale_stages
from ckptbridge.format import BundleWriter, open_checkpoint, read_state_file, write_state_file

REPO = Path(__file__).resolve().parents[1]
STEPS = (1, 2, 3, 4)


def _write_run(directory: Path) -> Path:
    """A training directory of several steps, written with the native writer (no TensorFlow)."""
    rng = np.random.default_rng(3)
    for step in STEPS:
        with BundleWriter(directory / f"model.ckpt-{step}") as w:
            w.add("dense/kernel", rng.normal(size=(64, 32)).astype(np.float32))
            w.add("dense/bias", rng.normal(size=32).astype(np.float32))
            w.add("global_step", np.array(step, np.int64))
    names = [f"model.ckpt-{s}" for s in STEPS]
    write_state_file(directory, names[-1], names)
    return directory


def _check_complete(out: Path) -> None:
    """Every visible checkpoint reads whole; the state file names only complete ones."""
    for index in out.glob("*.index"):
        prefix = index.with_suffix("")
        with open_checkpoint(prefix) as ckpt:
            for key in ckpt.entries:
                ckpt.read(key)
    state = read_state_file(out) if (out / "checkpoint").exists() else None
    if state is not None:
        for name in state.all_model_checkpoint_paths:
            assert Path(f"{out / Path(name).name}.index").exists(), name


CHILD = (
    "import sys; from ckptbridge.conversion import convert; "
    "r = convert(sys.argv[1], sys.argv[2], target=sys.argv[3]); sys.exit(0 if r.ok else 1)"
)


def test_kill_9_mid_conversion_leaves_nothing_half_written(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src")
    out = tmp_path / "out"
    template = src / "model.ckpt-1"
    env = {**os.environ, "CKPTBRIDGE_DEBUG_PUBLISH_DELAY": "0.15"}
    rng = random.Random(0)
    killed = 0
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(src), str(out), str(template)], env=env, cwd=REPO
        )
        time.sleep(rng.uniform(0.4, 1.6))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            killed += 1
        child.wait(timeout=60)
        _check_complete(out)
    assert killed >= 1
    report = convert(src, out, target=template)
    assert report.ok, str(report)
    assert sorted(i.status for i in report.items) != ["failed"] * len(STEPS)
    _check_complete(out)
    assert not [p for p in out.iterdir() if p.name.startswith(STAGE_PREFIX)]
    assert sorted(p.name for p in out.glob("*.index")) == [f"model.ckpt-{s}.index" for s in STEPS]
    state = read_state_file(out)
    assert state is not None and Path(state.model_checkpoint_path).name == "model.ckpt-4"


def test_stale_stage_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    stale = tmp_path / f"{STAGE_PREFIX}999999999-abc"
    stale.mkdir()
    (stale / "x.data-00000-of-00001").write_bytes(b"partial")
    mine = tmp_path / f"{STAGE_PREFIX}{os.getpid()}-abc"
    mine.mkdir()
    assert clean_stale_stages(tmp_path) == [stale]
    assert not stale.exists() and mine.exists()


def test_the_source_is_never_modified(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in src.iterdir()}
    convert(src, tmp_path / "out", target=src / "model.ckpt-1", link=True)
    convert(src, tmp_path / "out", target=src / "model.ckpt-1", link=True, overwrite=True)
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in src.iterdir()} == before


def test_output_onto_its_own_source_is_refused(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src")
    report = convert(src / "model.ckpt-2", src, target=src / "model.ckpt-1", overwrite=True)
    assert not report.ok
    assert "would replace its own source" in (report.items[0].error or "")
    with open_checkpoint(src / "model.ckpt-2") as ckpt:
        assert int(ckpt.read("global_step")) == 2


OVERWRITE_CHILD = (
    "import sys; from ckptbridge.conversion import convert; "
    "r = convert(sys.argv[1], sys.argv[2], target=sys.argv[3], overwrite=True, "
    "link=sys.argv[4] == '1'); sys.exit(0 if r.ok else 1)"
)


def _complete_per_step(out: Path) -> None:
    """Each step's output is complete under its name, or under the second name the state file
    gives it while it is being replaced; the state file names only complete checkpoints."""
    _check_complete(out)
    state = read_state_file(out)
    assert state is not None
    named = [Path(p).name for p in state.all_model_checkpoint_paths]
    for step in STEPS:
        name = f"model.ckpt-{step}"
        assert any(n == name or n.startswith(name + OLD_MARK) for n in named), (name, named)
    assert Path(f"{out / Path(state.model_checkpoint_path).name}.index").exists()


def test_kill_9_during_overwrite_always_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    out = tmp_path / "out"
    template = src / "model.ckpt-1"
    assert convert(src, out, target=template).ok
    env = {**os.environ, "CKPTBRIDGE_DEBUG_PUBLISH_DELAY": "0.01"}

    def child(link: int) -> subprocess.Popen[bytes]:
        args = [str(src), str(out), str(template), str(link)]
        return subprocess.Popen([sys.executable, "-c", OVERWRITE_CHILD, *args], env=env, cwd=REPO)

    started = time.monotonic()
    assert child(1).wait(timeout=60) == 0  # a whole run: the window the kills fall into
    whole = time.monotonic() - started
    rng = random.Random(12)
    killed = 0
    for i in range(20):
        proc = child(i % 2)  # link and copy outputs have different shard counts
        delay = whole * (0.3 + 0.7 * i / 20) * rng.uniform(0.9, 1.1)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        else:  # ran faster than the measured run (a loaded machine calmed down): aim earlier
            whole = delay
        proc.wait(timeout=60)
        _complete_per_step(out)
    assert killed >= 10
    report = convert(src, out, target=template, overwrite=True)
    assert report.ok, str(report)
    _complete_per_step(out)
    assert sorted(p.name for p in out.glob("*.index")) == [f"model.ckpt-{s}.index" for s in STEPS]
    assert not [p for p in out.iterdir() if OLD_MARK in p.name or STAGE_PREFIX in p.name]
    state = read_state_file(out)
    assert state is not None
    assert [Path(p).name for p in state.all_model_checkpoint_paths] == [
        f"model.ckpt-{s}" for s in STEPS
    ]
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before


def test_a_replacement_cut_short_is_put_back_by_the_next_run(tmp_path: Path) -> None:
    src = _write_run(tmp_path / "src")
    out = tmp_path / "out"
    assert convert(src, out, target=src / "model.ckpt-1").ok
    backup = f"model.ckpt-4{OLD_MARK}999999999-ab"  # a dead process's second name
    for path in out.glob("model.ckpt-4.*"):
        os.replace(path, out / (backup + path.name[len("model.ckpt-4") :]))
    names = [f"model.ckpt-{s}" for s in STEPS[:-1]] + [backup]
    write_state_file(out, backup, names)
    assert clean_stale_stages(out) == [out / f"{backup}.index"]
    state = read_state_file(out)
    assert state is not None and Path(state.model_checkpoint_path).name == "model.ckpt-4"
    assert not list(out.glob(f"*{OLD_MARK}*"))
    with open_checkpoint(out / "model.ckpt-4") as ckpt:
        assert int(ckpt.read("global_step")) == 4


def test_remote_output_is_published_data_first_index_then_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ckptbridge.format._storage import FsspecStore
    from remote_servers import moto_s3

    src = _write_run(tmp_path / "run")
    written: list[str] = []
    failed: list[str] = []
    put, write_bytes = FsspecStore.put, FsspecStore.write_bytes

    def recording_put(self: FsspecStore, local: Path, path: object) -> None:
        if "model.ckpt-3.index" in str(path) and not failed:  # the link drops, once
            failed.append(str(path))
            raise OSError("connection reset (simulated)")
        put(self, local, path)  # type: ignore[arg-type]
        written.append(str(path).rsplit("/", 1)[-1])

    def recording_write(self: FsspecStore, path: object, data: bytes) -> None:
        write_bytes(self, path, data)  # type: ignore[arg-type]
        written.append(str(path).rsplit("/", 1)[-1])

    monkeypatch.setattr(FsspecStore, "put", recording_put)
    monkeypatch.setattr(FsspecStore, "write_bytes", recording_write)
    with moto_s3():
        report = convert(src, "s3://ckpts/out", target=src / "model.ckpt-4")
        assert report.counts() == {"converted": 3, "skipped": 0, "failed": 1}
        for step in (1, 2, 4):
            data = max(i for i, w in enumerate(written) if w.startswith(f"model.ckpt-{step}.data-"))
            fingerprint = written.index(f".model.ckpt-{step}.ckptbridge.json")
            assert data < fingerprint < written.index(f"model.ckpt-{step}.index")
        assert written[-1] == "checkpoint" and written.count("checkpoint") == 1
        state = read_state_file("s3://ckpts/out")
        assert state is not None and state.all_model_checkpoint_paths == [
            "model.ckpt-1", "model.ckpt-2", "model.ckpt-4"
        ]  # fmt: skip
        written.clear()
        again = convert(src, "s3://ckpts/out", target=src / "model.ckpt-4")
        assert again.counts() == {"converted": 1, "skipped": 3, "failed": 0}
        assert [w for w in written if "ckpt-3" not in w] == ["checkpoint"]
        _check_complete_remote("s3://ckpts/out", STEPS)


def _check_complete_remote(url: str, steps: tuple[int, ...]) -> None:
    state = read_state_file(url)
    assert state is not None and state.model_checkpoint_path == f"model.ckpt-{steps[-1]}"
    for name in state.all_model_checkpoint_paths:
        with open_checkpoint(f"{url}/{name}") as ckpt:
            for key in ckpt.entries:
                ckpt.read(key)


def test_a_conversion_publishes_without_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Atomic, not durable (format/_writer.py): no file or directory of the output is fsynced."""

    def no_fsync(fd: int) -> None:
        raise AssertionError("fsync called")

    monkeypatch.setattr(os, "fsync", no_fsync)
    monkeypatch.setattr(os, "fdatasync", no_fsync)
    src = _write_run(tmp_path / "src")
    out = tmp_path / "out"
    assert convert(src, out, target=src / "model.ckpt-1").ok
    assert convert(src, out, target=src / "model.ckpt-1", overwrite=True).ok  # the replacement path
    _check_complete(out)
    assert sorted(p.name for p in out.glob("*.index")) == [f"model.ckpt-{s}.index" for s in STEPS]
