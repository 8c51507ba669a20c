"""ckptbridge.beam: a bucket of training runs converted by one Beam pipeline (DirectRunner, two
worker processes, moto's S3 server on loopback), with the local batch's per-item semantics."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import fsspec
import numpy as np
import pytest

from remote_servers import moto_s3, upload

pytest.importorskip("apache_beam")

from ckptbridge.cli import main
from ckptbridge.format import BundleWriter, write_state_file
from ckptbridge.tools import diff

_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def _write_run(directory: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for step in (10, 20):
        with BundleWriter(directory / f"model.ckpt-{step}") as writer:
            writer.add("dense/kernel", rng.standard_normal((64, 32)).astype(np.float32))
            writer.add("dense/bias", rng.standard_normal(32).astype(np.float32))
            writer.add("global_step", np.int64(step))
    write_state_file(directory, "model.ckpt-20", ["model.ckpt-10", "model.ckpt-20"])


def _cli(*argv: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, json.loads(out.getvalue())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for seed, name in enumerate(("a", "b", "bad")):
        _write_run(root / name, seed)
    data = root / "bad" / "model.ckpt-10.data-00000-of-00001"
    damaged = bytearray(data.read_bytes())
    damaged[7] ^= 0xFF
    data.write_bytes(bytes(damaged))
    return root


def test_a_bucket_of_runs_converts_once_and_reruns_idempotently(runs: Path, tmp_path: Path) -> None:
    template = str(runs / "a" / "model.ckpt-20")
    local_out = tmp_path / "local"
    with moto_s3():
        upload(runs, "s3://ckpts/runs")
        beam_args = ("--target", template, "--out", "s3://ckpts/out", "--runner", "beam", "--json")
        code, first = _cli("convert", "s3://ckpts/runs/*/", *beam_args, "--", *_WORKERS)
        assert code == 1  # one damaged checkpoint: reported, not fatal
        assert first["counts"] == {"converted": 5, "skipped": 0, "failed": 1}
        failed = [it for it in first["items"] if it["status"] == "failed"]
        assert [it["source"] for it in failed] == ["s3://ckpts/runs/bad/model.ckpt-10"]
        assert "fails its CRC32C check" in failed[0]["error"] or "CRC32C" in failed[0]["error"]

        code, local = _cli(
            "convert", "s3://ckpts/runs/*/", "--target", template, "--out", str(local_out), "--json"
        )
        for key in ("counts", "to"):
            assert first[key] == local[key]
        assert [(i["source"], i["status"]) for i in first["items"]] == [
            (i["source"], i["status"]) for i in local["items"]
        ]

        s3 = fsspec.filesystem("s3")
        stamps = {p: s3.info(p)["LastModified"] for p in s3.find("ckpts/out")}
        code, again = _cli("convert", "s3://ckpts/runs/*/", *beam_args, "--", *_WORKERS)
        assert again["counts"] == {"converted": 0, "skipped": 5, "failed": 1}
        assert {p: s3.info(p)["LastModified"] for p in s3.find("ckpts/out")} == stamps

        assert s3.cat_file("ckpts/out/a/checkpoint").decode() == (
            'model_checkpoint_path: "model.ckpt-20"\n'
            'all_model_checkpoint_paths: "model.ckpt-10"\n'
            'all_model_checkpoint_paths: "model.ckpt-20"\n'
        )
        assert diff("s3://ckpts/out/b", runs / "b").identical
        assert not [p for p in s3.find("ckpts/out") if ".ckptbridge-beam-" in p]


def test_beam_options_without_the_beam_runner_are_a_usage_error(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "convert",
            str(runs / "a"),
            "--target",
            str(runs / "a"),
            "--out",
            "x",
            "--",
            "--runner=DataflowRunner",
        ]
    )
    assert code == 2
    assert capsys.readouterr().err == (
        "ckptbridge: error: arguments after -- (--runner=DataflowRunner) are Beam pipeline "
        "options; add --runner beam, or drop them\n"
    )
