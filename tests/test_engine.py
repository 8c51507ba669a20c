"""derive(): the derivation steps of issue 3 on literal variable lists (no TensorFlow)."""

from __future__ import annotations

import pytest

from ckptbridge import MappingError, RulesError
from ckptbridge.engine import MappingPlan, VarSpec, derive
from ckptbridge.rules import Concat, KeyTransform, Options, Rename, Reshape, Rules

V = VarSpec


def pairs(plan: MappingPlan) -> dict[str, str]:
    return {m.target: " + ".join(m.sources) for m in plan.matches}


def keras_dense(sizes: list[tuple[int, int]], prefix: str = "", suffix: str = "") -> list[VarSpec]:
    out: list[VarSpec] = []
    for i, (n_in, n_out) in enumerate(sizes):
        name = f"{prefix}dense" + (f"_{i}" if i else "")
        out += [V(f"{name}/kernel{suffix}", (n_in, n_out), order=2 * i),
                V(f"{name}/bias{suffix}", (n_out,), order=2 * i + 1)]  # fmt: skip
    return out


# ---------------------------------------------------------------- names


def test_identical_and_vocabulary_names() -> None:
    src = [V("conv1/weights", (3, 3, 1, 8)), V("conv1/biases", (8,)), V("bn/gamma", (8,))]
    tgt = [V("conv1/kernel:0", (3, 3, 1, 8)), V("conv1/bias:0", (8,)), V("bn/gamma:0", (8,))]
    plan = derive(src, tgt)
    assert pairs(plan) == {"conv1/kernel:0": "conv1/weights", "conv1/bias:0": "conv1/biases",
                           "bn/gamma:0": "bn/gamma"}  # fmt: skip
    reasons = {m.target: m.reason for m in plan.matches}
    assert reasons == {"conv1/kernel:0": "vocabulary: weights->kernel",
                       "conv1/bias:0": "vocabulary: biases->bias", "bn/gamma:0": "identical name"}  # fmt: skip


def test_keras3_private_names_and_tf2_keys() -> None:
    src = [V("model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE", (4, 2))]
    tgt = [V("model/dense/_kernel", (4, 2))]
    assert pairs(derive(src, tgt)) == {"model/dense/_kernel": src[0].name}


def test_sequential_scope_in_front_uses_unique_common_suffix() -> None:
    src = keras_dense([(4, 8), (8, 2)])
    tgt = keras_dense([(4, 8), (8, 2)], prefix="sequential/")
    plan = derive(src, tgt)
    assert pairs(plan) == {f"sequential/{s.name}": s.name for s in src}
    assert (
        plan.match_for("sequential/dense_1/kernel").reason == "common path suffix 'dense_1/kernel'"
    )  # type: ignore[union-attr]


def test_tf2_aliases_take_part_in_name_matching() -> None:
    src = [V("model/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE", (4, 2),
             aliases=("model/encoder/proj/kernel",))]  # fmt: skip
    tgt = [V("encoder/proj/kernel", (4, 2)), V("other/kernel", (2, 4))]
    plan = derive(src, tgt)
    assert pairs(plan) == {"encoder/proj/kernel": src[0].name}
    assert [u.target for u in plan.missing] == ["other/kernel"]


# ---------------------------------------------------------------- structure


