"""The models, images and datasets of the cross-architecture parity check (tests/parity.py).

Builds edgecnn's own models where TensorFlow exists (a digits classifier trained for a few
seconds and a ``det_test`` detector, each converted to int8 and float32 by ``convert_model``),
adds the hand-wired camera/bench models and the committed ``tests/golden/tiny_detect.tflite``,
writes the images and datasets they run on, and records what this machine computes.
``.ci/arm64`` runs it on x86_64 and checks the record on aarch64, where TensorFlow is absent
(as on a Raspberry Pi).

Usage:
    python tests/parity_models.py OUT_DIR      # OUT_DIR/models also serves $EDGECNN_TEST_MODELS
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
sys.path.insert(1, str(TESTS.parent))

import camera_models  # noqa: E402
import parity  # noqa: E402

SCENE_SIZES = ((640, 480), (300, 500), (64, 64), (1280, 720))
DIGIT_IMAGES = 40


def _png(path: Path, image: np.ndarray) -> str:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise RuntimeError(f"cannot write {path}")
    return str(path)


def _scene(width: int, height: int, seed: int) -> np.ndarray:
    """Noise with a few filled shapes: every detector stage gets work, and PNG keeps it exact."""
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)
    for _ in range(4):
        x, y = int(rng.integers(0, width * 3 // 4)), int(rng.integers(0, height * 3 // 4))
        w, h = int(rng.integers(width // 8, width // 3)), int(rng.integers(height // 8,
                                                                          height // 3))
        color = tuple(int(c) for c in rng.integers(80, 256, 3))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + w, y + h), color, -1)
        else:
            cv2.circle(img, (x + w // 2, y + h // 2), min(w, h) // 2, color, -1)
    return img


def _squares(seed: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """White squares on black, on the bright detector's 8-pixel cells, with their boxes."""
    rng = np.random.default_rng(seed)
    img = np.zeros((64, 64, 3), np.uint8)
    cells = rng.choice(64, size=3, replace=False)
    boxes = []
    for c in cells:
        x, y = int(c % 8) * 8, int(c // 8) * 8
        img[y:y + 8, x:x + 8] = 255
        boxes.append((x, y, x + 8, y + 8))
    return img, boxes


def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _digits_dataset(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
    """An MNIST-style idx folder whose test split is ``x, y`` (train: the same, unused)."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(_idx(x[..., 0]))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx(y))


def _squares_dataset(folder: Path, n: int) -> None:
    """A YOLO dataset of :func:`_squares` images with the one class of the bright detector."""
    for i in range(n):
        img, boxes = _squares(100 + i)
        _png(folder / "images" / "val" / f"{i:02d}.png", img)
        lines = [f"0 {(x1 + x2) / 128:.6f} {(y1 + y2) / 128:.6f} {(x2 - x1) / 64:.6f} "
                 f"{(y2 - y1) / 64:.6f}" for x1, y1, x2, y2 in boxes]
        label = folder / "labels" / "val" / f"{i:02d}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("\n".join(lines) + "\n")
    (folder / "data.yaml").write_text("path: .\ntrain: images/val\nval: images/val\n"
                                      "names: [blob]\n")


def _synth_dataset(folder: Path, labels: list[str]) -> None:
    """Synthetic shapes (``edgecnn data synth``), classes renamed to the detector's labels."""
    from edgecnn.data.synth import make_synthetic_dataset

    yaml_path = make_synthetic_dataset(folder, n_train=2, n_val=10, imgsz=64, seed=5)
    keep = [ln for ln in yaml_path.read_text().splitlines() if not ln.startswith("names:")]
    yaml_path.write_text("\n".join(keep + [f"names: [{', '.join(labels)}]"]) + "\n")


def _detector_run(folder: Path) -> Path:
    """``det_test`` (random weights, as in tests/model_factory.py) with its class head spread:
    the focal-loss prior bias keeps every untrained score near 0.01, one int8 level, which
    would leave nothing to detect; zero bias and larger weights give scores all over 0..1."""
    import model_factory as mf

    from edgecnn.rundir import load_keras_model

    run = folder / "det_spread"
    shutil.copytree(mf.detector_run(), run)
    model, _ = load_keras_model(run)
    for layer in model.layers:
        if layer.name.endswith("_cls_pred"):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel * 250.0, np.zeros_like(bias)])
    model.save(run / "model.keras")
    return run


