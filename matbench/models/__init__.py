"""Models: the Inpainter interface and the one model registry (see base.py)."""

from matbench.models.base import (
    Inpainter,
    ModelInfo,
    Requirements,
    create_model,
    get_model_info,
    list_models,
    register_model,
)

__all__ = [
    "Inpainter",
    "ModelInfo",
    "Requirements",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
]
