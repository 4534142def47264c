"""``load_classification(SPEC)``: every classification dataset as uint8 NHWC numpy arrays.

SPEC is a built-in name (``digits``, ``fashion-mnist``, ``mnist``) or a path: a folder of idx
files, or an image folder with one sub-folder per class. Splits are made here, seeded, so
training, calibration, evaluation and pruning all see the same validation set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecnn import safeio
from edgecnn.errors import UsageError

SYSTEM_DATASETS = Path("/usr/share/datasets")
FASHION_LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                  "Sneaker", "Bag", "Ankle boot")
DIGIT_LABELS = tuple(str(i) for i in range(10))
# name -> (labels, horizontal flip is a label-preserving augmentation)
BUILTINS = {
    "digits": (DIGIT_LABELS, False),
    "mnist": (DIGIT_LABELS, False),
    "fashion-mnist": (FASHION_LABELS, True),
}
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist"}
DEFAULT_FOLDER_IMGSZ = 64
LABELS_FILE_LIMIT = 1 << 20


@dataclass(frozen=True)
class ClassificationData:
    """Train/val/test splits as uint8 NHWC arrays with int64 labels.

    ``x_test`` is the dataset's own test split when it has one, else the validation split
    (``has_test`` tells which). ``warnings`` holds counted problems (skipped files, ...) that
    did not stop loading; ``skipped_images`` counts the image files that failed to decode.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: tuple[str, ...]
    color: str
    spec: str
    warnings: tuple[str, ...] = ()
    has_test: bool = True
    hflip: bool = True      # whether a horizontal flip keeps the label (not for digits)
    skipped_images: int = 0

    @property
    def imgsz(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[3])

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def summary(self) -> str:
        return (f"{self.spec}: {len(self.x_train)} train / {len(self.x_val)} val / "
                f"{len(self.x_test)} {'test' if self.has_test else 'test(=val)'}, "
                f"{self.imgsz}x{self.imgsz} {self.color}, {self.num_classes} classes")


def load_classification(spec: str, data_dir: str | os.PathLike | None = None,
                        imgsz: int | None = None, color: str | None = None,
                        val_split: float = 0.1, seed: int = 0,
                        max_train: int | None = None) -> ClassificationData:
    """Load dataset SPEC, resized to ``imgsz`` and converted to ``color`` if given.

    Args:
        spec: ``digits``, ``fashion-mnist``, ``mnist``, an idx folder or an image folder.
        data_dir: where to look for ``fashion-mnist`` / ``mnist`` idx files (the folder itself
            or its parent holding a ``fashion-mnist`` folder).
        imgsz: square side in pixels; None keeps the native size (image folders: 64).
        color: ``GRAY`` or ``RGB``; None keeps the dataset's own.
        val_split: fraction of the training split held out for validation (seeded).
        seed: seed of the train/val split.
        max_train: keep at most this many training samples (quick runs, tests).

    Example:
        data = load_classification("fashion-mnist", val_split=0.1)
        data.x_train.shape   # (54000, 28, 28, 1)
    """
    if not 0.0 < val_split < 1.0:
        raise UsageError(f"val split must be between 0 and 1, got {val_split}",
                         "use e.g. --val-split 0.1")
    if color is not None:
        color = color.upper()
        if color not in ("GRAY", "RGB"):
            raise UsageError(f"unknown color {color!r}", "use GRAY or RGB")
    if imgsz is not None and int(imgsz) < 4:
        raise UsageError(f"image size {imgsz} is too small", "use --imgsz 8 or more")
    name = _ALIASES.get(str(spec).lower(), str(spec).lower())
    warnings: list[str] = []
    skipped = 0
    hflip = True
    if name in BUILTINS:
        labels, hflip = BUILTINS[name]
        if name == "digits":
            from edgecnn.data.digits import load_digits

            splits = {"train": load_digits()}
        else:
            splits = _load_named_idx(name, data_dir)
        native = "GRAY"
    else:
        path = safeio.user_path(str(spec))
        if not path.exists():
            raise UsageError(f"unknown dataset {spec!r}: not a built-in name and no such path",
                             "use digits, fashion-mnist, mnist, an idx folder or an image folder "
                             "with one sub-folder per class")
        from edgecnn.data import idx

        if idx.has_idx(path):
            splits = idx.load_idx_folder(path)
            labels = _labels_file(path, warnings) or tuple(
                str(i) for i in range(int(splits["train"][1].max()) + 1))
            native = "GRAY" if splits["train"][0].shape[-1] == 1 else "RGB"
        elif path.is_dir():
            from edgecnn.data.folder import load_image_folder

            native = color or "RGB"
            folder = load_image_folder(path, int(imgsz or DEFAULT_FOLDER_IMGSZ), native)
            labels, warnings, skipped = folder.labels, list(folder.warnings), folder.skipped
            splits = {"train": (folder.x, folder.y)}
        else:
            raise UsageError(f"{spec} is not a classification dataset",
                             "pass an idx folder or an image folder with one sub-folder per "
                             "class")
    _check_labels(splits, labels, spec)
    target_color = color or native
    splits = {k: (_convert(x, imgsz, target_color), y) for k, (x, y) in splits.items()}
    x_train, y_train, x_val, y_val = _split(*splits["train"], val_split, seed)
    if max_train is not None:
        x_train, y_train = x_train[:int(max_train)], y_train[:int(max_train)]
    has_test = "test" in splits
    x_test, y_test = splits["test"] if has_test else (x_val, y_val)
    return ClassificationData(x_train, y_train, x_val, y_val, x_test, y_test, tuple(labels),
                              target_color, str(spec), tuple(warnings), has_test, hflip,
                              skipped)


