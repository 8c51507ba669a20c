"""Doctest collection over ``src/ckptbridge`` (``pytest --doctest-modules``; tox env ``py``).

The test suite's own fixtures and settings are in ``tests/conftest.py``. pytest reads this file for
both ``tests`` and ``src``; it only leaves out modules that cannot or should not be imported to
collect their examples.
"""

from __future__ import annotations

import importlib.util

collect_ignore = [
    # No examples. Collecting a module reads every name its __dir__ lists, and the package's
    # lazy ckptbridge.NotFoundError imports TensorFlow (seconds) when TensorFlow is installed.
    "src/ckptbridge/__init__.py",
]
if importlib.util.find_spec("apache_beam") is None:
    collect_ignore.append("src/ckptbridge/beam.py")  # imports Apache Beam (extra "beam")