def test_slim_vgg16_to_keras_vgg16() -> None:
    cfg = [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]
    src: list[VarSpec] = []
    tgt: list[VarSpec] = []
    c_in = 3
    for block, n, c in cfg:
        for k in range(1, n + 1):
            src += [V(f"vgg_16/conv{block}/conv{block}_{k}/weights", (3, 3, c_in, c)),
                    V(f"vgg_16/conv{block}/conv{block}_{k}/biases", (c,))]  # fmt: skip
            tgt += [V(f"block{block}_conv{k}/kernel", (3, 3, c_in, c), order=len(tgt)),
                    V(f"block{block}_conv{k}/bias", (c,), order=len(tgt) + 1)]  # fmt: skip
            c_in = c
    for slim, keras, shape in [("fc6", "fc1", (7, 7, 512, 4096)), ("fc7", "fc2", (1, 1, 4096, 4096)),
                               ("fc8", "predictions", (1, 1, 4096, 1000))]:  # fmt: skip
        src += [V(f"vgg_16/{slim}/weights", shape), V(f"vgg_16/{slim}/biases", (shape[-1],))]
        flat = (shape[0] * shape[1] * shape[2], shape[3])
        tgt += [V(f"{keras}/kernel", flat, order=len(tgt)),
                V(f"{keras}/bias", (shape[-1],), order=len(tgt) + 1)]  # fmt: skip
    src.append(V("global_step", (), "int64"))
    plan = derive(src[::-1], tgt)  # checkpoint order must not matter
    assert plan.complete
    got = pairs(plan)
    assert got["block1_conv1/kernel"] == "vgg_16/conv1/conv1_1/weights"
    assert got["block5_conv3/bias"] == "vgg_16/conv5/conv5_3/biases"
    assert got["fc1/kernel"] == "vgg_16/fc6/weights"
    assert got["predictions/bias"] == "vgg_16/fc8/biases"
    fc1 = plan.match_for("fc1/kernel")
    assert fc1 is not None and fc1.steps == (Reshape(shape=(25088, 4096)),)
    assert fc1.reason == "creation order + shape + layout reshape (7, 7, 512, 4096)->(25088, 4096)"
    assert [a.name for a in plan.auxiliary] == ["global_step"]


def test_unnamed_variables_weights_first_then_biases() -> None:
    # W1, W2, b1, b2 as created by the TF1 tutorials; Dense layers create kernel, bias, kernel, bias.
    src = [V("Variable", (784, 256)), V("Variable_1", (256, 10)), V("Variable_2", (256,)),
           V("Variable_3", (10,))]  # fmt: skip
    plan = derive(src, keras_dense([(784, 256), (256, 10)], prefix="sequential/"))
    assert pairs(plan) == {
        "sequential/dense/kernel": "Variable",
        "sequential/dense/bias": "Variable_2",
        "sequential/dense_1/kernel": "Variable_1",
        "sequential/dense_1/bias": "Variable_3",
    }


def test_unnamed_variables_follow_natural_order_not_string_order() -> None:
    src = [
        V("Variable" + (f"_{i}" if i else ""), (8, 8) if i % 2 == 0 else (8,)) for i in range(12)
    ]
    plan = derive(src, keras_dense([(8, 8)] * 6, suffix=":0"))
    assert plan.complete
    assert plan.match_for("dense_5/kernel:0").source == "Variable_10"  # type: ignore[union-attr]
    assert plan.match_for("dense_5/bias:0").source == "Variable_11"  # type: ignore[union-attr]
    assert plan.match_for("dense_1/kernel:0").source == "Variable_2"  # type: ignore[union-attr]


def test_conv_scopes_to_keras_auto_names() -> None:
    src = [V("conv1/weights", (5, 5, 1, 32)), V("conv1/biases", (32,)),
           V("conv2/weights", (5, 5, 32, 64)), V("conv2/biases", (64,)),
           V("fc1/weights", (3136, 1024)), V("fc1/biases", (1024,)),
           V("fc2/weights", (1024, 10)), V("fc2/biases", (10,))]  # fmt: skip
    tgt = [V("conv2d/kernel", (5, 5, 1, 32), order=0), V("conv2d/bias", (32,), order=1),
           V("conv2d_1/kernel", (5, 5, 32, 64), order=2), V("conv2d_1/bias", (64,), order=3),
           V("dense/kernel", (3136, 1024), order=4), V("dense/bias", (1024,), order=5),
           V("dense_1/kernel", (1024, 10), order=6), V("dense_1/bias", (10,), order=7)]  # fmt: skip
    plan = derive(src, tgt)
    assert pairs(plan) == {t.name: s.name for s, t in zip(src, tgt, strict=True)}
    assert {m.reason for m in plan.matches} == {"creation order + shape"}


