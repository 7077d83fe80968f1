"""Checkpoint I/O: read timm/DeiT checkpoints without torch, load them into
ppt_ms networks, write MindSpore checkpoints atomically."""
from .convert import ConversionSummary, convert_checkpoint
from .errors import CheckpointError, UnsafeCheckpointError
from .loading import LoadReport, load_pretrained
from .pos_embed import resize_pos_embed
from .pth_reader import read_pth
from .saving import save_checkpoint_atomic
from .state_dict import detect_format, read_state_dict, unwrap_state_dict

__all__ = ["CheckpointError", "UnsafeCheckpointError", "read_state_dict", "read_pth", "detect_format",
           "unwrap_state_dict", "load_pretrained", "LoadReport", "resize_pos_embed", "save_checkpoint_atomic",
           "convert_checkpoint", "ConversionSummary"]
