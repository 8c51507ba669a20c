"""Speculative whole-shard copies: adopted when the conversion copies that shard whole, otherwise
cancelled and deleted; the output is the same bytes either way and every CRC is still checked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckptbridge.cli import main
from ckptbridge.conversion import _speculate, run_conversion
from ckptbridge.conversion._stage import STAGE_PREFIX
from ckptbridge.format import BundleWriter, open_checkpoint, write_state_file
from ckptbridge.tools import verify

REPO = Path(__file__).resolve().parents[1]
KEYS = [f"layer_{i}/kernel" for i in range(4)]


@pytest.fixture(autouse=True)
def _small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    """Speculate on the small shards of these tests, in several pieces each."""
    monkeypatch.setattr(_speculate, "MIN_SIZE", 1)
    monkeypatch.setattr(_speculate, "PIECE", 16 << 10)
    _speculate.LAST.clear()


def _write_src(directory: Path) -> Path:
    rng = np.random.default_rng(11)
    with BundleWriter(directory / "model.ckpt") as w:
        for key in KEYS:
            w.add(key, rng.normal(size=(64, 256)).astype(np.float32))
    write_state_file(directory, "model.ckpt", ["model.ckpt"])
    return directory


def _shard(prefix: Path) -> Path:
    (found,) = prefix.parent.glob(f"{prefix.name}.data-*")
    return found


def _convert(src: Path, out: Path, *extra: str) -> int:
    argv = ["convert", str(src), "--target", str(src / "model.ckpt"), "--out", str(out)]
    return main([*argv, "--to", "tf1", *extra])


def _states() -> list[str]:
    return [spec.state for session in _speculate.LAST for spec in session.copies]


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _no_leftovers(out: Path) -> None:
    assert not [p for p in out.iterdir() if p.name.startswith(STAGE_PREFIX)]
    assert not [p for p in out.iterdir() if ".reused-" in p.name]
    assert not _speculate._ACTIVE


def test_rename_only_adopts_the_copy_and_writes_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _write_src(tmp_path / "src")
    assert _convert(src, tmp_path / "spec") == 0
    assert _states() == ["adopted"]
    _speculate.LAST.clear()
    with monkeypatch.context() as m:
        m.setattr(_speculate, "MIN_SIZE", 1 << 60)  # no speculation: the copy of today
        assert _convert(src, tmp_path / "plain") == 0
    assert _states() == []
    spec, plain = _files(tmp_path / "spec"), _files(tmp_path / "plain")
    fingerprint = ".model.ckpt.ckptbridge.json"
    assert sorted(spec) == sorted(plain) == [
        fingerprint, "checkpoint", "model.ckpt.data-00000-of-00001", "model.ckpt.index"
    ]  # fmt: skip
    assert {k: v for k, v in spec.items() if k != fingerprint} == {
        k: v for k, v in plain.items() if k != fingerprint
    }
    assert spec["model.ckpt.data-00000-of-00001"] == _shard(src / "model.ckpt").read_bytes()
    assert verify(tmp_path / "spec" / "model.ckpt").ok  # every CRC32C read back
    with (
        open_checkpoint(src / "model.ckpt") as a,
        open_checkpoint(tmp_path / "spec/model.ckpt") as b,
    ):
        assert sorted(b.entries) == sorted(KEYS)
        for key in KEYS:
            np.testing.assert_array_equal(a.read(key), b.read(key))
    _no_leftovers(tmp_path / "spec")


def test_tensorflow_reads_the_adopted_output(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    src = _write_src(tmp_path / "src")
    assert _convert(src, tmp_path / "out") == 0
    assert _states() == ["adopted"]
    reader = tf.train.load_checkpoint(str(tmp_path / "out" / "model.ckpt"))
    with open_checkpoint(src / "model.ckpt") as ckpt:
        for key in KEYS:
            np.testing.assert_array_equal(reader.get_tensor(key), ckpt.read(key))


def test_a_plan_that_transforms_the_shard_cancels_and_deletes_the_copy(tmp_path: Path) -> None:
    src = _write_src(tmp_path / "src")
    rules = tmp_path / "add.yaml"
    rules.write_text("transforms:\n  - {target: '.*', steps: [{op: add, value: 1.0}]}\n")
    out = tmp_path / "out"
    # The CLI does not even start one for rules that transform; started anyway, the conversion
    # cancels it as soon as its plan shows that the shard is not copied whole.
    session = _speculate.begin([str(src)], str(out), str(src / "model.ckpt"))
    assert session is not None
    try:
        report = run_conversion([str(src)], out, target=src / "model.ckpt", rules=str(rules))
        assert report.ok
        assert _states() == ["cancelled"]
        assert not list(session.stage.iterdir())  # deleted at once, not at the end
    finally:
        session.close(failed=False)
    assert not session.stage.exists()
    _no_leftovers(out)
    with open_checkpoint(src / "model.ckpt") as a, open_checkpoint(out / "model.ckpt") as b:
        for key in KEYS:
            np.testing.assert_array_equal(a.read(key) + 1.0, b.read(key))
    _speculate.LAST.clear()
    assert _convert(src, tmp_path / "cli", "--rules", str(rules)) == 0
    assert _states() == []


def test_an_output_already_there_is_skipped_without_any_copy(tmp_path: Path) -> None:
    src = _write_src(tmp_path / "src")
    out = tmp_path / "out"
    assert _convert(src, out) == 0
    before = _files(out)
    _speculate.LAST.clear()
    assert _convert(src, out, "--json") == 0  # skipped: up to date
    assert _states() == []
    assert _files(out) == before
    _no_leftovers(out)
    assert _convert(src, out, "--overwrite") == 0  # converted again: the copy is adopted
    assert _states() == ["adopted"]
    assert _files(out) == before
    _no_leftovers(out)


def test_a_copy_left_unadopted_by_the_plan_is_deleted_at_the_end(tmp_path: Path) -> None:
    src = _write_src(tmp_path / "src")
    out = tmp_path / "out"
    session = _speculate.begin([str(src)], str(out), str(src / "model.ckpt"))
    assert session is not None
    session.copies[0]._done.wait()
    assert _states() == ["copied"]
    session.close(failed=False)
    assert _states() == ["cancelled"]
    assert sorted(os.listdir(out)) == []


@pytest.mark.parametrize("change", ["replaced", "touched"])
def test_a_source_changed_after_the_copy_began_is_not_adopted(tmp_path: Path, change: str) -> None:
    src = _write_src(tmp_path / "src")
    out = tmp_path / "out"
    shard = _shard(src / "model.ckpt")
    session = _speculate.begin([str(src)], str(out), str(src / "model.ckpt"))
    assert session is not None
    try:
        session.copies[0]._done.wait()
        assert _states() == ["copied"]
        if change == "replaced":  # same bytes, another file (inode)
            shutil.copyfile(shard, tmp_path / "new")
            os.replace(tmp_path / "new", shard)
        else:  # same file, another mtime
            st = shard.stat()
            os.utime(shard, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        report = run_conversion([str(src)], out, target=src / "model.ckpt", to="tf1")
        assert report.ok
        assert _states() == ["cancelled"]
    finally:
        session.close(failed=False)
    assert (out / shard.name).read_bytes() == shard.read_bytes()
    assert verify(out / "model.ckpt").ok
    _no_leftovers(out)


def test_a_damaged_source_fails_with_the_same_crc_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write_src(tmp_path / "src")
    shard = _shard(src / "model.ckpt")
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x40  # a bit flipped inside layer_2/kernel
    shard.write_bytes(bytes(data))
    capsys.readouterr()
    assert _convert(src, tmp_path / "spec", "--json") == 1
    spec_report = capsys.readouterr().out
    assert _states() == ["adopted"]  # taken while the check failed; the writer's abort deletes it
    with monkeypatch.context() as m:
        m.setattr(_speculate, "MIN_SIZE", 1 << 60)
        assert _convert(src, tmp_path / "plain", "--json") == 1
    plain_report = capsys.readouterr().out
    assert "crc" in spec_report.lower()
    assert spec_report.replace("spec", "X") == plain_report.replace("plain", "X")
    assert sorted(os.listdir(tmp_path / "spec")) == sorted(os.listdir(tmp_path / "plain")) == []


def test_a_bad_target_leaves_no_output_directory(tmp_path: Path) -> None:
    src = _write_src(tmp_path / "src")
    out = tmp_path / "new" / "out"
    argv = ["convert", str(src), "--target", str(src / "model.ckpt"), "--out", str(out)]
    assert main([*argv, "--to", "tf2"]) == 2  # a TF1 template cannot give TF2 output
    assert _states() == ["cancelled"]  # it had started
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    argv[-1] = str(existing)
    assert main([*argv, "--to", "tf2"]) == 2
    assert existing.is_dir() and not list(existing.iterdir())


def test_a_stale_speculation_directory_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    src = _write_src(tmp_path / "src")
    out = tmp_path / "out"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = out / f"{STAGE_PREFIX}{int(dead.stdout)}-0123456789ab"
    stale.mkdir(parents=True)
    (stale / _shard(src / "model.ckpt").name).write_bytes(b"half a copy")
    assert _convert(src, out) == 0
    assert _states() == ["adopted"]
    assert not stale.exists()
    _no_leftovers(out)


def test_only_a_plain_single_local_checkpoint_is_speculated(tmp_path: Path) -> None:
    src = _write_src(tmp_path / "src")
    target = str(src / "model.ckpt")
    out = str(tmp_path / "out")
    prefix = src / "model.ckpt"
    assert _speculate._single_prefix(str(src)) == prefix
    assert _speculate._single_prefix(str(prefix)) == prefix
    assert _speculate._single_prefix(f"{prefix}*") is None
    assert _speculate._single_prefix("s3://bucket/run") is None
    for state in (
        'model_checkpoint_path: "model.ckpt"\nall_model_checkpoint_paths: "model.ckpt-1"\n',
        'model_checkpoint_path: "model\\.ckpt"\n',
        "model_checkpoint_path: 'model.ckpt'\n",
        'other_field: "model.ckpt"\n',
    ):
        (src / "checkpoint").write_text(state)
        assert _speculate._single_prefix(str(src)) is None, state
    (src / "checkpoint").unlink()
    assert _speculate._single_prefix(str(src)) == prefix  # its only .index
    for args, kw in [
        (([str(src), str(src)], out, target), {}),  # several sources
        (([str(src)], "s3://bucket/out", target), {}),
        (([str(src)], out, "pkg.module:factory"), {}),
        (([str(src)], str(src), target), {}),  # into its own directory: fails
        (([str(src)], out, target), {"rules": "preset:slim-vgg16"}),
    ]:
        assert _speculate.begin(*args, **kw) is None, args  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
    (tmp_path / "file").write_text("")
    assert _speculate.begin([str(src)], str(tmp_path / "file/a/b"), target) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "src"]


def test_the_cli_starts_copying_before_importing_the_conversion() -> None:
    code = (
        "import sys\n"
        "from ckptbridge.cli import _main\n"
        "from ckptbridge.conversion import _speculate as module\n"
        "loaded = {m for m in sys.modules if m.startswith('ckptbridge.')}\n"
        "assert loaded <= {'ckptbridge._errors', 'ckptbridge._optional', 'ckptbridge._text',\n"
        "    'ckptbridge.cli', 'ckptbridge.cli._commands', 'ckptbridge.cli._main',\n"
        "    'ckptbridge.conversion', 'ckptbridge.conversion._speculate'}, sorted(loaded)\n"
        "from ckptbridge.conversion import _link, _stage\n"
        "assert _link._speculate is module and _stage.STAGE_PREFIX == module.STAGE_PREFIX\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO)
