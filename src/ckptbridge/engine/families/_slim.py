"""TF-slim's nets: the creation order their scope names encode, for checkpoints without a ``.meta``.

A checkpoint lists its keys alphabetically, which is not the order slim made the variables:
``resnet_v1_50/block1/...`` sorts before the root ``resnet_v1_50/conv1``, a unit's ``shortcut``
after its ``conv3``, ``InceptionV3/AuxLogits`` before the stem. Slim's own code fixes that order,
and its names say where each variable sits in it:

- ResNet v1/v2 (``resnet_v1.py``, ``resnet_v2.py``): root ``conv1``, then ``blockB/unit_U`` in
  number order, inside a unit ``preact`` (v2), ``shortcut``, ``conv1``, ``conv2``, ``conv3``; then
  ``postnorm`` (v2) and ``logits``.
- Inception v1-v4 (``inception_v3.py`` & co.): the stem's ``Conv2d_1a_3x3``... and every
  ``Mixed_5b/Branch_1/Conv2d_0b_5x5`` are numbered and lettered in creation order; then
  ``AuxLogits`` and ``Logits``.

Inside a conv scope, ``weights`` and ``biases`` come before ``BatchNorm/{beta, gamma, moving_mean,
moving_variance}`` (slim's ``conv2d`` creates its kernel, then calls its ``normalizer_fn``).

>>> order = slim_order(["resnet_v1_50/logits/biases", "resnet_v1_50/conv1/weights"])
>>> order.family, order.ranks["resnet_v1_50/conv1/weights"]
('TF-slim ResNet v1 (resnet_v1_50)', 0)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from ckptbridge._text import lazy_pattern
from ckptbridge.engine._names import natural_key, strip_key

__all__ = ["SlimOrder", "slim_order"]

_LEAF_RANK = {"weights": 0, "biases": 1, "beta": 2, "gamma": 3, "moving_mean": 4,
              "moving_variance": 5}  # fmt: skip
_RESNET_ROOT = re.compile(r"(resnet_v([12])(?:_\d+)?)/(.+)")
_RESNET_UNIT = lazy_pattern(r"block(\d+)/unit_(\d+)/bottleneck_v[12]/(preact|shortcut|conv(\d+))")
_INCEPTION_ROOT = re.compile(r"(InceptionV[1-4])/(.+)")
_INCEPTION_STEM = lazy_pattern(r"(Conv2d|MaxPool|AvgPool)_\w+")
_INCEPTION_PARTS = {"Mixed": 1, "AuxLogits": 2, "Logits": 3}


class SlimOrder(NamedTuple):
    """The slim net recognised (``family``) and each key's rank in its creation order."""

    family: str
    ranks: dict[str, int]


def _layer_and_leaf(rest: str) -> tuple[str, int] | None:
    """``conv1/BatchNorm/beta`` -> (``conv1``, rank of ``beta`` inside the conv scope)."""
    scope, _, leaf = rest.rpartition("/")
    if leaf not in _LEAF_RANK or not scope:
        return None
    if leaf in ("weights", "biases"):
        return scope, _LEAF_RANK[leaf]
    layer, _, bn = scope.rpartition("/")
    if bn != "BatchNorm":
        return None
    return layer, _LEAF_RANK[leaf]


def _resnet_key(layer: str) -> tuple[Any, ...] | None:
    if layer == "conv1":
        return (0,)
    m = _RESNET_UNIT().fullmatch(layer)
    if m is not None:
        part = {"preact": -1, "shortcut": 0}.get(m.group(3), int(m.group(4) or 0))
        return (1, int(m.group(1)), int(m.group(2)), part)
    return {"postnorm": (2,), "logits": (3,)}.get(layer)


def _inception_key(layer: str) -> tuple[Any, ...] | None:
    head = layer.split("/", 1)[0]
    if _INCEPTION_STEM().fullmatch(head) and "/" not in layer:
        return (0, natural_key(layer))
    part = _INCEPTION_PARTS.get(head.split("_", 1)[0] if head.startswith("Mixed_") else head)
    return None if part is None else (part, natural_key(layer))


_NETS: tuple[tuple[re.Pattern[str], Callable[[str], tuple[Any, ...] | None], str], ...] = (
    (_RESNET_ROOT, _resnet_key, "TF-slim ResNet v{version} ({root})"),
    (_INCEPTION_ROOT, _inception_key, "TF-slim Inception ({root})"),
)


def slim_order(keys: Iterable[str]) -> SlimOrder | None:
    """Slim's creation order of ``keys``, or None unless every key is a variable of one slim net.

    >>> slim_order(["InceptionV3/Mixed_5b/Branch_0/Conv2d_0a_1x1/weights"]).family
    'TF-slim Inception (InceptionV3)'
    """
    names = dict.fromkeys(keys)  # stripped as they are read: most sets fail on their first key
    if not names:
        return None
    for root_rx, layer_key, label in _NETS:
        sort_keys: dict[str, tuple[Any, ...]] = {}
        roots: set[str] = set()
        for key_name in names:
            m = root_rx.fullmatch(strip_key(key_name))
            parsed = _layer_and_leaf(m.groups()[-1]) if m is not None else None
            key = layer_key(parsed[0]) if parsed is not None else None
            if m is None or parsed is None or key is None:
                break
            roots.add(m.group(1))
            sort_keys[key_name] = (*key, parsed[1])
        else:
            if len(roots) == 1:
                root = roots.pop()
                version = root[len("resnet_v")] if root.startswith("resnet_v") else ""
                ranked = sorted(sort_keys, key=lambda n: sort_keys[n])
                return SlimOrder(label.format(root=root, version=version),
                                 {n: i for i, n in enumerate(ranked)})  # fmt: skip
    return None