def build(out: Path, detector: bool = True, config=None) -> dict:
    """Write models, images and datasets into ``out`` and record this machine's results.

    Args:
        out: a new folder.
        detector: also build and convert the ``det_test`` detector (~30 s more).
        config: a pytest config, whose cache then keeps the camera models between runs.
    """
    import model_factory as mf

    out = Path(out)
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name in camera_models.MODEL_NAMES:
        shutil.copy(camera_models.model_path(config, name), models / name)
    shutil.copy(TESTS / "golden" / "tiny_detect.tflite", models / "tiny_detect.tflite")
    for quant in ("int8", "float32"):
        shutil.copy(mf.converted(quant).path, models / f"digits_{quant}.tflite")

    data = mf.digits_data()
    digits = [_png(out / "images" / "digits" / f"{i:02d}_{int(data.y_test[i])}.png",
                   data.x_test[i]) for i in range(DIGIT_IMAGES)]
    _digits_dataset(out / "data" / "digits", data.x_test, data.y_test.astype(np.uint8))
    scenes = [_png(out / "images" / "scenes" / f"{w}x{h}.png", _scene(w, h, i))
              for i, (w, h) in enumerate(SCENE_SIZES)]
    squares = [_png(out / "images" / "squares" / f"{i}.png", _squares(i)[0]) for i in range(4)]
    _squares_dataset(out / "data" / "squares", 8)

    def rel(paths):
        return [str(Path(p).relative_to(out)) for p in paths]

    cases = [{"model": f"models/digits_{q}.tflite", "images": rel(digits)}
             for q in ("int8", "float32")]
    cases += [{"model": "models/brightness_classifier.tflite", "images": rel(squares + scenes)},
              {"model": "models/tiny_detect.tflite", "images": rel(scenes)}]
    cases += [{"model": f"models/{name}", "images": rel(squares + scenes)}
              for name in ("bright_detector.tflite", "bright_detector_int8.tflite")]
    evals = [{"model": f"models/digits_{q}.tflite", "data": "data/digits", "split": "test"}
             for q in ("int8", "float32")]
    evals.append({"model": "models/bright_detector_int8.tflite", "data": "data/squares/data.yaml",
                  "split": "val"})
    if detector:
        from converters import convert_model

        run = _detector_run(out / "work")
        for quant in ("int8", "float32"):
            convert_model(run, models / f"det_{quant}.tflite", quant, calib_size=8, held_out=4)
            cases.append({"model": f"models/det_{quant}.tflite", "images": rel(scenes),
                          "score_threshold": 0.6})
        shutil.rmtree(out / "work")
        _synth_dataset(out / "data" / "synth", ["a", "b", "c", "d"])
        evals.append({"model": "models/det_int8.tflite", "data": "data/synth/data.yaml",
                      "split": "val"})
    return parity.record(out, cases, evals)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="folder to write (must not exist)")
    ap.add_argument("--no-detector", action="store_true",
                    help="skip the det_test detector (its conversion takes the longest)")
    args = ap.parse_args(argv)
    if args.out.exists():
        ap.error(f"{args.out} exists; give a new folder")
    doc = build(args.out, detector=not args.no_detector)
    n_images = sum(len(c["images"]) for c in doc["cases"])
    print(f"parity reference: {len(doc['cases'])} models, {n_images} model-image pairs, "
          f"{len(doc['evals'])} evals on {doc['machine']['machine']} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
