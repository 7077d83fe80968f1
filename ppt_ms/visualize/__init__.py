"""Token maps: which patches each token of a reduced ViT stands for, drawn as pictures."""
from .render import BORDER, FILLS, PRUNED_GREY, compose, group_colours, input_panel, palette, token_panel
from .run import load_image, prepare, visualize
from .trace import PRUNED, BlockSources, patch_groups