def _load_named_idx(name: str, data_dir) -> dict:
    from edgecnn.data import idx

    candidates = []
    if data_dir is not None:
        # An explicit --data-dir is where the user says the data is: look nowhere else.
        candidates = [Path(data_dir), Path(data_dir) / name]
    else:
        candidates = [SYSTEM_DATASETS / name, Path.home() / ".keras" / "datasets" / name]
    for folder in candidates:
        if idx.has_idx(folder):
            return idx.load_idx_folder(folder)
    if data_dir is None and not os.environ.get("EDGECNN_OFFLINE"):
        downloaded = _keras_download(name)
        if downloaded is not None:
            return downloaded
    where = f"in {data_dir}" if data_dir is not None else f"in {SYSTEM_DATASETS / name}"
    debian = "apt-get install dataset-fashion-mnist" if name == "fashion-mnist" else \
        "put the idx files in a folder"
    raise UsageError(f"dataset {name} not found {where} and it cannot be downloaded",
                     f"get it one of three ways: {debian} (files in {SYSTEM_DATASETS / name}); "
                     f"--data-dir pointing to a folder with the {name} idx files; or run once "
                     "online so Keras downloads it")


def _keras_download(name: str) -> dict | None:
    """Fetch through ``keras.datasets`` (online only); None when that fails."""
    try:
        from edgecnn.lazy import keras

        module = getattr(keras().datasets, name.replace("-", "_"))
        (xtr, ytr), (xte, yte) = module.load_data()
    except Exception:  # noqa: BLE001 - any failure here means "not available offline"
        return None
    return {"train": (xtr[..., None], ytr.astype(np.int64)),
            "test": (xte[..., None], yte.astype(np.int64))}


def _labels_file(folder: Path, warnings: list[str]) -> tuple[str, ...] | None:
    f = folder / "labels.txt"
    if not safeio.exists(f):
        return None
    try:
        text, encoding = safeio.read_text(f, LABELS_FILE_LIMIT)
    except OSError as err:
        raise UsageError(f"cannot read {f}: {safeio.reason(err)}",
                         "labels.txt is a text file with one class name a line") from None
    if encoding == "latin-1":
        warnings.append(f"{f} is not UTF-8; read as Latin-1 (check the class names)")
    names = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return tuple(names) or None


def _check_labels(splits: dict, labels, spec: str) -> None:
    for split, (_, y) in splits.items():
        if len(y) and (y.min() < 0 or y.max() >= len(labels)):
            raise UsageError(f"{spec}: {split} labels go up to {int(y.max())} but there are "
                             f"{len(labels)} class names", "fix labels.txt next to the idx files")
    if len(np.unique(splits["train"][1])) < 2:
        raise UsageError(f"{spec}: the training split has only one class",
                         "a classifier needs at least 2 classes")


def _convert(x: np.ndarray, imgsz: int | None, color: str) -> np.ndarray:
    channels = 1 if color == "GRAY" else 3
    if x.shape[-1] != channels:
        code = cv2.COLOR_GRAY2RGB if channels == 3 else cv2.COLOR_RGB2GRAY
        x = np.stack([cv2.cvtColor(im, code) for im in x])
        x = x.reshape(*x.shape[:3], channels)
    if imgsz is not None and (x.shape[1], x.shape[2]) != (imgsz, imgsz):
        interp = cv2.INTER_AREA if x.shape[1] > imgsz else cv2.INTER_LINEAR
        x = np.stack([cv2.resize(im, (imgsz, imgsz), interpolation=interp) for im in x])
        x = x.reshape(len(x), imgsz, imgsz, channels)
    return np.ascontiguousarray(x, dtype=np.uint8)


def _split(x: np.ndarray, y: np.ndarray, val_split: float, seed: int):
    """Seeded, stratified train/val split (every class keeps ``val_split`` of its samples)."""
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        k = int(round(len(members) * val_split))
        k = min(max(k, 1), len(members) - 1) if len(members) > 1 else 0
        val_idx.append(members[:k])
    val = np.sort(np.concatenate(val_idx))
    mask = np.ones(len(y), dtype=bool)
    mask[val] = False
    train = np.flatnonzero(mask)
    train = train[rng.permutation(len(train))]
    return x[train], y[train], x[val], y[val]
