"""Errors of a training run; each message says what happened and what to do."""
from ..errors import PPTMSError


class TrainingError(PPTMSError, RuntimeError):
    """Training cannot start or continue."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class ResumeError(TrainingError):
    """A checkpoint cannot be resumed by this run (missing state, different schedule or data)."""