def test_tf1_2_linear_regression_into_dense_1() -> None:
    plan = derive(
        [V("weight", (1,)), V("bias", (1,))], [V("dense/kernel", (1, 1)), V("dense/bias", (1,))]
    )
    assert pairs(plan) == {"dense/kernel": "weight", "dense/bias": "bias"}
    kernel = plan.match_for("dense/kernel")
    assert kernel is not None and kernel.steps == (Reshape(shape=(1, 1)),)


def test_tf2_layer_with_weights_keys_sort_naturally() -> None:
    attr = "/.ATTRIBUTES/VARIABLE_VALUE"
    src = []
    for i in range(12):
        src += [V(f"model/layer_with_weights-{i}/kernel{attr}", (6, 6)),
                V(f"model/layer_with_weights-{i}/bias{attr}", (6,))]  # fmt: skip
    plan = derive(src, keras_dense([(6, 6)] * 12, prefix="functional/"))
    assert plan.complete
    assert (
        plan.match_for("functional/dense_10/kernel").source
        == f"model/layer_with_weights-10/kernel{attr}"
    )  # type: ignore[union-attr]


def test_groups_of_different_counts_align_where_unique() -> None:
    # an extra layer in the checkpoint (a built-but-unused head) is skipped by the alignment
    src = [V("a/kernel", (4, 8)), V("a/bias", (8,)), V("head/kernel", (8, 3)), V("head/bias", (3,)),
           V("b/kernel", (8, 2)), V("b/bias", (2,))]  # fmt: skip
    plan = derive(src, keras_dense([(4, 8), (8, 2)]))
    assert pairs(plan) == {"dense/kernel": "a/kernel", "dense/bias": "a/bias",
                           "dense_1/kernel": "b/kernel", "dense_1/bias": "b/bias"}  # fmt: skip
    assert plan.unused == ["head/kernel", "head/bias"]


# ---------------------------------------------------------------- precision: no guessing


def test_ties_stay_unmatched_with_an_explanation() -> None:
    src = [V("a", (4, 4)), V("b", (4, 4)), V("c", (3,))]
    plan = derive(src, [V("x/kernel", (4, 4))])
    assert plan.matches == []
    (u,) = plan.missing
    assert u.why == ("ambiguous: 2 unused entries have shape (4, 4) ('a', 'b') and neither names "
                     "nor creation order decide between them; add a 'map:' rule, e.g. "
                     "map: {a: x/kernel}")  # fmt: skip
    assert [c.name for c in u.candidates][:2] == ["a", "b"]


def test_one_source_two_targets_is_ambiguous() -> None:
    plan = derive([V("w", (4, 4)), V("q", (1,))], [V("x", (4, 4)), V("y", (4, 4)), V("z", (1,))])
    assert pairs(plan) == {"z": "q"}
    assert plan.missing[0].why.startswith("ambiguous: 'w' (4, 4) fits 2 targets ('x', 'y')")


def test_dtype_mismatch_is_not_matched() -> None:
    plan = derive([V("dense/kernel", (2, 2), "float16")], [V("dense/kernel", (2, 2), "float32")])
    assert not plan.complete
    assert "dtype float16, expected float32" in plan.missing[0].why


def test_transposed_shape_is_not_a_layout_reshape() -> None:
    plan = derive([V("dense/kernel", (4, 6))], [V("dense/kernel", (6, 4))])
    assert not plan.complete
    assert plan.unused == ["dense/kernel"]


def test_duplicate_names_are_an_error() -> None:
    with pytest.raises(MappingError, match=r"^model: the name 'a' appears twice"):
        derive([], [V("a", (1,)), V("a", (1,))])


# ---------------------------------------------------------------- rules


