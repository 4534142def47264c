"""Calibration and held-out images for conversion, in the exact form the device feeds them.

Images come from the run's training data (``RunInfo.data``) or from ``--calib SPEC``:
a classification dataset, a detection dataset (YOLO/VOC/COCO) or a plain folder of images.
They are turned into float model inputs by the runtime's own :class:`Preprocessor` (stretch or
letterbox, colour order, ``(pixel - mean) / std``) with a float32 tensor description, so the
converter calibrates on exactly what the device will compute before quantizing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from edgecnn.errors import UsageError
from edgecnn.images import list_images
from edgecnn.rundir import RunInfo
from edgecnn.runtime.metadata import InputSpec
from edgecnn.runtime.model import TensorInfo
from edgecnn.runtime.preprocess import Preprocessor

DEFAULT_CALIB_SIZE = 200
DEFAULT_HELD_OUT = 200


@dataclass(frozen=True)
class CalibrationImages:
    """uint8 images (HxWxC, any size) for calibration and for the agreement check.

    ``held_out`` never overlaps ``calib`` when the source has a test or validation split.
    ``labels`` are the source's class names when it has them (classification datasets).
    """

    calib: Sequence[np.ndarray]
    held_out: Sequence[np.ndarray]
    color: str                    # channel order of the images: "RGB" or "GRAY"
    source: str
    labels: tuple[str, ...] | None = None
    held_out_targets: np.ndarray | None = None
    # Detection datasets: per held-out image (boxes xyxy in its pixels, classes, width, height)
    held_out_boxes: tuple | None = None


def float_preprocessor(spec: InputSpec) -> Preprocessor:
    """The runtime preprocessor, producing float32 ``(pixel - mean) / std`` instead of int8,
    NHWC whatever the model's own layout."""
    info = TensorInfo(index=0, name="image", shape=(1, spec.height, spec.width, spec.channels),
                      dtype=np.dtype(np.float32), scale=0.0, zero_point=0)
    if spec.layout != "NHWC":
        spec = InputSpec(**{**spec.__dict__, "layout": "NHWC"})
    return Preprocessor(spec, info)


def to_model_inputs(images: Sequence[np.ndarray], spec: InputSpec, color: str) -> np.ndarray:
    """(N, H, W, C) float32 model inputs from uint8 images, as the runtime computes them."""
    pre = float_preprocessor(spec)
    if len(images) == 0:
        return np.zeros((0, spec.height, spec.width, spec.channels), np.float32)
    return np.concatenate([pre(np.asarray(im), color)[0] for im in images], axis=0)


