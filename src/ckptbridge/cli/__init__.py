"""The ``ckptbridge`` command line (also ``python -m ckptbridge``): the top layer.

``_main`` parses arguments and turns errors into one line and an exit code; ``_commands`` holds one
``run_<command>`` per command, each calling the public API below it::

    $ ckptbridge inspect old/model.ckpt-1000 --json
"""

from __future__ import annotations

from ckptbridge.cli._main import main

__all__ = ["main"]