def test_rules_precedence_map_over_rename_over_derivation() -> None:
    src = [V("fc1/weights", (4, 4)), V("fc2/weights", (4, 4)), V("dense/kernel", (4, 4))]
    tgt = [V("dense/kernel", (4, 4)), V("dense_1/kernel", (4, 4)), V("dense_2/kernel", (4, 4))]
    rules = Rules(map={"fc2/weights": "dense/kernel"},
                  rename=(Rename(pattern=r"fc(\d)/weights", replace=r"dense_\1/kernel"),
                          Rename(pattern=r"fc1/(.*)", replace=r"dense_2/\1")))  # fmt: skip
    plan = derive(src, tgt, rules)
    assert pairs(plan) == {"dense/kernel": "fc2/weights", "dense_1/kernel": "fc1/weights",
                           "dense_2/kernel": "dense/kernel"}  # fmt: skip
    reasons = [m.reason for m in plan.matches]
    assert reasons == ["rule map[fc2/weights]", "rule rename[0]", "common path suffix 'kernel'"]
    assert plan.unused_rules == ["rename[1] ('fc1/(.*)') matched no checkpoint key"]


def test_rename_result_compared_after_normalisation_and_scope() -> None:
    rules = Rules(rename=(Rename(pattern=r"net/fc_(\d)/(weights|biases)", replace=r"dense_\1/\2"),))
    src = [V("net/fc_1/weights", (2, 3)), V("net/fc_1/biases", (3,))]
    tgt = [V("sequential/dense_1/kernel", (2, 3)), V("sequential/dense_1/bias", (3,))]
    plan = derive(src, tgt, rules)
    assert pairs(plan) == {"sequential/dense_1/kernel": "net/fc_1/weights",
                           "sequential/dense_1/bias": "net/fc_1/biases"}  # fmt: skip
    assert {m.reason for m in plan.matches} == {"rule rename[0]"}


def test_rename_onto_one_target_from_two_keys_is_refused() -> None:
    rules = Rules(
        rename=(Rename(pattern=r"(?:a|b)/w", replace="dense/kernel"),),
        options=Options(derive=False),
    )
    plan = derive([V("a/w", (2,)), V("b/w", (2,))], [V("dense/kernel", (2,))], rules)
    assert plan.missing[0].why.startswith(
        "rename[0] map several checkpoint keys ('a/w', 'b/w') to it"
    )


def test_map_unknown_key_says_did_you_mean() -> None:
    rules = Rules(map={"fc2/weigths": "dense/kernel"})
    with pytest.raises(RulesError, match=r"^rules: map\[fc2/weigths\]: no checkpoint key 'fc2/weigths' "
                       r"in 'old/model.ckpt'. Did you mean 'fc2/weights'\?$"):  # fmt: skip
        derive(
            [V("fc2/weights", (2,))],
            [V("dense/kernel", (2,))],
            rules,
            source_label="old/model.ckpt",
        )


def test_map_unknown_target_says_did_you_mean() -> None:
    with pytest.raises(RulesError, match=r"no target name 'dense/kernal' in 'model'. Did you mean"):
        derive([V("w", (2,))], [V("dense/kernel", (2,))], Rules(map={"w": "dense/kernal"}))


def test_ignore_and_ignore_target() -> None:
    rules = Rules(ignore=(r"junk/.*",), ignore_target=(r".*/counter", r"nothing"))
    src = [V("junk/a", (2,)), V("dense/kernel", (2, 2))]
    tgt = [V("dense/kernel", (2, 2)), V("metrics/counter", ())]
    plan = derive(src, tgt, rules)
    assert (
        plan.complete and plan.ignored == ["junk/a"] and plan.ignored_targets == ["metrics/counter"]
    )
    assert plan.unused_rules == ["ignore_target[1] ('nothing') matched no target name"]


def test_transform_that_does_not_fit_becomes_missing_naming_the_rule() -> None:
    rules = Rules(map={"fc/w": "dense/kernel"},
                  transforms=(KeyTransform(target="dense/kernel", steps=(Reshape(shape=(3, 4)),)),))  # fmt: skip
    plan = derive([V("fc/w", (12,))], [V("dense/kernel", (4, 3))], rules)
    (u,) = plan.missing
    assert u.why == ("rule map[fc/w] + transforms[0] gives shape (3, 4) (from (12,)), but "
                     "'dense/kernel' has shape (4, 3); fix the rule or add transforms steps")  # fmt: skip
    assert plan.unused == ["fc/w"]


