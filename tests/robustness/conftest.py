"""Lets the robustness tests import the shared helpers of tests/ (numpy_reference, tiny_vit)."""
import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
