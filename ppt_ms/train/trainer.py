"""train(cfg): a whole training run from a validated config, single process or data parallel (msrun)."""
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

import mindspore as ms

from ..builder import build_model, setup_context
from ..config import dump_config, eval_batch_size
from ..data import create_dataset
from ..evaluate import evaluate
from .checkpointing import (Progress, check_same_schedule, latest_checkpoint, remove_old_checkpoints,
                            restore_training_checkpoint, save_training_checkpoint, training_state)
from .data_order import epoch_batches, train_dataset
from ..distributed import World, init_world
from .ema import ParameterEMA, averaged_weights
from .errors import TrainingDiverged
from .loss import create_loss
from .optimizer import StepLearningRate, create_optimizer
from .progress import ProgressMeter, format_duration
from .schedule import lr_schedule, scaled_lr
from .step import TrainStep, create_loss_scaler


@dataclass
class TrainResult:
    """The trained network, how far the run got, the checkpoints it kept (oldest first) and one summary
    per finished epoch: {epoch, train_loss (mean over the steps run by this call), seconds, and val, val_ema
    after the epochs that were evaluated (train.val_every_epochs)}."""
    net: ms.nn.Cell
    progress: Progress
    checkpoints: List[str] = field(default_factory=list)
    history: List[dict] = field(default_factory=list)
    stopped_at_max_steps: bool = False


def resume_path(train_cfg) -> Optional[str]:
    """The checkpoint named by train.resume; 'auto' means the newest in train.output_dir (None if empty)."""
    if train_cfg.resume == "auto":
        return latest_checkpoint(train_cfg.output_dir)
    if train_cfg.resume and not os.path.isfile(train_cfg.resume):
        raise FileNotFoundError("train.resume: checkpoint not found: %s" % train_cfg.resume)
    return train_cfg.resume


def validation_dataset(cfg, world: World):
    """This rank's shard of the val split (evaluate counts every image once over the ranks), or None
    if it does not exist."""
    if not os.path.isdir(os.path.join(cfg.data.path, cfg.data.val_split)):
        return None
    return create_dataset(cfg.data, "val", cfg.model.img_size, cfg.model.num_classes, training=False,
                          batch_size=eval_batch_size(cfg), rank=world.rank, group_size=world.group_size)