def test_map_with_incompatible_shape_is_missing() -> None:
    plan = derive([V("a", (5,))], [V("b", (6,))], Rules(map={"a": "b"}))
    assert plan.missing[0].why.startswith(
        "rule map[a] gives shape (5,) (from (5,)), but 'b' has shape (6,)"
    )


def test_transform_with_sources_concatenates() -> None:
    rules = Rules(transforms=(KeyTransform(target="lstm/kernel", sources=("w_x", "w_h"),
                                           steps=(Concat(axis=0),)),))  # fmt: skip
    plan = derive([V("w_x", (3, 8)), V("w_h", (2, 8))], [V("lstm/kernel", (5, 8))], rules)
    m = plan.match_for("lstm/kernel")
    assert m is not None and m.sources == ("w_x", "w_h") and m.reason == "rule transforms[0]"
    assert plan.unused == []


def test_derive_false_derives_nothing() -> None:
    plan = derive(
        [V("dense/kernel", (2, 2))],
        [V("dense/kernel", (2, 2))],
        Rules(options=Options(derive=False)),
    )
    assert plan.matches == [] and [u.target for u in plan.missing] == ["dense/kernel"]


def test_use_ema_feeds_from_the_shadow() -> None:
    src = [V("conv/weights", (3,)), V("conv/weights/ExponentialMovingAverage", (3,))]
    plan = derive(src, [V("conv/kernel", (3,))], Rules(options=Options(use_ema=True)))
    m = plan.match_for("conv/kernel")
    assert m is not None and m.source == "conv/weights/ExponentialMovingAverage"
    assert m.reason == "vocabulary: weights->kernel + EMA shadow (options.use_ema)"
    plain = derive(src, [V("conv/kernel", (3,))])
    assert plain.match_for("conv/kernel").source == "conv/weights"  # type: ignore[union-attr]
    assert [a.kind for a in plain.auxiliary] == ["ema_shadow"]


def test_optimizer_state_option_maps_slots_by_name() -> None:
    specs = [V("w", (2,)), V("w/Adam", (2,)), V("w/Adam_1", (2,)), V("beta1_power", ())]
    plan = derive(specs, specs, Rules(options=Options(optimizer_state=True)))
    assert sorted(pairs(plan)) == sorted(s.name for s in specs)
    assert derive(specs, specs).target_auxiliary != []


def test_presets_in_rules_are_expanded() -> None:
    src = [V("vgg_16/conv1/conv1_1/weights", (3, 3, 3, 64)), V("vgg_16/fc8/biases", (10,))]
    tgt = [V("vgg16/block1_conv1/kernel", (3, 3, 3, 64)), V("vgg16/predictions/bias", (10,))]
    plan = derive(src, tgt, Rules(presets=("slim-vgg16",)))
    assert {m.reason for m in plan.matches} == {"rule rename[0]", "rule rename[3]"}
    assert plan.complete


