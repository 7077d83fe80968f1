"""Model registry: `create_model(name, **overrides)` as in mindcv/timm."""
from typing import Callable, Dict, List

_MODELS: Dict[str, Callable] = {}


def register_model(fn: Callable) -> Callable:
    """Decorator: register a model constructor under its function name."""
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> List[str]:
    return sorted(_MODELS)


def is_model(name: str) -> bool:
    return name in _MODELS


def create_model(name: str, **overrides):
    """Build a registered model; overrides include num_classes, img_size,
    drop_path_rate and token_reduction (a mapping or None)."""
    if name not in _MODELS:
        import difflib
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = " (did you mean %s?)" % ", ".join(close) if close else ""
        raise ValueError("unknown model %r%s; registered models: %s" % (name, hint, ", ".join(list_models())))
    return _MODELS[name](**overrides)
