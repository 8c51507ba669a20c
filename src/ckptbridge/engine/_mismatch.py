"""Say what differs when a checkpoint entry and a model variable have the same role but not the
same shape: the layer sizes (128 units against 64), or a transpose when that is all it is."""

from __future__ import annotations

from ckptbridge._text import fmt_shape
from ckptbridge.engine._names import scope_of, strip_key
from ckptbridge.engine._spec import VarSpec

__all__ = ["describe_mismatch"]


def _sizes(src: tuple[int, ...], tgt: tuple[int, ...]) -> str:
    if len(src) != len(tgt):
        return f"holds shape {fmt_shape(src)}, the model's variable {fmt_shape(tgt)}"
    differ = [i for i, (a, b) in enumerate(zip(src, tgt, strict=True)) if a != b]
    if differ == [len(src) - 1]:
        return f"has {src[-1]} units, the model's {tgt[-1]}"
    if len(src) == 2 and differ == [0]:
        return f"takes {src[0]} inputs, the model's {tgt[0]}"
    dims = ", ".join(f"dimension {i}: {src[i]} against {tgt[i]}" for i in differ)
    return f"differs in {dims} (checkpoint against model)"


def describe_mismatch(src: VarSpec, tgt: VarSpec) -> str:
    """Why ``src`` cannot feed ``tgt`` though their names say it should, and the fixes that work.

    >>> print(describe_mismatch(VarSpec("fc/bias", (128,)), VarSpec("dense/bias", (64,))))
    the checkpoint's layer 'fc' has 128 units, the model's 64 ('fc/bias' (128,) for 'dense/bias' (64,)): the architectures differ. Fix: build the model as the checkpoint's, or restore the other variables with strict=False; ckptbridge.plan(checkpoint, model) lists every match
    """
    pair = f"{src.name!r} {fmt_shape(src.shape)} for {tgt.name!r} {fmt_shape(tgt.shape)}"
    if len(src.shape) == 2 and src.shape == tgt.shape[::-1]:
        return (
            f"{src.name!r} has the same name but shape {fmt_shape(src.shape)}, expected "
            f"{fmt_shape(tgt.shape)} (transposed). Fix: add to the rules transforms: "
            f"[{{target: '{tgt.name}', steps: [{{op: transpose, perm: [1, 0]}}]}}]"
        )
    layer = scope_of(strip_key(src.name)) or strip_key(src.name)
    return (
        f"the checkpoint's layer {layer!r} {_sizes(src.shape, tgt.shape)} ({pair}): the "
        "architectures differ. Fix: build the model as the checkpoint's, or restore the other "
        "variables with strict=False; ckptbridge.plan(checkpoint, model) lists every match"
    )
