"""Model architectures, registered by name. Importing this package does not import Keras."""

from edgecnn.models.registry import create_model, get_entry, list_models, register_model

__all__ = ["create_model", "get_entry", "list_models", "register_model"]