def full_range_inputs(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Copy of ``x`` whose first sample holds a pixel of value 0 and one of 255.

    The converter takes the int8 input range from the calibration minimum and maximum. With
    both pixel extremes present, the range is exactly ``[(0 - mean) / std, (255 - mean) / std]``,
    so the input scale is ``1 / std`` and (for ``mean = 0``) the zero point is -128: a uint8
    pixel maps to int8 by subtracting 128, and no pixel value is clipped on the device.
    """
    if len(x) == 0:
        return x
    lut = float_preprocessor(spec).lut.astype(np.float32)   # (256, C)
    x = x.copy()
    x[0, 0, 0, :] = lut[0]
    x[0, 0, min(1, x.shape[2] - 1), :] = lut[255]
    return x


def representative_dataset(x: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's ``representative_dataset``: one batch-1 float32 sample at a time."""

    def generate() -> Iterator[list[np.ndarray]]:
        for sample in x:
            yield [sample[None].astype(np.float32)]

    return generate


def load_calibration_images(info: RunInfo, spec: str | None = None, size: int = DEFAULT_CALIB_SIZE,
                            held_out: int = DEFAULT_HELD_OUT,
                            data_dir: str | os.PathLike | None = None) -> CalibrationImages:
    """Calibration images from ``spec`` or, when None, from the run's training data.

    Args:
        info: the run being converted (task, input size, colour, training data spec).
        spec: ``--calib SPEC``; None uses ``info.data``.
        size: number of calibration images (100-300 is plenty for min/max calibration).
        held_out: number of images kept apart for the float-vs-quantized agreement check.
        data_dir: where built-in datasets live (``--data-dir``).
    """
    if size < 1:
        raise UsageError(f"--calib-size must be at least 1, got {size}", "use e.g. 200")
    source = spec or info.data
    if not source:
        raise UsageError("no calibration data: the run does not name its training data",
                         "pass --calib SPEC (a dataset or a folder of images)")
    data_dir = data_dir if data_dir is not None else info.data_dir
    path = Path(str(source)).expanduser()
    if path.is_dir() and _has_loose_images(path):
        return _loose_images(path, info, size, held_out)
    if info.task == "detect" or _looks_like_detection(path):
        return _detection_images(str(source), info, size, held_out)
    return _classification_images(str(source), info, size, held_out, data_dir)


def _classification_images(spec: str, info: RunInfo, size: int, held_out: int,
                           data_dir) -> CalibrationImages:
    from edgecnn.data import load_classification

    h, w = info.imgsz
    seed = int(info.seed)
    data = load_classification(spec, data_dir=data_dir, imgsz=h if h == w else None,
                               color=info.color if info.channels in (1, 3) else None,
                               val_split=_val_split(info), seed=seed)
    rng = np.random.default_rng(seed)
    calib = data.x_train[rng.permutation(len(data.x_train))[:size]]
    pick = rng.permutation(len(data.x_test))[:held_out]
    return CalibrationImages(list(calib), list(data.x_test[pick]), data.color, spec,
                             tuple(data.labels), data.y_test[pick])


def _val_split(info: RunInfo) -> float:
    """The training run's validation fraction, so held-out images are the run's own val set."""
    return info.val_split


def _detection_images(spec: str, info: RunInfo, size: int, held_out: int) -> CalibrationImages:
    from edgecnn.data.detection import load_detection_dataset

    dataset = load_detection_dataset(spec, seed=int(info.seed))
    rng = np.random.default_rng(int(info.seed))
    train = [dataset.train[i].image_path for i in rng.permutation(len(dataset.train))]
    calib = _read_images(train[:size], info.color)
    if not calib:
        raise UsageError(f"no readable training images in {spec} to calibrate on",
                         "check the dataset with 'edgecnn data check'")
    held, truth = [], []
    for sample in [dataset.val[i] for i in rng.permutation(len(dataset.val))][:held_out]:
        image = _read_images([sample.image_path], info.color)
        if image:   # kept only with its boxes, so the two lists stay aligned
            held += image
            truth.append((sample.boxes, sample.classes, sample.width, sample.height))
    if not held:
        return CalibrationImages(calib, calib[:held_out], info.color, spec,
                                 tuple(dataset.names))
    return CalibrationImages(calib, held, info.color, spec, tuple(dataset.names),
                             held_out_boxes=tuple(truth))


def _looks_like_detection(path: Path) -> bool:
    from edgecnn.data.loose import find_loose_layout

    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        return True
    # images/ beside annots/ (the kangaroo layout) is a detection dataset too, not class folders
    return path.is_dir() and (any((path / name).exists() for name in
                                  ("data.yaml", "data.yml", "Annotations", "annotations"))
                              or find_loose_layout(path) is not None)


def _has_loose_images(folder: Path) -> bool:
    return bool(list_images(folder))


def _loose_images(folder: Path, info: RunInfo, size: int, held_out: int) -> CalibrationImages:
    files = list_images(folder)
    rng = np.random.default_rng(int(info.seed))
    files = [files[i] for i in rng.permutation(len(files))]
    images = _read_images(files[:size + held_out], info.color)
    if not images:
        raise UsageError(f"no readable images in {folder}", "pass a folder of jpg/png images")
    # A plain folder has no split: hold out the tail when there is enough, else reuse.
    calib = images[:size]
    rest = images[size:] or images
    return CalibrationImages(calib, rest[:held_out], info.color, str(folder))


def _read_images(files: Sequence[Path], color: str) -> list[np.ndarray]:
    """Decoded images in ``color`` order; unreadable files are skipped (calibration needs
    only a sample, and the dataset checks report bad files)."""
    import cv2

    from edgecnn.data.detection import ImageDecodeError, read_image

    images = []
    for f in files:
        try:
            image = read_image(f)
        except ImageDecodeError:
            continue
        code = cv2.COLOR_BGR2GRAY if color == "GRAY" else cv2.COLOR_BGR2RGB
        images.append(cv2.cvtColor(image, code))
    return images
