"""Rules models (rules/_model.py) and loaders (rules/_load.py): YAML, TOML, JSON, dict, presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ckptbridge.rules as rules_pkg
from ckptbridge import RulesError
from ckptbridge.rules import (
    Reshape,
    Rules,
    Transpose,
    available_presets,
    load_rules,
    rules_json_schema,
)

YAML = """\
version: 1
rename:
  - {pattern: 'vgg_16/conv(\\d)/conv\\1_(\\d)/(.*)', replace: 'block\\1_conv\\2/\\3'}
map:
  fc2/weights: dense_2/kernel
ignore: ['global_step', '.*/Adam(_1)?']
transforms:
  - target: 'fc1/kernel'
    steps: [{op: reshape, shape: [25088, 4096]}]
options: {use_ema: true}
"""

TOML = """\
ignore = ["global_step"]

[map]
"fc2/weights" = "dense_2/kernel"

[[rename]]
pattern = 'vgg_16/conv(\\d)/conv\\1_(\\d)/(.*)'
replace = 'block\\1_conv\\2/\\3'

[[transforms]]
target = "fc1/kernel"
steps = [{op = "transpose", perm = [1, 0]}]
"""


def test_public_names() -> None:
    assert rules_pkg.__all__ == sorted(rules_pkg.__all__, key=lambda n: (n[0].islower(), n))
    for name in rules_pkg.__all__:
        assert hasattr(rules_pkg, name)


def test_none_and_rules_pass_through() -> None:
    assert load_rules(None) == Rules()
    r = Rules(map={"a": "b"})
    assert load_rules(r) is r


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(YAML)
    r = load_rules(path)
    assert r.rename[0].replace == "block\\1_conv\\2/\\3"
    assert r.map == {"fc2/weights": "dense_2/kernel"}
    assert r.ignore == ("global_step", ".*/Adam(_1)?")
    assert r.transforms[0].steps == (Reshape(shape=(25088, 4096)),)
    assert r.options.use_ema is True
    assert load_rules(str(path)) == r


def test_toml_json_and_dict_agree(tmp_path: Path) -> None:
    toml_path = tmp_path / "rules.toml"
    toml_path.write_text(TOML)
    r = load_rules(toml_path)
    assert r.transforms[0].steps == (Transpose(perm=(1, 0)),)
    json_path = tmp_path / "rules.json"
    json_path.write_text(r.model_dump_json())
    assert load_rules(json_path) == r
    assert load_rules(json.loads(r.model_dump_json())) == r


def test_typo_field_names_file_line_and_suggests(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("map: {a: b}\nrenames:\n  - {pattern: x, replace: y}\n")
    with pytest.raises(
        RulesError,
        match=r"^.*rules\.yaml:2: renames: unknown field 'renames'\. Did you mean 'rename'\?$",
    ):
        load_rules(path)


def test_bad_regex_names_rule_index(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rename:\n  - {pattern: a, replace: b}\n  - {pattern: b, replace: c}\n"
                    "  - {pattern: 'conv(\\d', replace: c}\n")  # fmt: skip
    with pytest.raises(RulesError, match=r"rules\.yaml:4: rename\[2\]\.pattern: bad regular expression "
                       r"'conv\(\\\\d': missing \), unterminated subpattern at position 4$"):  # fmt: skip
        load_rules(path)


def test_bad_ignore_regex_names_entry() -> None:
    with pytest.raises(
        RulesError, match=r"^rules: ignore: entry \[1\]: bad regular expression '\['"
    ):
        load_rules({"ignore": ["ok", "["]})


def test_unknown_op_names_location(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"transforms": [{"target": "x", "steps": [{"op": "reshape", "shape": [1]},
                                                                        {"op": "tranpose"}]}]}))  # fmt: skip
    with pytest.raises(
        RulesError, match=r"rules\.json: transforms\[0\]\.steps\[1\]: unknown op: .*'tranpose'"
    ):
        load_rules(path)


def test_bad_field_in_step_names_location() -> None:
    with pytest.raises(RulesError, match=r"^rules: transforms\[0\]\.steps\[0\]\.split\.parts: "):
        load_rules(
            {"transforms": [{"target": "x", "steps": [{"op": "split", "parts": 0, "index": 0}]}]}
        )


def test_parse_errors_name_file_and_line(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "r.yml"
    bad_yaml.write_text("map:\n  a: b\n c: [\n")
    with pytest.raises(RulesError, match=r"r\.yml:3: not valid YAML"):
        load_rules(bad_yaml)
    bad_toml = tmp_path / "r.toml"
    bad_toml.write_text("ignore = [\n")
    with pytest.raises(RulesError, match=r"r\.toml(:\d+)?: not valid TOML"):
        load_rules(bad_toml)
    bad_json = tmp_path / "r.json"
    bad_json.write_text('{"map": \n}')
    with pytest.raises(RulesError, match=r"r\.json:2: not valid JSON"):
        load_rules(bad_json)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"nope\.yaml: rules file not found"):
        load_rules(tmp_path / "nope.yaml")
    with pytest.raises(RulesError, match=r"unknown rules format '\.txt'"):
        load_rules(tmp_path / "rules.txt")


def test_document_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"^rules: expected None, a Rules object, .* got list$"):
        load_rules([1, 2])  # type: ignore[arg-type]
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(
        RulesError, match=r"list\.yaml: a rules document must be a mapping .* got list$"
    ):
        load_rules(path)


def test_presets() -> None:
    assert {"slim-vgg16", "estimator-dnn"} <= set(available_presets())
    vgg = load_rules("preset:slim-vgg16")
    assert vgg.rename[1].replace == "fc1/\\1"
    with pytest.raises(
        RulesError, match=r"^unknown preset 'slim-vg16'\. Did you mean 'preset:slim-vgg16'\?"
    ):
        load_rules("preset:slim-vg16")


def test_presets_merge_in_front() -> None:
    r = load_rules({"presets": ["estimator-dnn"], "rename": [{"pattern": "x", "replace": "y"}],
                    "options": {"use_ema": True}})  # fmt: skip
    assert [x.pattern for x in r.rename][-1] == "x"
    assert r.rename[0].pattern.startswith("dnn/hiddenlayer_0")
    assert r.presets == () and r.options.use_ema is True


def test_json_schema() -> None:
    schema = rules_json_schema()
    assert schema["title"] == "Rules"
    assert schema["additionalProperties"] is False
    assert {"rename", "map", "ignore", "ignore_target", "transforms", "options", "presets"} <= set(
        schema["properties"]
    )


def test_steps_keep_their_op_when_defaults_are_left_out(tmp_path: Path) -> None:
    """A rules file written without defaults must read back: ``op`` tells the step kinds apart."""
    from ckptbridge.rules import KeyTransform, PermuteBlocks, Slice

    rules = Rules(
        transforms=(
            KeyTransform(
                target="lstm/kernel",
                sources=("rnn/kernel",),
                steps=(Slice(axis=0, stop=4), PermuteBlocks(parts=4, order=(0, 2, 1, 3))),
            ),
        )
    )
    data = rules.model_dump(mode="json", exclude_defaults=True)
    assert [s["op"] for s in data["transforms"][0]["steps"]] == ["slice", "permute_blocks"]
    assert Rules.model_validate(data) == rules


def test_a_bad_forget_bias_pattern_is_an_error_when_the_rules_load(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("options:\n  forget_bias_per_key: {'rnn/(cell': 0.8}\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"options\.forget_bias_per_key.*bad regular expression"):
        load_rules(path)
