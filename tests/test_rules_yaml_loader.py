"""Rules files parse through libyaml when PyYAML has it: the same Rules, the same error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ckptbridge import RulesError
from ckptbridge.rules import available_presets, load_rules

RULES = """\
rename:
  - {pattern: '^vgg_16/conv(\\d)/', replace: 'block\\1/'}
  - pattern: "fc(6|7)"
    replace: dense_\\1
ignore: ['global_step', '.*/Momentum$']
transforms:
  - target: '.*kernel'
    steps: [{op: add, value: 0.5}, {op: cast, dtype: float16}]
options: {strict: false}
"""


def _without_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")
def test_libyaml_and_pyyaml_give_the_same_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RULES)
    presets = [f"preset:{name}" for name in available_presets()]
    fast = [load_rules(path), *map(load_rules, presets)]
    _without_libyaml(monkeypatch)
    assert fast == [load_rules(path), *map(load_rules, presets)]


@pytest.mark.parametrize("libyaml", [True, False], ids=["libyaml", "pyyaml"])
@pytest.mark.parametrize(
    ("text", "message"),
    [  # libyaml alone says "found character that cannot start any token", naming no character
        ("rename:\n\t- x\n", r"r\.yaml:2: not valid YAML: found character '\\t' that cannot"),
        ("ignore: [a]\nmap: {a: @b}\n", r"r\.yaml:2: not valid YAML: found character '@' that"),
        ("map:\n  a: b\n c: [\n", r"r\.yaml:3: not valid YAML"),
    ],
)
def test_a_refused_file_reports_pyyamls_message_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, libyaml: bool, text: str, message: str
) -> None:
    if not libyaml:
        _without_libyaml(monkeypatch)
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(RulesError, match=message):
        load_rules(path)
