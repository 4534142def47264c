"""Import heavy optional modules on first use, with an install hint when they are missing."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from edgecnn.errors import MissingDependencyError


def require(module: str, package: str | None = None, extra: str | None = None,
            purpose: str = "") -> ModuleType:
    """Import ``module`` or raise a one-line error telling what to ``pip install``.

    Example:
        tf = require("tensorflow", extra="train", purpose="training")
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        # Only a missing top-level package is the user's install problem; an ImportError from
        # inside an installed package is a real bug and must surface as such.
        missing = getattr(err, "name", None) or ""
        if missing.split(".")[0] != module.split(".")[0]:
            raise
        raise MissingDependencyError(package or module.split(".")[0], extra, purpose) from None


def tensorflow() -> ModuleType:
    """TensorFlow with its start-up chatter silenced (absl/C++ logs, oneDNN and CUDA notices).

    The chatter is written by C++ straight to file descriptor 2 on import and on the first
    device query, before TF_CPP_MIN_LOG_LEVEL applies, so both happen inside a descriptor-level
    capture; ``edgecnn --verbose`` (EDGECNN_VERBOSE=1) shows it.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ.get("EDGECNN_VERBOSE"):
        return require("tensorflow", extra="train", purpose="training and conversion")
    from edgecnn.quiet import captured_output

    with captured_output():
        tf = require("tensorflow", extra="train", purpose="training and conversion")
        tf.config.list_physical_devices()
    return tf


def keras() -> ModuleType:
    tensorflow()
    return require("keras", extra="train", purpose="training and conversion")
