"""Dataset readers. Importing this package imports neither TensorFlow nor the detection readers.

``load_classification`` is loaded on first use, so ``import edgecnn.data`` stays cheap.
"""

from __future__ import annotations

__all__ = ["ClassificationData", "load_classification"]


def __getattr__(name: str):
    if name in __all__:
        from edgecnn.data import classification

        return getattr(classification, name)
    raise AttributeError(f"module 'edgecnn.data' has no attribute {name!r}")
