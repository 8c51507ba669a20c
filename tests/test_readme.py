"""The README's examples are real: its rules document validates, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from ckptbridge.cli._main import COMMANDS
from ckptbridge.rules import load_rules

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_the_readme_rules_document_validates(tmp_path: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no yaml block"
    path = tmp_path / "rules.yaml"
    path.write_text(blocks[0], encoding="utf-8")
    rules = load_rules(path)
    assert rules.map == {"fc2/weights": "dense_2/kernel"}
    assert rules.rename[0].pattern == r"vgg_16/conv(\d)/conv\1_(\d)/weights"


def test_every_command_in_the_readme_exists() -> None:
    synopsis = README.split("## Command line", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^ckptbridge (\w+)", synopsis, flags=re.M))
    assert listed == set(COMMANDS)


def test_the_two_commands_are_there_and_ci_runs_the_second() -> None:
    assert "python3 -m pip install . && python3 examples/quickstart.py" in README
    assert "python3 -m pip install tox && python3 -m tox" in README
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m pip install --quiet tox && python3 -m tox" in ci
