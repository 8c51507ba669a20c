"""Model families the engine recognises by their variable names alone (pure, no I/O).

A family fills in what a checkpoint does not record: the creation order that TF-slim's scope
names encode (ResNet, Inception: :func:`slim_order`), for checkpoints saved without a ``.meta``;
or the whole correspondence, where Google's BERT, ALBERT and ELECTRA layouts meet keras-hub's
backbones (:func:`bert_family`: the family's shipped preset decides by name). The plan names the
family it recognised (``MappingPlan.family``) and every match it decided.

>>> slim_order(["resnet_v1_50/conv1/weights"]).family
'TF-slim ResNet v1 (resnet_v1_50)'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ckptbridge._optional import lazy_exports
from ckptbridge.engine.families._slim import SlimOrder, slim_order

if TYPE_CHECKING:
    from ckptbridge.engine.families._bert import BertFamily, bert_family

__all__ = ["BertFamily", "SlimOrder", "bert_family", "slim_order"]


def may_be_bert(keys: Iterable[str]) -> bool:
    """Whether ``keys`` may be one of Google's BERT layouts: every family's key pattern ends in
    ``query/kernel`` (one C-level scan). :func:`bert_family` is None otherwise, so the engine
    imports it only when this holds.

    >>> may_be_bert(["fc/weights", "fc/biases"])
    False
    """
    return "query/kernel" in "\n".join(keys)


# ``BertFamily`` and ``bert_family`` (its patterns and presets' names), imported on first use.
__getattr__ = lazy_exports(__name__, {"BertFamily": "_bert", "bert_family": "_bert"})