class _Run:
    """The objects of one training run and the bookkeeping between steps."""

    def __init__(self, cfg, world: World, log: Callable[[str], None]):
        self.cfg, self.world = cfg, world
        self.log = log if world.is_main else _silent
        t = cfg.train
        # first: an impossible token plan fails before data scans
        self.net, train_net = build_model(cfg, weights=t.finetune, purpose="training")
        first_epoch = train_dataset(cfg, 0, world.rank, world.group_size)
        self.steps_per_epoch = first_epoch.get_dataset_size()
        self.global_batch = cfg.data.batch_size * world.group_size
        self.total_steps = t.epochs * self.steps_per_epoch
        self.lrs = lr_schedule(scaled_lr(t.lr, self.global_batch), t.min_lr, t.warmup_lr, t.warmup_epochs,
                               t.epochs, self.steps_per_epoch)

        self.optimizer = create_optimizer(self.net, t.weight_decay)
        soft_targets = len(first_epoch.output_shapes()[1]) == 2
        self.ema = ParameterEMA(self.net.trainable_params(), t.ema_decay) if t.ema else None
        self.loss_scaler = create_loss_scaler(cfg.system.amp_level)
        self.step = TrainStep(train_net, create_loss(soft_targets, cfg.data.label_smoothing), self.optimizer,
                              t.clip_grad, self.loss_scaler, world.group_size, self.ema,
                              StepLearningRate(self.optimizer, self.lrs))
        self.state = training_state(self.net, self.optimizer, self.ema, self.loss_scaler)
        self.val = validation_dataset(cfg, world)
        self.progress = self.position(0)
        self.result = TrainResult(self.net, self.progress)
        self.last_saved_step = None
        self.meter = ProgressMeter(self.total_steps, self.global_batch, t.epochs, self.steps_per_epoch)

    def position(self, global_step: int) -> Progress:
        return Progress.at(global_step, self.steps_per_epoch, self.global_batch, self.cfg.system.seed)

    def resume(self, path: str) -> None:
        saved = restore_training_checkpoint(path, self.state)
        check_same_schedule(saved, self.progress, path)
        self.progress = self.result.progress = saved
        self.last_saved_step = saved.global_step
        self.log("resumed from %s at epoch %d, step %d/%d (global step %d)"
                 % (path, saved.epoch + 1, saved.step_in_epoch, self.steps_per_epoch, saved.global_step))

    def save(self) -> None:
        """Write a checkpoint of the current state (main process only) and drop the old ones."""
        step = self.progress.global_step
        if step == self.last_saved_step:
            return
        self.last_saved_step = step
        if not self.world.is_main:
            return
        path = save_training_checkpoint(self.cfg.train.output_dir, self.progress, self.state)
        self.result.checkpoints.append(path)
        removed = remove_old_checkpoints(self.cfg.train.output_dir, self.cfg.train.keep_last)
        self.result.checkpoints = [p for p in self.result.checkpoints if p not in removed]
        self.log("saved %s" % path)

    def last_good_checkpoint(self) -> str:
        path = latest_checkpoint(self.cfg.train.output_dir) if self.world.is_main else None
        return path or "none written yet"

    def train_epoch(self, epoch: int, max_steps: Optional[int]) -> Optional[float]:
        """Run the rest of `epoch`; returns the mean loss of its steps, or None when max_steps stopped it."""
        t = self.cfg.train
        skip = self.progress.step_in_epoch if self.progress.epoch == epoch else 0
        dataset = train_dataset(self.cfg, epoch, self.world.rank, self.world.group_size)
        self.net.set_train(True)
        losses = []
        for images, labels in epoch_batches(dataset, skip):
            loss, _ = self.step(images, labels)
            loss = float(loss.asnumpy())
            step_in_epoch = skip + len(losses) + 1
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    "loss is %s at epoch %d, step %d/%d (global step %d); stopped without saving this step. "
                    "Last good checkpoint: %s" % (loss, epoch + 1, step_in_epoch, self.steps_per_epoch,
                                                  self.progress.global_step + 1, self.last_good_checkpoint()))
            losses.append(loss)
            self.progress = self.result.progress = self.position(self.progress.global_step + 1)
            step = self.progress.global_step
            if len(losses) == 1:
                self.meter.restart(step)  # the first step compiled the graph: not a speed sample
            elif step_in_epoch % t.log_every_steps == 0 or step_in_epoch == self.steps_per_epoch:
                self.log(self.meter.line(step, loss, float(self.lrs[step - 1])))
            if t.save_every_steps and step % t.save_every_steps == 0:
                self.save()
            if max_steps is not None and step >= max_steps:
                return None
        return sum(losses) / max(len(losses), 1)

    def end_epoch(self, epoch: int, train_loss: float, seconds: float) -> dict:
        """Log the epoch and, when due, its validation; returns the epoch's summary."""
        summary = {"epoch": epoch + 1, "train_loss": train_loss, "seconds": seconds}
        line = "epoch %d/%d done in %s: train loss %.4f" % (epoch + 1, self.cfg.train.epochs,
                                                            format_duration(seconds), train_loss)
        if self.val is not None and validation_due(epoch, self.cfg.train.epochs, self.cfg.train.val_every_epochs):
            metrics = evaluate(self.net, self.val, what="validation")
            summary["val"] = asdict(metrics)
            line += ", val top-1 %.2f%%, top-5 %.2f%%, loss %.4f" % (metrics.top1, metrics.top5, metrics.loss)
            if self.ema is not None:
                with averaged_weights(self.ema):
                    ema_metrics = evaluate(self.net, self.val, what="validation (EMA)")
                summary["val_ema"] = asdict(ema_metrics)
                line += ", EMA top-1 %.2f%%" % ema_metrics.top1
        self.log(line)
        return summary


def validation_due(epoch: int, epochs: int, every: int) -> bool:
    """Whether the run evaluates after `epoch` (0-based) of `epochs`: after every `every`-th epoch
    and after the last (every 0: the last only)."""
    return epoch + 1 == epochs or (every > 0 and (epoch + 1) % every == 0)


def _silent(_message: str) -> None:
    """Log sink of the non-main ranks."""


def train(cfg, max_steps: Optional[int] = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train cfg.model on cfg.data as configured by cfg.train; see the package docstring for the
    checkpoint and resume rules. max_steps (a global step count) stops the run right after that step
    without saving or evaluating, as if it had been killed there."""
    setup_context(cfg.system)
    world = init_world()
    run = _Run(cfg, world, log)
    if world.is_main:
        os.makedirs(cfg.train.output_dir, exist_ok=True)
        dump_config(cfg, os.path.join(cfg.train.output_dir, "config.yaml"))
    run.log("training %s on %d process(es): %d epochs x %d steps, global batch %d, peak lr %.3e"
            % (cfg.model.name, world.group_size, cfg.train.epochs, run.steps_per_epoch, run.global_batch,
               scaled_lr(cfg.train.lr, run.global_batch)))
    if run.val is None:
        run.log("no val split at %s: epochs end without evaluation"
                % os.path.join(cfg.data.path, cfg.data.val_split))
    path = resume_path(cfg.train)
    if path:
        run.resume(path)
    elif cfg.train.resume == "auto":
        run.log("train.resume=auto: no checkpoint in %s, starting from scratch" % cfg.train.output_dir)

    for epoch in range(run.progress.epoch, cfg.train.epochs):
        if max_steps is not None and run.progress.global_step >= max_steps:
            run.result.stopped_at_max_steps = True
            return run.result
        started = time.perf_counter()
        train_loss = run.train_epoch(epoch, max_steps)
        if train_loss is None:
            run.result.stopped_at_max_steps = True
            return run.result
        run.result.history.append(run.end_epoch(epoch, train_loss, time.perf_counter() - started))
        every = cfg.train.save_every_epochs
        if every and (epoch + 1) % every == 0:
            run.save()
        run.meter.restart(run.progress.global_step)
    run.save()
    return run.result
