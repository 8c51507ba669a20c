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


@pytest.mark.tf
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


def test_not_found_error_without_tensorflow_is_a_lookup_error() -> None:
    code = (
        "import sys; sys.modules['tensorflow'] = None  # as if not installed\n"
        "import pickle, ckptbridge\n"
        "E = ckptbridge.NotFoundError\n"
        "assert E.__mro__[1:4] == (ckptbridge.MappingError, ckptbridge.CkptBridgeError, ValueError)\n"
        "assert issubclass(E, LookupError) and E.__module__ == 'ckptbridge'\n"
        "e = pickle.loads(pickle.dumps(E('what, where, fix', missing=('dense/kernel',))))\n"
        "assert (str(e), e.missing) == ('what, where, fix', ('dense/kernel',))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_optional_package_is_one_line_naming_the_extra() -> None:
    from ckptbridge._optional import import_tensorflow, require

    with pytest.raises(
        ckptbridge.MissingDependencyError,
        match=r"^a test needs no_such_pkg, which is not installed\. Fix: pip install no_such_pkg$",
    ):
        require("no_such_pkg", "a test")
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "from ckptbridge._optional import import_tensorflow\n"
        "try:\n"
        "    import_tensorflow('a tf.Module target')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout == (
        "a tf.Module target needs TensorFlow, which is not installed. "
        "Fix: pip install 'ckptbridge[tf]'\n"
    )
    assert import_tensorflow is not None
