"""Model registry; building a model imports TensorFlow, listing them does not."""

from edgecnn.models.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]
