"""format._storage: local paths unchanged, URLs read by byte range (memory://, HTTP, S3 on moto)."""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pytest

import ckptbridge
from ckptbridge.format import (
    BundleWriter,
    RemotePath,
    _storage,
    as_location,
    open_checkpoint,
    resolve_checkpoint,
    write_state_file,
)
from remote_servers import http_range_server, moto_s3, upload


def _write_run(directory: Path, big: int = 4) -> dict[str, np.ndarray]:
    """A training directory with two steps and a state file; ``big`` MiB in one tensor."""
    rng = np.random.default_rng(0)
    values = {
        "dense/kernel": rng.standard_normal((big * 1024, 256)).astype(np.float32),
        "dense/bias": np.arange(256, dtype=np.float32),
        "names": np.array([b"a", b"bc"], dtype=object),
        "global_step": np.int64(7),
    }
    for step in (5, 7):
        with BundleWriter(directory / f"model.ckpt-{step}") as writer:
            for key, value in values.items():
                writer.add(key, value)
            writer.add_slice("emb", (6, 2), (0, 0), np.ones((3, 2), np.float32))
            writer.add_slice("emb", (6, 2), (3, 0), np.zeros((3, 2), np.float32))
    write_state_file(directory, "model.ckpt-7", ["model.ckpt-5", "model.ckpt-7"])
    return values


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("run")
    _write_run(directory)
    return directory


@pytest.fixture()
def memory_run(run_dir: Path) -> str:
    fs = fsspec.filesystem("memory")
    if fs.exists("/bucket"):
        fs.rm("/bucket", recursive=True)
    upload(run_dir, "memory://bucket/run")
    return "memory://bucket/run"


def test_remote_path_is_a_small_pathlib() -> None:
    p = RemotePath("memory://bucket/run/model.ckpt-5.index")
    assert (p.name, str(p.parent)) == ("model.ckpt-5.index", "memory:///bucket/run")
    assert p.with_suffix("").name == "model.ckpt-5"
    assert str(p.parent / "checkpoint") == "memory:///bucket/run/checkpoint"
    assert p == RemotePath("memory:///bucket/run/model.ckpt-5.index") and p.is_absolute()
    assert as_location("runs/x") == Path("runs/x")
    assert as_location("file:///tmp/x") == Path("/tmp/x")
    assert isinstance(as_location("s3://bucket/x"), RemotePath)


def test_memory_checkpoint_reads_as_the_local_one(run_dir: Path, memory_run: str) -> None:
    for given in (memory_run, f"{memory_run}/model.ckpt-7.index", f"{memory_run}/model.ckpt-7"):
        prefix, warnings = resolve_checkpoint(given)
        assert (str(prefix), warnings) == ("memory:///bucket/run/model.ckpt-7", [])
    with open_checkpoint(memory_run) as remote, open_checkpoint(run_dir) as local:
        assert remote.entries == local.entries
        for key in local.entries:
            np.testing.assert_array_equal(remote.read(key), local.read(key))
    assert (
        ckptbridge.inspect(memory_run).to_dict()["entries"]
        == (ckptbridge.inspect(run_dir).to_dict()["entries"])
    )


def test_a_tensor_is_fetched_in_parallel_parts_and_crc_checked(
    run_dir: Path, memory_run: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_storage, "PART", 1 << 16)  # 4 MiB tensor -> 64 ranged requests
    with open_checkpoint(memory_run) as ckpt:
        np.testing.assert_array_equal(
            ckpt.read("dense/kernel"), ckptbridge.load_variables(run_dir)["dense/kernel"]
        )
        loc = ckpt.raw_location("dense/kernel")
    assert loc is not None and isinstance(loc.path, RemotePath)
    fs = fsspec.filesystem("memory")
    data = bytearray(fs.cat_file(loc.path.path))
    data[loc.offset + 1000] ^= 0xFF
    fs.pipe_file(loc.path.path, bytes(data))
    with (
        open_checkpoint(memory_run) as ckpt,
        pytest.raises(ckptbridge.CorruptCheckpointError, match=r"fails its CRC32C check"),
    ):
        ckpt.read("dense/kernel")


def test_state_file_with_absolute_paths_of_another_machine(memory_run: str) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe_file(
        "/bucket/run/checkpoint", b'model_checkpoint_path: "/home/someone/train/model.ckpt-5"\n'
    )
    prefix, warnings = resolve_checkpoint(memory_run)
    assert str(prefix) == "memory:///bucket/run/model.ckpt-5"
    assert warnings == [
        "memory:///bucket/run/checkpoint names '/home/someone/train/model.ckpt-5', which does "
        "not exist; using model.ckpt-5 beside the state file"
    ]
    fs.pipe_file(
        "/bucket/run/checkpoint", b'model_checkpoint_path: "memory://bucket/run/model.ckpt-7"\n'
    )
    assert str(resolve_checkpoint(memory_run)[0]) == "memory:///bucket/run/model.ckpt-7"


def test_missing_objects_and_backends_are_one_line_errors(memory_run: str) -> None:
    with pytest.raises(
        ckptbridge.CheckpointNotFoundError,
        match=r"^no checkpoint at memory:///bucket/nope/m: looked for memory:///bucket/nope/m\.index ",
    ):
        open_checkpoint("memory://bucket/nope/m")
    with pytest.raises(ckptbridge.StorageError, match=r"^nope:// is not a protocol fsspec knows; "):
        open_checkpoint("nope://bucket/x")
    with pytest.raises(
        ckptbridge.StorageError,
        match=r"^gs:// paths need fsspec's backend for 'gs', which is not installed \(.*gcsfs.*\)$",
    ):
        open_checkpoint("gs://bucket/x")


def test_http_inspect_moves_only_the_index(run_dir: Path) -> None:
    index = run_dir / "model.ckpt-7.index"
    data = run_dir / "model.ckpt-7.data-00000-of-00001"
    with http_range_server(run_dir) as (base, counter):
        counter.sent = 0
        info = ckptbridge.inspect(f"{base}/model.ckpt-7")
        assert len(info.entries) == 5
        assert counter.sent == index.stat().st_size  # not one byte of the 4 MiB data shard
        counter.sent = 0
        with open_checkpoint(f"{base}/model.ckpt-7") as ckpt:
            bias = ckpt.read("dense/bias")
        np.testing.assert_array_equal(bias, np.arange(256, dtype=np.float32))
        assert counter.sent == index.stat().st_size + bias.nbytes
        assert data.stat().st_size > 4 << 20


def test_every_reading_verb_against_s3_on_moto(run_dir: Path) -> None:
    with moto_s3():
        upload(run_dir, "s3://ckpts/runs/a")
        url = "s3://ckpts/runs/a"
        assert str(resolve_checkpoint(url)[0]) == "s3://ckpts/runs/a/model.ckpt-7"
        remote, local = ckptbridge.load_variables(url), ckptbridge.load_variables(run_dir)
        assert remote.keys() == local.keys()
        for key in local:
            np.testing.assert_array_equal(remote[key], local[key])
        report = ckptbridge.tools.diff(url, run_dir)
        assert report.identical
        plan = ckptbridge.plan(url, str(run_dir))
        assert plan.complete and len(plan.matches) == 4
