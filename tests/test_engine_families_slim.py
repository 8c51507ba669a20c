"""TF-slim's creation order read back from its names (engine.families._slim), pure."""

from __future__ import annotations

from ckptbridge.engine import VarSpec, derive
from ckptbridge.engine.families import slim_order

UNIT = "resnet_v1_50/block1/unit_1/bottleneck_v1"
BN = ("beta", "gamma", "moving_mean", "moving_variance")


def _conv_bn(scope: str) -> list[str]:
    return [f"{scope}/weights", *(f"{scope}/BatchNorm/{leaf}" for leaf in BN)]


def test_resnet_root_first_then_blocks_units_shortcut_and_logits_last() -> None:
    keys = sorted([
        *_conv_bn("resnet_v1_50/conv1"),
        *_conv_bn(f"{UNIT}/conv3"),
        *_conv_bn(f"{UNIT}/shortcut"),
        *_conv_bn(f"{UNIT}/conv1"),
        "resnet_v1_50/logits/weights",
        "resnet_v1_50/logits/biases",
        *_conv_bn("resnet_v1_50/block2/unit_1/bottleneck_v1/conv1"),
    ])  # fmt: skip
    order = slim_order(keys)
    assert order is not None and order.family == "TF-slim ResNet v1 (resnet_v1_50)"
    ranked = sorted(order.ranks, key=order.ranks.__getitem__)
    assert [k for k in ranked if k.endswith("weights")] == [
        "resnet_v1_50/conv1/weights",
        f"{UNIT}/shortcut/weights",
        f"{UNIT}/conv1/weights",
        f"{UNIT}/conv3/weights",
        "resnet_v1_50/block2/unit_1/bottleneck_v1/conv1/weights",
        "resnet_v1_50/logits/weights",
    ]
    assert ranked[:5] == _conv_bn("resnet_v1_50/conv1")


def test_inception_heads_come_after_the_mixed_blocks() -> None:
    keys = [
        "InceptionV3/AuxLogits/Conv2d_1b_1x1/weights",
        "InceptionV3/Conv2d_2a_3x3/weights",
        "InceptionV3/Logits/Conv2d_1c_1x1/biases",
        "InceptionV3/Mixed_5b/Branch_1/Conv2d_0b_5x5/weights",
        "InceptionV3/Mixed_5b/Branch_1/Conv2d_0a_1x1/BatchNorm/beta",
        "InceptionV3/Conv2d_1a_3x3/BatchNorm/moving_mean",
    ]
    order = slim_order(keys)
    assert order is not None and order.family == "TF-slim Inception (InceptionV3)"
    assert sorted(order.ranks, key=order.ranks.__getitem__) == [
        "InceptionV3/Conv2d_1a_3x3/BatchNorm/moving_mean",
        "InceptionV3/Conv2d_2a_3x3/weights",
        "InceptionV3/Mixed_5b/Branch_1/Conv2d_0a_1x1/BatchNorm/beta",
        "InceptionV3/Mixed_5b/Branch_1/Conv2d_0b_5x5/weights",
        "InceptionV3/AuxLogits/Conv2d_1b_1x1/weights",
        "InceptionV3/Logits/Conv2d_1c_1x1/biases",
    ]


def test_one_foreign_key_and_the_family_is_not_claimed() -> None:
    assert slim_order(["resnet_v1_50/conv1/weights", "my_head/dense/kernel"]) is None
    assert slim_order(["resnet_v1_50/conv1/weights", "resnet_v1_101/conv1/weights"]) is None
    assert slim_order([]) is None


