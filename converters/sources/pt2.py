"""PyTorch ExportedProgram source (``torch.export.save`` -> ``.pt2``), loaded without pickle.

``torch.export.load`` is not safe on untrusted files as it stands (torch 2.13/2.14): weights and
constants marked ``use_pickle`` are read with ``torch.load(weights_only=False)``, non-tensor
constants with ``pickle.loads``, and the sample inputs fall back to ``weights_only=False`` when
the safe load fails (torch/export/pt2_archive/_package.py, torch/_export/serde/serialize.py).
So edgecnn first reads the archive's JSON configs and refuses any pickled payload, then loads
with ``torch.load`` forced to ``weights_only=True`` and the raw unpicklers disabled: a file that
needs pickle fails with a one-line error instead of running code.

The route: litert-torch on the program's module (:mod:`converters.sources.torch_route`).
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from converters.sources.base import SourceModel, SourceMetadata, image_input
from edgecnn.errors import UsageError
from edgecnn.lazy import require

MAX_CONFIG_BYTES = 64 << 20


def _torch():
    return require("torch", extra="convert", purpose="reading PyTorch ExportedPrograms")


def check_archive(path: Path) -> None:
    """Refuse a ``.pt2`` whose weights or constants are pickled, or that carries AOTInductor code.

    Only raw tensor payloads (``use_pickle: false``) are accepted: they are read as bytes.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if any("/data/aotinductor/" in f"/{n}" for n in names):
                raise UsageError(f"{path.name} holds AOTInductor code, which edgecnn does not "
                                 "load", "save the program with torch.export.save only")
            for name in names:
                if not name.endswith("_config.json") or "/data/" not in f"/{name}":
                    continue
                info = zf.getinfo(name)
                if info.file_size > MAX_CONFIG_BYTES:
                    raise UsageError(f"{path.name}: {name} is implausibly large")
                config = json.loads(zf.read(name)).get("config", {})
                for fqn, entry in config.items():
                    if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(
                            ("weight_", "tensor_", "constant_")):
                        raise UsageError(
                            f"{path.name} stores {fqn!r} as a pickled object; loading it would "
                            "run code from the file, so edgecnn refuses it",
                            "export a model whose weights and constants are plain tensors")
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path.name} is not a readable .pt2 archive: {err}",
                         "re-export it with torch.export.save") from None


@contextlib.contextmanager
def _no_pickle(torch):
    """Within the block: torch.load only with weights_only=True, no raw unpickling."""
    from torch.export.pt2_archive import _package

    real_load = torch.load

    def safe_load(f, *args, **kwargs):
        kwargs["weights_only"] = True
        return real_load(f, *args, **kwargs)

    def refuse(*_args, **_kwargs):
        raise UsageError("the .pt2 holds a pickled object; loading it would run code from the "
                         "file, so edgecnn refuses it")

    class _NoPickle:
        loads = staticmethod(refuse)
        load = staticmethod(refuse)

    saved = (torch.load, _package.pickle, torch._C._pickle_load_obj)  # noqa: SLF001
    torch.load, torch._C._pickle_load_obj = safe_load, refuse
    setattr(_package, "pickle", _NoPickle)   # a module attribute replaced by a class
    try:
        yield
    finally:
        torch.load, _package.pickle, torch._C._pickle_load_obj = saved


def load_program(path: Path):
    """The ExportedProgram in ``path``, loaded without unpickling anything."""
    torch = _torch()
    check_archive(path)
    data = path.read_bytes()   # one read: what was checked is what is loaded
    try:
        with _no_pickle(torch):
            return torch.export.load(io.BytesIO(data))
    except UsageError:
        raise
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad archive
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"cannot load the ExportedProgram {path.name}: {first}",
                         "save it with torch.export.save from the same or an older torch") \
            from None


def load(path: Path, layout: str | None = None) -> SourceModel:
    """Describe the ``.pt2`` at ``path``: its one image input, outputs, a torch reference."""
    torch = _torch()
    program = load_program(path)
    user_inputs = list(program.graph_signature.user_inputs)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    if len(user_inputs) != 1:
        raise UsageError(f"{path.name} takes {len(user_inputs)} inputs; edgecnn converts "
                         "single-image models", "export the model with one image input")
    val = placeholders[user_inputs[0]].meta.get("val")
    shape = [int(d) if isinstance(d, int) else None for d in getattr(val, "shape", [])]
    inp = image_input(user_inputs[0], shape, layout)
    module = program.module()

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            out = module(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
        outs = out if isinstance(out, (list, tuple)) else [out]
        return [o.detach().numpy() for o in outs]

    probe = run(np.zeros(inp.shape, np.float32))
    outputs = tuple((f"output_{i}", tuple(o.shape)) for i, o in enumerate(probe))
    return SourceModel(format="pt2", name=path.stem, input=inp, outputs=outputs,
                       metadata=SourceMetadata(), reference=run)
