"""Shared test helpers: the NumPy reference, conformance data, a tiny ViT, paths and tool loading.
pytest.ini puts tests/ on the path, so tests import them as `helpers.<module>`."""
