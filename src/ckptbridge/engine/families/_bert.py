"""Google's original TF1 BERT, ALBERT and ELECTRA checkpoints, recognised by their names.

Their layouts are fixed by ``modeling.py`` in google-research/bert, /albert and /electra, and
keras-hub's ``BertBackbone``, ``AlbertBackbone`` and ``ElectraBackbone`` name their layers just as
fixed a way. Where both sides are recognised, the family's shipped preset (``preset:bert``,
``preset:albert``, ``preset:electra``) decides every pair by name: query, key and value never by
order, every LayerNorm and bias of ALBERT's one shared layer group too. What the checkpoints hold
beside the encoder (``cls/`` pre-training heads, ELECTRA's generator and discriminator heads,
``AdamWeightDecayOptimizer``'s ``adam_m``/``adam_v``) is left unused and never offered as a
candidate.

>>> family = bert_family(["bert/encoder/layer_0/attention/self/query/kernel"],
...                      ["transformer_layer_0/self_attention_layer/query/kernel"])
>>> family.name, family.preset
('Google BERT (TF1 modeling.py)', 'bert')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ckptbridge.engine._names import strip_key
from ckptbridge.engine.families import may_be_bert

__all__ = ["BertFamily", "bert_family"]

_OPTIMIZER = r"|.*/adam_[mv]"
_KERAS_HUB_LAYER = re.compile(r"(^|/)transformer_layer_\d+/self_attention_layer/query/kernel$")
_KERAS_HUB_ALBERT = re.compile(r"(^|/)group_\d+_inner_layer_\d+/self_attention_layer/query/kernel$")
_ELECTRA_POOLER = (
    "Google ELECTRA has no pooler: modeling.py's pooled output is the first token's hidden state "
    "as it is, while keras-hub's ElectraBackbone adds a tanh Dense 'pooled_dense' that no "
    "checkpoint entry can fill. Restore with strict=False and use sequence_output[:, 0] (what "
    "ELECTRA pooled), or train pooled_dense"
)


@dataclass(frozen=True)
class BertFamily:
    """A recognised family: its ``name``, the ``preset`` that maps it, the checkpoint keys that
    are not the backbone's (``heads``, a regex), and why some targets can never be filled."""

    name: str
    preset: str
    heads: str
    never_in_checkpoint: tuple[tuple[str, str], ...] = ()


_FAMILIES: tuple[tuple[re.Pattern[str], re.Pattern[str], BertFamily], ...] = (
    (
        re.compile(
            r"bert/encoder/transformer/group_\d+/inner_group_\d+/attention_1/self/query/kernel"
        ),
        _KERAS_HUB_ALBERT,
        BertFamily("Google ALBERT (TF1 modeling.py)", "albert", "cls/.*" + _OPTIMIZER),
    ),
    (
        re.compile(r"bert/encoder/layer_\d+/attention/self/query/kernel"),
        _KERAS_HUB_LAYER,
        BertFamily("Google BERT (TF1 modeling.py)", "bert", "cls/.*" + _OPTIMIZER),
    ),
    (
        re.compile(r"electra/encoder/layer_\d+/attention/self/query/kernel"),
        _KERAS_HUB_LAYER,
        BertFamily(
            "Google ELECTRA (TF1 modeling.py)",
            "electra",
            "(generator|generator_predictions|discriminator_predictions)/.*" + _OPTIMIZER,
            (("pooled_dense/(kernel|bias)", _ELECTRA_POOLER),),
        ),
    ),
)


def bert_family(source: Iterable[str], target: Iterable[str]) -> BertFamily | None:
    """The family when ``source`` keys are one of Google's layouts and ``target`` names (or
    aliases) are keras-hub's backbone layers; else None.

    >>> bert_family(["bert/encoder/layer_0/attention/self/query/kernel"], ["dense/kernel"]) is None
    True
    """
    raw = list(source)
    if not may_be_bert(raw):  # every family's pattern ends in query/kernel: one C-level scan
        return None
    sources = list(map(strip_key, raw))
    targets = list(target)
    for src_rx, tgt_rx, family in _FAMILIES:  # map: one C-level call per key, no generator frame
        if any(map(src_rx.fullmatch, sources)) and any(map(tgt_rx.search, targets)):
            return family
    return None
