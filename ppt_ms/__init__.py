"""ppt_ms: token reduction (PPT, ToMe) for Vision Transformers in MindSpore."""
from .models import create_model, list_models, register_model
from .token_reduction import token_plan

__version__ = "0.1.0"
