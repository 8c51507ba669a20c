"""``ckptbridge.convert``: re-save checkpoints in another format (TF1 <-> TF2, Keras weights).

The work lives in the :mod:`ckptbridge.conversion` package (not ``ckptbridge.convert``: a subpackage of that name would shadow the public function); this module is its public face.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ckptbridge.conversion._report import ConversionReport, ItemReport
from ckptbridge.conversion._run import run_conversion

if TYPE_CHECKING:
    from ckptbridge.rules import RulesLike
    from ckptbridge.sides._target import TargetLike

__all__ = ["ConversionReport", "ItemReport", "convert"]


def convert(
    src: str | os.PathLike[str],
    dst_dir: str | os.PathLike[str],
    *,
    target: TargetLike,
    rules: RulesLike = None,
    to: str | None = None,
    overwrite: bool = False,
    link: bool = False,
    verify: bool = False,
) -> ConversionReport:
    """Convert checkpoint ``src`` (a prefix, or a training directory: every step) into ``dst_dir``.

    ``target`` decides the output: a TF2 template checkpoint (the output carries its object graph
    with the source's values), a TF1 checkpoint or ``.meta`` file (the output has exactly its
    names, dtypes and shapes), or a model (``to="keras"`` writes ``.weights.h5``). ``to`` defaults
    to the target's kind. Tensors that need no transform are copied byte for byte (``link=True``:
    hard-linked); outputs appear atomically; existing outputs are kept unless ``overwrite``; a
    rerun skips what is done; ``verify`` re-reads every tensor. Failures are reported per item.

    Example::

        report = ckptbridge.convert("old/run", "new/run", target="template/ckpt-1")
        print(report)
        assert report.ok
    """
    return run_conversion(
        [src], dst_dir, target=target, rules=rules, to=to,
        overwrite=overwrite, link=link, verify=verify,
    )  # fmt: skip
