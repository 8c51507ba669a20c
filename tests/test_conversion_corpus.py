"""Real third-party checkpoints convert with the rules that `plan --emit-rules` wrote."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from ckptbridge.cli import _commands as commands
from ckptbridge.engine import classify_auxiliary
from ckptbridge.format import BundleWriter, open_checkpoint

# (folder, checkpoint prefix inside it): TF1 V2 bundles, partitioned entries included
CASES = [
    ("AlZi-88__IntroductionInTensorFlow", "model.ckpt"),
    ("CR-Ko__BNN", "model-basic/model.ckpt"),
    ("Miao0O__hori_verti_line_recognization", "model.ckpt-8000"),
    ("TheButlah__makrl", "model/model.ckpt"),
    ("Hishmad__basic-machine-learning", "iris_model/model.ckpt-8000"),
    ("jncharon__wine-classifier", "model/model.ckpt-3374"),
    ("k-macmillan__ResearchProject_HTRU2", "model/model.ckpt-14318"),
    ("DaegyuLim__Collision_Detection_Network", "model/model.ckpt"),
    ("fv0008__char-rnn-writer", "model.ckpt"),
]


def _run(add: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    getattr(commands, f"add_{add}")(sub)
    args = parser.parse_args([add, *argv])
    return int(getattr(commands, f"run_{add}")(args))


@pytest.mark.parametrize(("folder", "name"), CASES, ids=[c[0] for c in CASES])
def test_corpus_identity_conversion_with_emitted_rules(
    corpus: Path, folder: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = corpus / folder / name
    rules = tmp_path / "rules.yaml"
    assert _run("plan", [str(src), "--target", str(src), "--emit-rules", str(rules)]) == 0
    code = _run("convert", [str(src), "--target", str(src), "--out", str(tmp_path / "out"),
                            "--rules", str(rules), "--verify", "--json"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    with open_checkpoint(src) as a, open_checkpoint(tmp_path / "out" / src.name) as b:
        for key, entry in b.entries.items():
            assert a.entries[key].shape == entry.shape
            assert a.read(key).tobytes() == b.read(key).tobytes(), key
        left_out = set(a.entries) - set(b.entries)
        assert all(classify_auxiliary(k, a.entries[k].shape) for k in left_out), left_out


@pytest.mark.parametrize(("folder", "name"), CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_corpus_to_a_renamed_template(
    corpus: Path, folder: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = corpus / folder / name
    template = tmp_path / "tpl" / "renamed.ckpt"
    with open_checkpoint(src) as ckpt, BundleWriter(template) as w:
        keys = [k for k, e in ckpt.entries.items() if not classify_auxiliary(k, e.shape)]
        for key in keys:
            e = ckpt.entries[key]
            w.add(f"migrated/{key}", np.zeros(e.shape, ckpt.read(key).dtype))
    user_rules = tmp_path / "user.yaml"
    user_rules.write_text("rename:\n  - {pattern: '(.*)', replace: 'migrated/\\1'}\n")
    emitted = tmp_path / "emitted.json"
    assert _run("plan", [str(src), "--target", str(template), "--rules", str(user_rules),
                         "--emit-rules", str(emitted)]) == 0  # fmt: skip
    code = _run("convert", [str(src), "--target", str(template), "--out", str(tmp_path / "out"),
                            "--rules", str(emitted)])  # fmt: skip
    assert code == 0, capsys.readouterr().out
    with open_checkpoint(src) as a, open_checkpoint(tmp_path / "out" / src.name) as b:
        assert sorted(b.entries) == sorted(f"migrated/{k}" for k in keys)
        for key in keys:
            assert a.read(key).tobytes() == b.read(f"migrated/{key}").tobytes()
