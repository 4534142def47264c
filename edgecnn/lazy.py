"""Import heavy optional modules on first use, with an install hint when they are missing."""

from __future__ import annotations

import importlib
import os
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
    """TensorFlow with its start-up chatter silenced (C++ logs, oneDNN notice)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require("tensorflow", extra="train", purpose="training and conversion")


def keras() -> ModuleType:
    tensorflow()
    return require("keras", extra="train", purpose="training and conversion")
