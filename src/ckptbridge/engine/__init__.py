"""The mapping engine: plain descriptions of both sides in, a :class:`MappingPlan` out.

Pure: no TensorFlow, no file I/O (except reading shipped presets named in ``rules.presets``)::

    from ckptbridge.engine import VarSpec, derive, format_not_found
    plan = derive(checkpoint_specs, model_specs, rules)
    if not plan.complete:
        raise NotFoundError(format_not_found(plan))

Order of decisions (each ``Match.reason`` says which one decided it):

1. ``ignore`` / ``ignore_target`` rules remove entries; ``map`` pairs and ``transforms`` with explicit
   ``sources`` are taken as written (``rule map[KEY]``, ``rule transforms[i]``).
2. Auxiliary entries (optimizer slots, ``beta1_power``, ``global_step``, learning rates, EMA shadows,
   the object graph, ``save_counter``...) are classified into ``plan.auxiliary`` (target side:
   ``plan.target_auxiliary``), never matched by derivation, never ``unused`` nor ``missing``.
3. Ordered ``rename`` rules (first fullmatch wins; ``rule rename[i]``).
4. Unless ``options.derive`` is false:

   a. layer converters (RNN cells, attention blocks): ``ckptbridge.engine.converters.propose(source,
      target, options) -> ConverterResult`` is called on the entries still free (non-auxiliary).
      ``ConverterResult.matches`` (``Match`` objects, several sources and steps allowed) are
      taken; ``ConverterResult.unmatched`` (``Unmatched``: cells or blocks it recognises but
      refuses) end in ``missing`` with their ``why``.
   b. names: identical after normalisation (``:0``, ``/.ATTRIBUTES/VARIABLE_VALUE``,
      ``weights->kernel``, ``biases->bias``, Keras 3 ``_kernel``), then the longest common path
      suffix unique on both sides (a model scope in front of one side).
   c. structure: layer groups in creation order (else natural name order) aligned when compatible;
      then a unique (leaf, shape), shape, or element count among the leftovers.

   Shapes must be equal, or differ only in layout (``[1]``->``[1, 1]``,
   ``[7, 7, 512, 4096]``->``[25088, 4096]``: a ``Reshape`` step). Dtypes must be equal (use a
   ``cast`` step in ``transforms`` otherwise). Ties are never guessed: both stay unmatched and
   ``Unmatched.why`` says which candidates tied.
5. ``options.optimizer_state``: target optimizer slots follow their weights (``engine._slots``):
   the same slot of the weight's source(s), through the weight's steps; never paired by name.
6. ``options.use_ema``: a matched ``X`` is fed from ``X/ExponentialMovingAverage`` when present.
7. ``transforms`` steps are applied to the matches whose target they fullmatch; a result that does
   not have the target's shape turns the match into ``missing`` with a ``why`` naming the rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ckptbridge._optional import lazy_exports
from ckptbridge.engine._aux import classify_auxiliary
from ckptbridge.engine._derive import derive
from ckptbridge.engine._names import layout_compatible, natural_key, normalise
from ckptbridge.engine._plan import Auxiliary, Candidate, MappingPlan, Match, Unmatched
from ckptbridge.engine._spec import VarSpec

if TYPE_CHECKING:
    from ckptbridge.engine._diagnose import format_not_found

__all__ = [
    "Auxiliary",
    "Candidate",
    "MappingPlan",
    "Match",
    "Unmatched",
    "VarSpec",
    "classify_auxiliary",
    "derive",
    "format_not_found",
    "layout_compatible",
    "natural_key",
    "normalise",
]


# ``format_not_found`` (the explanations of an incomplete plan), imported on first use: a
# complete plan never needs it.
__getattr__ = lazy_exports(__name__, {"format_not_found": "_diagnose"})
