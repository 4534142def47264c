"""The quickstart's detection step: synthetic shapes -> det_s -> int8 ``.tflite`` -> mAP.

Generates a small synthetic dataset, trains a detector from scratch, converts it to int8,
measures COCO mAP of the Keras model and of the int8 ``.tflite`` on the val split, and runs the
int8 model through the runtime ``Detector`` on one val image, saving it with boxes drawn.
Sized to take a couple of minutes (``--fast``: seconds, tiny model, mAP not meaningful).
"""

from __future__ import annotations


def detect_step(ctx) -> str:
    """``ctx`` is the quickstart context (``work``, ``options.fast``, ``results``, ``report``)."""
    import cv2

    from converters import convert_model
    from edgecnn.data.detection import load_detection_dataset, read_image
    from edgecnn.data.synth import make_synthetic_dataset
    from edgecnn.evaluate.detect import evaluate_detection
    from edgecnn.rundir import RunInfo
    from edgecnn.runtime.detector import Detector, DetectorOptions
    from edgecnn.runtime.task import Task
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.detect import train_detector

    fast = ctx.options.fast
    arch, imgsz = ("det_test", 64) if fast else ("det_s", 128)
    n_train, n_val, epochs = (32, 8, 2) if fast else (800, 100, 20)
    data = make_synthetic_dataset(ctx.work / "shapes", n_train, n_val, imgsz=imgsz,
                                  seed=ctx.options.seed)
    run = train_detector(TrainConfig(task=Task.DETECT, data=str(data), arch=arch,
                                     out=str(ctx.work / "det_run"), imgsz=imgsz, epochs=epochs,
                                     batch=16, width=1.0 if fast else 1.5,
                                     seed=ctx.options.seed, verbose=0))
    metrics = RunInfo.load(run).metrics
    tflite = convert_model(run, ctx.work / "shapes_det_int8.tflite", quant="int8",
                           held_out=0).path
    keras_map = evaluate_detection(run, str(data))
    int8_map = evaluate_detection(tflite, str(data), threads=2)

    det = Detector.from_file(tflite, DetectorOptions(threads=2))
    sample = load_detection_dataset(str(data)).val[0]
    image = read_image(sample.image_path)
    found = det.detect(image)
    for d in found:
        b = d.box
        cv2.rectangle(image, (int(b.left), int(b.top)), (int(b.right), int(b.bottom)),
                      (0, 255, 0), 1)
    ok, png = cv2.imencode(".png", cv2.resize(image, None, fx=2, fy=2,
                                              interpolation=cv2.INTER_NEAREST))
    if ok:
        (ctx.work / "detections.png").write_bytes(png.tobytes())
    ctx.results["detect"] = {"arch": arch, "imgsz": imgsz, "epochs": epochs,
                             "keras_map50": keras_map["map50"], "keras_map": keras_map["map"],
                             "int8_map50": int8_map["map50"], "int8_map": int8_map["map"],
                             "int8_size": tflite.stat().st_size,
                             "train_seconds": metrics["train_seconds"]}
    ctx.report.append(
        "## Detection\n\n"
        f"`{arch}` trained from scratch on {n_train} synthetic {imgsz}x{imgsz} shape scenes for "
        f"{epochs} epochs ({metrics['train_seconds']:.0f} s), converted to int8 "
        f"({tflite.stat().st_size / 1024:.0f} KB).\n\n"
        "| model | mAP@0.5 | mAP@0.5:0.95 |\n|---|---|---|\n"
        f"| Keras float | {keras_map['map50']:.3f} | {keras_map['map']:.3f} |\n"
        f"| int8 .tflite | {int8_map['map50']:.3f} | {int8_map['map']:.3f} |\n\n"
        f"{len(found)} detections on a val image:\n\n![detections](detections.png)\n")
    return (f"{arch} {imgsz}px: mAP50 keras {keras_map['map50']:.3f}, "
            f"int8 {int8_map['map50']:.3f}")
