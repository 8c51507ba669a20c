"""The public surface: a small explicit API, re-exported lazily from private modules."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ckptbridge


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert ckptbridge.__all__ == sorted(ckptbridge.__all__)
    for name in ckptbridge.__all__:
        assert getattr(ckptbridge, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'ckptbridge' has no attribute 'nope'$"):
        ckptbridge.nope  # noqa: B018


def test_every_error_is_a_ckptbridge_error() -> None:
    for name in ckptbridge.__all__:
        obj = getattr(ckptbridge, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, ckptbridge.CkptBridgeError), name


def test_not_found_error_is_also_tensorflows() -> None:
    import tensorflow as tf

    assert issubclass(ckptbridge.NotFoundError, tf.errors.NotFoundError)
    assert issubclass(ckptbridge.NotFoundError, ckptbridge.MappingError)


def test_import_and_file_level_verbs_do_not_import_tensorflow() -> None:
    code = (
        "import sys, ckptbridge\n"
        "ckptbridge.Rules, ckptbridge.MappingPlan, ckptbridge.load_rules, ckptbridge.inspect\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
