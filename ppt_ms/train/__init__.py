"""Training from a config: lr schedule, AdamW groups, train step, EMA, checkpoints, resume, data parallel.

Checkpoints (step<N>.ckpt in train.output_dir) hold the model, optimizer moments and step, EMA
shadows, loss scale and the position (epoch, step in epoch, global step); a run resumed from one
reaches the same parameters as an unbroken run (see data_order for the conditions).
"""
from .checkpointing import (Progress, latest_checkpoint, list_checkpoints, remove_old_checkpoints,
                            restore_training_checkpoint, save_training_checkpoint, training_state)
from .data_order import epoch_seed
from ..distributed import World, init_world, launched_by_msrun
from .ema import ParameterEMA, averaged_weights
from .errors import ResumeError, TrainingDiverged, TrainingError
from .loss import create_loss
from .optimizer import StepLearningRate, create_optimizer, optimizer_state, param_groups, skips_weight_decay
from .schedule import lr_schedule, scaled_lr
from .step import TrainStep, create_loss_scaler
from .trainer import TrainResult, train

__all__ = [
    "ParameterEMA", "Progress", "ResumeError", "StepLearningRate", "TrainResult", "TrainStep", "TrainingDiverged",
    "TrainingError", "World", "averaged_weights", "create_loss", "create_loss_scaler", "create_optimizer",
    "epoch_seed", "init_world", "latest_checkpoint", "launched_by_msrun", "list_checkpoints", "lr_schedule",
    "optimizer_state", "param_groups", "remove_old_checkpoints", "restore_training_checkpoint",
    "save_training_checkpoint", "scaled_lr", "skips_weight_decay", "train", "training_state",
]
