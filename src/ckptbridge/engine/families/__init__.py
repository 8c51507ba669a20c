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

from ckptbridge.engine.families._bert import BertFamily, bert_family
from ckptbridge.engine.families._slim import SlimOrder, slim_order

__all__ = ["BertFamily", "SlimOrder", "bert_family", "slim_order"]
