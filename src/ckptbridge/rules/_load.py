"""Load rules from YAML, TOML, JSON, a dict or a shipped preset, with errors that say where.

>>> load_rules(None) == Rules()
True
>>> load_rules({"map": {"fc/weights": "dense/kernel"}}).map
{'fc/weights': 'dense/kernel'}
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ckptbridge._errors import RulesError
from ckptbridge.rules._model import KeyTransform, Rename, Rules
from ckptbridge.rules._options import Options
from ckptbridge.rules._steps import STEP_TYPES

__all__ = ["available_presets", "expand_presets", "load_rules", "rules_json_schema"]

_SUFFIXES = (".yaml", ".yml", ".toml", ".json")


def rules_json_schema() -> dict[str, Any]:
    """The JSON Schema of a rules document (what ``ckptbridge schema`` prints).

    >>> rules_json_schema()["title"]
    'Rules'
    """
    return Rules.model_json_schema()


RulesLike = Rules | Mapping[str, Any] | str | os.PathLike[str] | None
"""Rules as users pass them: ``None``, :class:`Rules`, a dict, a file path or ``"preset:NAME"``."""


def load_rules(rules: RulesLike) -> Rules:
    """Return validated :class:`Rules` with presets merged in.

    ``None`` -> ``Rules()``; a ``Rules`` or dict; ``"preset:NAME"`` -> a shipped preset; a path
    ending ``.yaml``/``.yml``/``.toml``/``.json`` -> that file. Errors are :class:`RulesError`
    naming the file, the line when known, and the rule (``rules.yaml: rename[2].pattern: ...``).

    >>> load_rules("preset:slim-vgg16").rename[0].replace
    'block\\\\1_conv\\\\2/\\\\3'
    """
    if rules is None:
        return Rules()
    if isinstance(rules, Rules):
        return expand_presets(rules)
    if isinstance(rules, Mapping):
        return expand_presets(_validate(dict(rules), "rules", None))
    if not isinstance(rules, (str, os.PathLike)):
        raise RulesError(
            f"rules: expected None, a Rules object, a dict, 'preset:NAME' or a path to a "
            f".yaml/.toml/.json file; got {type(rules).__name__}"
        )
    text = os.fspath(rules)
    if text.startswith("preset:"):
        return expand_presets(_load_preset(text[len("preset:") :]))
    return expand_presets(_load_file(Path(text)))


def available_presets() -> list[str]:
    """Names of the shipped presets (usable as ``"preset:NAME"``)."""
    from importlib import resources  # only presets need it: kept off the default path

    folder = resources.files("ckptbridge.presets")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def expand_presets(rules: Rules, _seen: tuple[str, ...] = ()) -> Rules:
    """Merge ``rules.presets`` in front of ``rules`` (recursively); the result has no presets.

    Preset renames and transforms come first (first match wins); the user's ``map`` entries and
    explicitly set options override the preset's.
    """
    if not rules.presets:
        return rules
    merged = Rules()
    for name in rules.presets:
        if name in _seen:
            raise RulesError(f"preset {name!r} includes itself (via {' -> '.join(_seen)})")
        merged = _merge(merged, expand_presets(_load_preset(name), (*_seen, name)))
    return _merge(merged, rules.model_copy(update={"presets": ()}))


def _merge(base: Rules, top: Rules) -> Rules:
    # The top's options that are not defaults override the base's (shipped presets set none, so
    # a user's option always wins over a preset's).
    default = Options()
    changed = {
        f.name: getattr(top.options, f.name)
        for f in dataclasses.fields(Options)
        if getattr(top.options, f.name) != getattr(default, f.name)
    }
    return Rules(
        rename=(*base.rename, *top.rename),
        map={**base.map, **top.map},
        ignore=(*base.ignore, *top.ignore),
        ignore_target=(*base.ignore_target, *top.ignore_target),
        transforms=(*base.transforms, *top.transforms),
        options=dataclasses.replace(base.options, **changed),
    )


def _load_preset(name: str) -> Rules:
    names = available_presets()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean 'preset:{close[0]}'?" if close else ""
        raise RulesError(
            f"unknown preset {name!r}.{hint} Shipped presets: {', '.join(names) or '(none)'}"
        )
    from importlib import resources

    text = resources.files("ckptbridge.presets").joinpath(f"{name}.yaml").read_text("utf-8")
    return _validate(_parse_yaml(text, f"preset:{name}"), f"preset:{name}", text)


def _load_file(path: Path) -> Rules:
    label = str(path)
    if path.suffix.lower() not in _SUFFIXES:
        raise RulesError(
            f"{label}: unknown rules format {path.suffix or '(no suffix)'!r}; expected a file "
            f"ending in {', '.join(_SUFFIXES)}, a dict, or 'preset:NAME'"
        )
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise RulesError(f"{label}: rules file not found; check the path") from None
    except OSError as exc:
        raise RulesError(f"{label}: cannot read the rules file: {exc.strerror}") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        data = _parse_toml(text, label)
        return _validate(data, label, None)
    if suffix == ".json":
        data = _parse_json(text, label)
        return _validate(data, label, None)
    return _validate(_parse_yaml(text, label), label, text)


def _parse_yaml(text: str, label: str) -> Any:
    import yaml  # only rules files need it: kept off the start-up of every command

    # libyaml's scanner and parser when PyYAML was built with them: the same safe constructor and
    # resolver (so the same values), parsed 3-6x faster (a fresh process's first parse: 0.5 ms of
    # a one-rule file, 3 ms of the bert preset). A document it refuses is parsed again by PyYAML's
    # own parser, as before: the same line, and messages that name the character at fault.
    if hasattr(yaml, "CSafeLoader"):
        with contextlib.suppress(yaml.YAMLError):
            return yaml.load(text, Loader=yaml.CSafeLoader)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError(f"{label}{where}: not valid YAML: {problem}") from None


def _parse_toml(text: str, label: str) -> Any:
    if sys.version_info >= (3, 11):  # only for a TOML rules file
        import tomllib
    else:  # Python 3.10: the same parser, as the tomli package
        import tomli as tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+)", str(exc))
        where = f":{m.group(1)}" if m else ""
        raise RulesError(f"{label}{where}: not valid TOML: {exc}") from None


def _parse_json(text: str, label: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RulesError(f"{label}:{exc.lineno}: not valid JSON: {exc.msg}") from None


def _validate(data: Any, label: str, yaml_text: str | None) -> Rules:
    if data is None:
        return Rules()
    if not isinstance(data, dict):
        raise RulesError(
            f"{label}: a rules document must be a mapping (rename, map, ignore, ...), "
            f"got {type(data).__name__}"
        )
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(err, label, yaml_text) for err in exc.errors()]
        raise RulesError("\n".join(lines)) from None


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _format_error(err: Any, label: str, yaml_text: str | None) -> str:
    loc = tuple(err["loc"])
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        # A plain step or Options checks its values itself: "FIELD: message" names the field.
        field, sep, rest = msg.partition(": ")
        if sep and field in _all_fields():
            loc, msg = (*loc, field), rest
    line = _yaml_line(yaml_text, loc) if yaml_text is not None else None
    where = f"{label}:{line}" if line is not None else label
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        close = difflib.get_close_matches(str(loc[-1]), sorted(_all_fields()), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        msg = f"unknown field {loc[-1]!r}.{hint}"
    elif err["type"] == "union_tag_invalid":
        msg = f"unknown op: {msg}"
    return f"{where}: {_format_loc(loc)}: {msg}"


def _all_fields() -> set[str]:
    names: set[str] = set()
    for model in (Rules, Rename, KeyTransform):
        names.update(model.model_fields)
    for plain in (Options, *STEP_TYPES):
        names.update(f.name for f in dataclasses.fields(plain))
    return names


def _yaml_line(text: str, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (the deepest one that exists)."""
    import yaml

    try:
        node: Any = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            nxt = None
            for key, value in node.value:
                if key.value == str(part):
                    line, nxt = key.start_mark.line + 1, value
                    break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
            if node is not None:
                line = node.start_mark.line + 1
        else:
            node = None
    return line
