"""The one target resolver: factories, hints for what looks like a factory, unusable targets."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ckptbridge import CheckpointNotFoundError, ConversionError, UnsupportedCheckpointError
from ckptbridge.sides import describe_target, load_factory


def test_a_dotted_factory_gets_a_colon_hint() -> None:
    with pytest.raises(
        CheckpointNotFoundError,
        match=r"^target 'myproject\.models\.build' is not a checkpoint path; as a model factory it "
        r"needs a colon between module and function: did you mean 'myproject\.models:build'\?$",
    ):
        describe_target("myproject.models.build")


def test_a_missing_checkpoint_with_dots_is_not_taken_for_a_factory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"^no checkpoint at "):
        describe_target(str(tmp_path / "run.v2.model.ckpt"))


@pytest.fixture()
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "cb_targets.py").write_text("SIZE = 3\ndef build():\n    return 'a model'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "cb_targets"
    sys.modules.pop("cb_targets", None)


def test_a_non_callable_factory_is_named_with_the_fix(module: str) -> None:
    with pytest.raises(
        ConversionError,
        match=r"^target 'cb_targets:SIZE' is an int, not a model factory: expected a function "
        r"\(or class\) that returns a built model\. Fix: name the function that builds the model, "
        r"e\.g\. 'cb_targets:build_model'$",
    ):
        load_factory(f"{module}:SIZE")


def test_a_factory_returning_no_model_is_named(module: str) -> None:
    with pytest.raises(
        ConversionError, match=r"^target 'cb_targets:build': build\(\) returned a str"
    ):
        load_factory(f"{module}:build")


def test_an_object_that_is_no_target_names_its_type() -> None:
    with pytest.raises(UnsupportedCheckpointError, match=r"^target an int is not usable: expected"):
        describe_target(3)
