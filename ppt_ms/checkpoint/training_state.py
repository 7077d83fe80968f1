"""Training state inside a checkpoint: what training scripts save beside the weights (optimizer
moments and counters, EMA copies, loss scale, a run's position), recognised by name and set aside,
so that a checkpoint of tools/train.py, of MindSpore's own optimizers (Adam, AdamWeightDecay,
Momentum, SGD, Lamb, RMSProp, Adagrad; mindspore.experimental.optim) or of mindcv's trainer
loads as weights.

An entry is training state when its name is a known counter or scalar, or a known prefix
followed by the name of a weight that the checkpoint also holds (adam_m.blocks.0.attn.qkv.weight
shadows blocks.0.attn.qkv.weight), so a network parameter is never taken for one.
"""
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from .errors import CheckpointError

EMA_PREFIX = "ema."
# (what, prefixes that shadow a weight): MindSpore's optimizers and ppt_ms's trainer
SHADOW_PREFIXES = ("exp_avg.", "exp_avg_sq.", "max_exp_avg_sq.", "adam_m.", "adam_v.", "moment1.", "moment2.",
                   "lamb_m.", "lamb_v.", "moments.", "accum.", "stat.", "mean_square.", "moment.")
# ppt_ms's trainer (train/checkpointing.py): its loss scaler and its position (epoch, step, seed)
OWN_PREFIXES = (("loss scaler state", "loss_scale."), ("counters", "train_state."))
# names of counters and hyper-parameters that optimizers, loss scalers and trainers keep
SCALAR_NAMES = ("global_step", "learning_rate", "beta1_power", "beta2_power", "momentum", "state_step",
                "scale_sense", "current_iterator_step", "last_overflow_iterator_step", "updates", "epoch_num",
                "step_num")
USE_EMA_HINT = "use_ema=True (tools: --use_ema or model.use_ema true)"


def split_training_state(state: Mapping[str, np.ndarray], use_ema: bool = False,
                         network_names=()) -> Tuple[Dict[str, np.ndarray], Optional[str]]:
    """-> (the weights of `state`, a one-line note of the training state set aside, or None when
    there was none).  With an EMA copy (ema.<weight>), the live weights are taken unless `use_ema`;
    the note says which and how to take the other.  Names in `network_names` are always weights."""
    weights, dropped = {}, {}
    protected = set(network_names)

    def shadows(key: str, prefix: str) -> bool:
        return key.startswith(prefix) and key[len(prefix):] in state and key not in protected

    ema = {key[len(EMA_PREFIX):]: value for key, value in state.items() if shadows(key, EMA_PREFIX)}
    if use_ema and not ema:
        raise CheckpointError("use_ema: the checkpoint has no EMA copy (no ema.<weight> entries, no model_ema)")
    for key, value in state.items():
        what = _kind(key, shadows, protected)
        if what is None:
            weights[key] = value
        else:
            dropped.setdefault(what, []).append(key)
    if ema and use_ema:
        weights.update(ema)
    return weights, _note(dropped, ema, use_ema)


def _kind(key: str, shadows, protected) -> Optional[str]:
    if key in protected:
        return None
    if shadows(key, EMA_PREFIX):
        return "EMA copy"
    if any(shadows(key, prefix) for prefix in SHADOW_PREFIXES):
        return "optimizer moments"
    for what, prefix in OWN_PREFIXES:
        if key.startswith(prefix):
            return what
    return "counters" if key in SCALAR_NAMES else None


def _note(dropped: Dict[str, List[str]], ema: Mapping, use_ema: bool) -> Optional[str]:
    if not dropped:
        return None
    parts = []
    order = ["optimizer moments", "EMA copy", "loss scaler state", "counters"]
    for what, keys in sorted(dropped.items(), key=lambda item: order.index(item[0])):
        if what == "counters":
            parts.append("counters %s" % ", ".join(keys))
            continue
        prefixes = sorted({key[:key.index(".") + 1] for key in keys})
        text = "%s (%d tensors: %s)" % (what, len(keys), ", ".join(p + "*" for p in prefixes))
        if what == "EMA copy":
            text += (": took the EMA weights; without use_ema the live ones" if use_ema else
                     ": took the live weights; %s takes the EMA copy" % USE_EMA_HINT)
        parts.append(text)
    return "set aside training state: %s" % "; ".join(parts)
