"""Accuracy / MACs / speed trade-off sweeps over token-reduction settings."""
from .grid import SweepPoint, override_flags, parse_grid, parse_methods, split_values, sweep_points
from .pareto import pareto_front, pick_setting
from .plot import line_plot, nice_ticks
from .run import run_sweep, score_of, score_text, write_results
