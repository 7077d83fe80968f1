"""Calibration: a token-reduction schedule for a MACs or speed budget, chosen on unlabelled images
(run.py: the steps; schedules.py: schedules within a budget; search.py: the search; objective.py:
the label-free distance to the unreduced network)."""
from .run import CalibrationError, calibrate

__all__ = ["CalibrationError", "calibrate"]