def test_engine_rules_and_transforms_do_not_import_tensorflow() -> None:
    import subprocess
    import sys

    code = ("import sys; from ckptbridge.engine import derive, VarSpec; import ckptbridge.transforms; "
            "from ckptbridge.rules import load_rules; load_rules('preset:slim-vgg16'); "
            "derive([VarSpec('a/weights', (2, 2))], [VarSpec('a/kernel', (2, 2))]); "
            "print('tensorflow' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_public_names_of_the_engine() -> None:
    import ckptbridge.engine as engine

    assert engine.__all__ == sorted(engine.__all__)
    for name in ["derive", "VarSpec", "MappingPlan", "Match", "Unmatched", "Candidate", "Auxiliary",
                 "classify_auxiliary", "format_not_found"]:  # fmt: skip
        assert name in engine.__all__ and hasattr(engine, name)


def test_same_name_wrong_shape_is_not_fed_from_elsewhere() -> None:
    src = [V("dense/kernel", (4, 6)), V("other/kernel", (6, 4))]
    plan = derive(src, [V("dense/kernel", (6, 4))])
    assert plan.matches == []
    assert plan.missing[0].why.startswith(
        "'dense/kernel' has the same name but shape (4, 6), expected (6, 4)"
    )


def test_sublayers_in_another_order_are_never_matched_across_layers() -> None:
    """BERT-like layers whose sub-layers come in another order on each side: LayerNorms of one
    layer must not be lined up with the next layer's (a longest-common-subsequence alignment did)."""
    H, inner = 8, 16
    src: list[VarSpec] = []
    tgt: list[VarSpec] = []
    for n in range(3):
        b, k = f"bert/encoder/layer_{n}", f"transformer_layer_{n}"
        src += [
            VarSpec(f"{b}/attention/output/LayerNorm/gamma", (H,)),
            VarSpec(f"{b}/attention/output/LayerNorm/beta", (H,)),
            VarSpec(f"{b}/intermediate/dense/kernel", (H, inner)),
            VarSpec(f"{b}/intermediate/dense/bias", (inner,)),
            VarSpec(f"{b}/output/dense/kernel", (inner, H)),
            VarSpec(f"{b}/output/dense/bias", (H,)),
            VarSpec(f"{b}/output/LayerNorm/gamma", (H,)),
            VarSpec(f"{b}/output/LayerNorm/beta", (H,)),
        ]
        tgt += [
            VarSpec(f"{k}/feedforward_intermediate_dense/kernel", (H, inner)),
            VarSpec(f"{k}/feedforward_intermediate_dense/bias", (inner,)),
            VarSpec(f"{k}/feedforward_layer_norm/gamma", (H,)),
            VarSpec(f"{k}/feedforward_layer_norm/beta", (H,)),
            VarSpec(f"{k}/feedforward_output_dense/kernel", (inner, H)),
            VarSpec(f"{k}/feedforward_output_dense/bias", (H,)),
            VarSpec(f"{k}/self_attention_layer_norm/gamma", (H,)),
            VarSpec(f"{k}/self_attention_layer_norm/beta", (H,)),
        ]
    plan = derive(src, tgt)
    for m in plan.matches:
        assert m.source.split("/")[2][-1] == m.target.split("/")[0][-1], (
            m.target,
            m.source,
            m.reason,
        )
    assert not plan.complete  # the LayerNorms are ambiguous: explained, not guessed


def test_layers_only_the_alphabet_orders_are_not_paired_by_order() -> None:
    """No creation order on the checkpoint side: 'decoder/...' sorts before 'encoder/...', which
    says nothing about which came first. Same-shaped layers there are a tie, not a pairing."""
    src = [
        VarSpec("encoder/dense/kernel", (4, 4)),
        VarSpec("encoder/dense/bias", (4,)),
        VarSpec("decoder/dense/kernel", (4, 4)),
        VarSpec("decoder/dense/bias", (4,)),
        VarSpec("out/kernel", (4, 2)),
        VarSpec("out/bias", (2,)),
    ]
    tgt = [
        VarSpec("enc/kernel", (4, 4), order=0),
        VarSpec("enc/bias", (4,), order=1),
        VarSpec("dec/kernel", (4, 4), order=2),
        VarSpec("dec/bias", (4,), order=3),
        VarSpec("head/kernel", (4, 2), order=4),
        VarSpec("head/bias", (2,), order=5),
    ]
    plan = derive(src, tgt)
    assert {m.target: m.source for m in plan.matches} == {
        "head/kernel": "out/kernel",
        "head/bias": "out/bias",
    }
    assert sorted(u.target for u in plan.missing) == [
        "dec/bias",
        "dec/kernel",
        "enc/bias",
        "enc/kernel",
    ]


def test_numbered_layers_without_creation_order_still_pair_by_order() -> None:
    src = [VarSpec(f"vgg/conv3/conv3_{i}/weights", (3, 3, 8, 8)) for i in (1, 2, 3)]
    tgt = [VarSpec(f"block3_conv{i}/kernel", (3, 3, 8, 8), order=i) for i in (1, 2, 3)]
    plan = derive(src, tgt)
    assert [(m.target, m.source) for m in plan.matches] == [
        (f"block3_conv{i}/kernel", f"vgg/conv3/conv3_{i}/weights") for i in (1, 2, 3)
    ]
