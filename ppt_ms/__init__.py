"""ppt_ms: token reduction (PPT, ToMe) for Vision Transformers in MindSpore."""
from .checkpoint import load_pretrained, read_state_dict, save_checkpoint_atomic
from .config import load_config, make_config, parse_cli
from .evaluate import evaluate, evaluate_checkpoint
from .flops import count_macs, count_macs_for
from .formulations import prepare, with_inference_layout
from .models import Features, TokenTrace, create_model, list_models, register_model
from .token_reduction import token_plan
from .train import train

__version__ = "0.1.0"
__all__ = ["create_model", "list_models", "register_model", "Features", "TokenTrace", "token_plan", "load_pretrained",
           "read_state_dict", "save_checkpoint_atomic", "count_macs", "count_macs_for", "load_config",
           "make_config", "parse_cli", "train", "evaluate", "evaluate_checkpoint", "prepare", "with_inference_layout"]