def test_derive_names_the_family_and_pairs_conv_and_batch_norm_layers() -> None:
    """Alphabetically ``block1`` comes before the root ``conv1``; slim made ``conv1`` first."""
    src = [
        VarSpec(f"{UNIT}/conv1/weights", (1, 1, 8, 4)),
        *(VarSpec(f"{UNIT}/conv1/BatchNorm/{leaf}", (4,)) for leaf in BN),
        VarSpec("resnet_v1_50/conv1/weights", (7, 7, 3, 8)),
        *(VarSpec(f"resnet_v1_50/conv1/BatchNorm/{leaf}", (8,)) for leaf in BN),
    ]
    tgt: list[VarSpec] = []
    for i, (shape, n) in enumerate((((7, 7, 3, 8), 8), ((1, 1, 8, 4), 4))):
        tgt.append(VarSpec(f"conv2d_{i}/kernel", shape, order=5 * i))
        tgt += [VarSpec(f"batch_normalization_{i}/{leaf}", (n,), order=5 * i + 1 + j)
                for j, leaf in enumerate(("gamma", "beta", "moving_mean", "moving_variance"))]  # fmt: skip
    plan = derive(src, tgt)
    assert plan.complete and plan.family == "TF-slim ResNet v1 (resnet_v1_50)"
    assert (
        plan.match_for("batch_normalization_0/gamma").source == "resnet_v1_50/conv1/BatchNorm/gamma"
    )  # type: ignore[union-attr]
    assert {m.reason for m in plan.matches} == {
        "TF-slim ResNet v1 (resnet_v1_50) creation order + shape"
    }
    assert plan.to_dict()["family"] == "TF-slim ResNet v1 (resnet_v1_50)"
    assert "Recognised: TF-slim ResNet v1 (resnet_v1_50)" in str(plan)


def test_layers_of_one_kind_pair_in_counter_order_when_the_interleaving_is_unknown() -> None:
    """tf.layers without .meta: every batch_normalization_N sorts before every conv2d_N. Kind by
    kind, the counters still give each kind's order."""
    src = [
        VarSpec("batch_normalization/gamma", (4,)),
        VarSpec("batch_normalization/beta", (4,)),
        VarSpec("batch_normalization_1/gamma", (4,)),
        VarSpec("batch_normalization_1/beta", (4,)),
        VarSpec("conv2d/kernel", (3, 3, 3, 4)),
        VarSpec("conv2d_1/kernel", (3, 3, 4, 4)),
    ]
    tgt = [
        VarSpec("c/kernel", (3, 3, 3, 4), order=0),
        VarSpec("b/gamma", (4,), order=1),
        VarSpec("b/beta", (4,), order=2),
        VarSpec("c_1/kernel", (3, 3, 4, 4), order=3),
        VarSpec("b_1/gamma", (4,), order=4),
        VarSpec("b_1/beta", (4,), order=5),
    ]
    plan = derive(src, tgt)
    assert {m.target: m.source for m in plan.matches} == {
        "c/kernel": "conv2d/kernel",
        "b/gamma": "batch_normalization/gamma",
        "b/beta": "batch_normalization/beta",
        "c_1/kernel": "conv2d_1/kernel",
        "b_1/gamma": "batch_normalization_1/gamma",
        "b_1/beta": "batch_normalization_1/beta",
    }
    assert plan.match_for("b_1/beta").reason == "creation order within the layer kind + shape"  # type: ignore[union-attr]


def test_kind_by_kind_never_overrides_a_known_interleaving() -> None:
    """Both sides know their creation order and it does not line up: no kind-by-kind rescue."""
    src = [
        VarSpec("a/gamma", (4,), order=0),
        VarSpec("b/kernel", (2, 4), order=1),
        VarSpec("c/gamma", (4,), order=2),
        VarSpec("d/kernel", (2, 4), order=3),
    ]
    tgt = [
        VarSpec("w/kernel", (2, 4), order=0),
        VarSpec("x/gamma", (4,), order=1),
        VarSpec("y/kernel", (2, 4), order=2),
        VarSpec("z/gamma", (4,), order=3),
    ]
    plan = derive(src, tgt)
    assert plan.matches == []
    assert all(u.why.startswith("ambiguous: ") for u in plan.missing)
