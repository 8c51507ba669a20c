"""The README's examples are real: its rules document validates, its commands exist."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ckptbridge.cli._main import COMMANDS, build_parser
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


def _synopsis() -> dict[str, str]:
    """Command -> its synopsis text (continuation lines joined), from the README."""
    text = README.split("## Command line", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("ckptbridge "):
            current = line.split()[1]
            entries[current] = line
        elif line.strip() and current:
            entries[current] += " " + line.strip()
    return entries


def test_every_command_in_the_readme_exists() -> None:
    listed = {name for name in _synopsis() if not name.startswith("[")}
    assert listed == set(COMMANDS)


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        opt
        for action in parser._actions  # argparse has no public accessor
        for opt in action.option_strings
        if opt.startswith("--") and opt != "--help"
    }


def test_the_synopsis_lists_every_flag_of_every_parser() -> None:
    parser = build_parser()
    synopsis = _synopsis()
    top = next(text for name, text in synopsis.items() if name.startswith("["))
    assert _long_options(parser) <= set(re.findall(r"--[\w-]+", top))
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        assert _long_options(sub) == set(re.findall(r"--[\w-]+", synopsis[name])), name


def test_the_synopsis_lists_every_output_kind() -> None:
    from ckptbridge.conversion._target import TO_KINDS

    for name in ("plan", "convert"):
        assert f"--to {'|'.join(TO_KINDS)}" in _synopsis()[name]


def test_the_two_commands_are_there_and_ci_runs_the_second() -> None:
    assert "python3 -m pip install '.[tf]' && python3 examples/quickstart.py" in README
    assert "python3 -m pip install tox && python3 -m tox run-parallel --parallel-live" in README
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m pip install --quiet tox && python3 -m tox run-parallel --parallel-live" in ci
