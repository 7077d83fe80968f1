"""ViT/DeiT models with token reduction, created by name."""
from .registry import create_model, list_models, register_model, is_model
from .vision_transformer import (ARCHITECTURES, Block, Features, TokenTrace, VisionTransformer, default_num_classes,
                                 logits_of)
