"""Find a TFLite interpreter without TensorFlow: ai_edge_litert first, tflite_runtime second."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from functools import lru_cache

from edgecnn.errors import UsageError

_CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
)


@lru_cache(maxsize=1)
def interpreter_module():
    """The first importable interpreter module, e.g. ``ai_edge_litert.interpreter``."""
    for module_name, _ in _CANDIDATES:
        try:
            return importlib.import_module(module_name)
        except ImportError:
            continue
    raise UsageError(
        "no TFLite interpreter found (tried ai_edge_litert and tflite_runtime)",
        "install one with: pip install ai-edge-litert",
    )


def runtime_info() -> dict:
    """Name and version of the interpreter package in use, for benchmark tables."""
    module = interpreter_module()
    package = module.__name__.split(".")[0]
    version = "unknown"
    try:
        from importlib.metadata import version as dist_version

        dist = dict(_CANDIDATES)[module.__name__]
        version = dist_version(dist)
    except Exception:  # noqa: BLE001 - version is informational only
        pass
    return {"runtime": package, "runtime_version": version}


def make_interpreter(model_content: bytes, num_threads: int | None = None,
                     default_delegates: bool = True):
    """An interpreter over the model bytes, with XNNPACK on ``num_threads`` threads.

    ``default_delegates=False`` runs the plain builtin kernels: slower, but the op list then
    shows the model's own operators instead of one ``DELEGATE`` node (used by inspect).
    """
    module = interpreter_module()
    kwargs: dict[str, object] = {"model_content": model_content}
    if num_threads is not None:
        kwargs["num_threads"] = int(num_threads)
    resolver = getattr(module, "OpResolverType", None)
    if not default_delegates and resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        return module.Interpreter(**kwargs)
    except ValueError as err:
        raise UsageError(f"not a valid TFLite model: {str(err).splitlines()[0]}",
                         "the file may be truncated or damaged; re-copy it or re-run "
                         "'edgecnn convert'") from None


# What the interpreter's C++ logging prints on its own when XNNPACK takes a model: a line on
# stderr, once per process. It says nothing a user can act on (inspect and bench report
# whether XNNPACK took the model); real errors still get through.
_CHATTER = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)
_allocate_lock = threading.Lock()


def allocate(interpreter) -> None:
    """``interpreter.allocate_tensors()``, with the interpreter's INFO chatter on stderr kept
    out of the user's terminal unless ``--verbose`` (``EDGECNN_VERBOSE=1``).

    Anything else it writes to stderr (a warning, an error) is passed on.
    """
    if os.environ.get("EDGECNN_VERBOSE") == "1":
        interpreter.allocate_tensors()
        return
    from edgecnn.quiet import captured_output

    # fd 2 is process-wide: one allocation at a time, so no other thread's capture overlaps
    with _allocate_lock, captured_output(fds=(2,)) as log:
        interpreter.allocate_tensors()
    rest = [line for line in log.text.splitlines() if line.strip() and line not in _CHATTER]
    if rest:
        print("\n".join(rest), file=sys.stderr, flush=True)
