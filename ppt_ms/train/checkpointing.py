"""Training checkpoints: everything `--resume` needs to continue exactly where a run stopped.

One MindSpore .ckpt per save, named step<global step>.ckpt, holding
- the model parameters under their timm names (so eval/convert/load_pretrained read it directly),
- the optimizer state under the optimizer's own names: exp_avg.<name>, exp_avg_sq.<name>, state_step,
- EMA shadows as ema.<name> and the loss scaler as loss_scale.<name> when used,
- 0-d bookkeeping scalars train_state.<field> (see Progress), which loaders of model weights ignore.
Data order is a function of (seed, epoch) and the position is (epoch, step_in_epoch), so these
few numbers are the whole data-loader state.
"""
import glob
import os
import re
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import numpy as np
from mindspore import Parameter, Tensor

from ..checkpoint import read_state_dict, save_checkpoint_atomic
from .errors import ResumeError
from .optimizer import optimizer_state

SCALAR_PREFIX = "train_state."
LOSS_SCALE_PREFIX = "loss_scale."
FILE_PATTERN = re.compile(r"^step(\d{8,})\.ckpt$")


@dataclass(frozen=True)
class Progress:
    """Where a run is: global_step optimizer steps done, i.e. step_in_epoch steps of epoch `epoch`
    (0-based). The other fields fix what the position means and must match on resume."""
    global_step: int
    epoch: int
    step_in_epoch: int
    steps_per_epoch: int
    global_batch: int
    seed: int

    @classmethod
    def at(cls, global_step, steps_per_epoch, global_batch, seed):
        return cls(global_step, global_step // steps_per_epoch, global_step % steps_per_epoch,
                   steps_per_epoch, global_batch, seed)


def checkpoint_name(global_step: int) -> str:
    return "step%08d.ckpt" % global_step


def list_checkpoints(directory) -> List[str]:
    """Training checkpoints in `directory`, oldest (lowest global step) first."""
    found = []
    for path in glob.glob(os.path.join(os.fspath(directory), "step*.ckpt")):
        match = FILE_PATTERN.match(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def latest_checkpoint(directory) -> Optional[str]:
    paths = list_checkpoints(directory)
    return paths[-1] if paths else None


def remove_old_checkpoints(directory, keep_last: int) -> List[str]:
    """Delete all but the newest `keep_last` training checkpoints; returns the deleted paths."""
    if keep_last < 1:
        raise ValueError("train.keep_last must be >= 1, got %r" % keep_last)
    old = list_checkpoints(directory)[:-keep_last]
    for path in old:
        os.remove(path)
    return old


def training_state(net, optimizer, ema=None, loss_scaler=None) -> Dict[str, Parameter]:
    """{checkpoint key: Parameter} of everything a run updates."""
    state = dict(net.parameters_dict())
    state.update({param.name: param for param in optimizer_state(optimizer)})
    if ema is not None:
        state.update({shadow.name: shadow for shadow in ema.shadows})
    if loss_scaler is not None:
        state.update({LOSS_SCALE_PREFIX + "scale_value": loss_scaler.scale_value,
                      LOSS_SCALE_PREFIX + "counter": loss_scaler.counter})
    return state


def save_training_checkpoint(directory, progress: Progress, state: Dict[str, Parameter]) -> str:
    """Write step<global_step>.ckpt atomically into `directory` (created if needed); returns its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, checkpoint_name(progress.global_step))
    extra = {SCALAR_PREFIX + key: value for key, value in asdict(progress).items()}
    return save_checkpoint_atomic(state, path, extra=extra)


def read_progress(saved: Dict[str, np.ndarray], path) -> Progress:
    fields = Progress.__dataclass_fields__
    missing = [SCALAR_PREFIX + key for key in fields if SCALAR_PREFIX + key not in saved]
    if missing:
        raise ResumeError("%s is not a training checkpoint written by ppt_ms.train (no %s); to start "
                          "from its weights use train.finetune instead of train.resume" % (path, ", ".join(missing)))
    return Progress(**{key: int(saved[SCALAR_PREFIX + key]) for key in fields})


def restore_training_checkpoint(path, state: Dict[str, Parameter]) -> Progress:
    """Copy a training checkpoint into the run's Parameters and return its Progress.
    Every entry of `state` must be in the file with the same shape; otherwise one ResumeError lists
    all differences and nothing is changed."""
    saved = read_state_dict(path)
    progress = read_progress(saved, path)
    problems = ["missing: %s" % key for key in state if key not in saved]
    problems += ["shape of %s: checkpoint %s, run %s" % (key, saved[key].shape, tuple(param.shape))
                 for key, param in state.items() if key in saved and saved[key].shape != tuple(param.shape)]
    if problems:
        raise ResumeError("cannot resume from %s: it does not match this run (same model, token reduction, "
                          "EMA and amp settings are needed):\n  %s" % (path, "\n  ".join(problems)))
    for key, param in state.items():
        param.set_data(Tensor(saved[key], dtype=param.dtype))
    return progress


def check_same_schedule(saved: Progress, current: Progress, path) -> None:
    """A resumed run must walk the same data order and lr schedule as the interrupted one."""
    differing = ["%s: checkpoint %d, now %d" % (name, getattr(saved, name), getattr(current, name))
                 for name in ("steps_per_epoch", "global_batch", "seed")
                 if getattr(saved, name) != getattr(current, name)]
    if differing:
        raise ResumeError("cannot resume from %s exactly: %s. Use the same data, batch size, number of "
                          "processes and system.seed as the interrupted run" % (path, "; ".join(differing)))
