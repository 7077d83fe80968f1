"""Token reduction: PPT (adaptive pruning & pooling), ToMe (merging), pruning."""
from .schedule import BlockPlan, token_plan, plan_from_config, tome_schedule, layer_schedule
from .settings import METHODS
from .reducers import build_reducer, TokenReducer, PPTReducer, ToMeReducer, PruneReducer
