"""Errors raised while reading, loading or writing checkpoints."""
from ..errors import PPTMSError


class CheckpointError(PPTMSError):
    """A checkpoint cannot be read, does not fit the network, or cannot be written.
    The message names the file or the offending keys."""


class UnsafeCheckpointError(CheckpointError):
    """A pickled checkpoint asks for a global that is not one of the few that
    rebuild tensors; nothing from the file was executed."""
