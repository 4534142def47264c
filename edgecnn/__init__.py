"""edgecnn: compact CNNs from data to a phone or a Raspberry Pi.

The package root stays import-light: importing ``edgecnn`` must not pull in TensorFlow,
so the device side (``edgecnn.runtime``, ``edgecnn.camera``, ``edgecnn.bench``) runs on a
Raspberry Pi with only the base install.
"""

__version__ = "0.1.0"

from edgecnn.errors import EdgeCNNError, UsageError

__all__ = ["__version__", "EdgeCNNError", "UsageError"]
