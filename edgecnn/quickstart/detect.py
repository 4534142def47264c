"""Step ``detect``: synthetic shapes -> a detector -> int8 ``.tflite`` -> mAP -> a picture.

Generates a small synthetic dataset inside the quickstart folder (so ``det_run/run.json``
names a dataset that stays there), trains a detector, converts it to int8, measures COCO mAP of
the Keras model and of the int8 file on the val split, and draws the int8 model's detections
on a few val images with the camera's overlay. :func:`detect_recipe` is the one place the
recipe is chosen: a pretrained detector plugs in there.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.quickstart.core import QuickstartContext, QuickstartOptions, StepResult

DATA, RUN, TFLITE, PICTURE = "shapes", "det_run", "det_int8.tflite", "detections.png"
PICTURE_IMAGES, CELL = 6, 256
SOURCES = {"scratch": "scratch", "imagenet": "ImageNet weights"}
# arch, width, imgsz, train and val images, epochs (see detect_recipe)
PRETRAINED_RECIPE = ("det_lite0", 1.0, 128, 800, 100, 4)


@dataclass(frozen=True)
class DetectRecipe:
    """How the detection step gets its detector.

    Attributes:
        arch, width, imgsz: the architecture, its width multiplier and input side.
        train_images, val_images: synthetic scenes generated (``imgsz`` square).
        epochs, batch: training length.
        weights: where training starts: ``scratch`` (a pretrained source later).
        note: one sentence for the report on what to expect from this recipe.
    """

    arch: str
    width: float
    imgsz: int
    train_images: int
    val_images: int
    epochs: int
    batch: int = 16
    weights: str = "scratch"
    note: str = ""


def detect_recipe(options: QuickstartOptions, pretrained: bool | None = None) -> DetectRecipe:
    """The detection step's recipe: sized so the whole quickstart fits in about 3 minutes on
    a quiet 2-core machine.

    With the ``[pretrained]`` extra installed (``pretrained`` None: look), ``det_lite0`` is
    fine-tuned from ImageNet weights; without it ``det_s`` trains from scratch and the report
    says so. A small model trained from scratch for a minute or two finds the shapes but
    places boxes loosely; ``edgecnn train``'s full recipe (256 px, 60 epochs) reaches int8
    mAP@0.5 0.885.

    Measured (det_s at 128 px, 100 val images, 2026-11-30, shared 2-core machine at load
    12-18, CPU seconds of the training alone): width 1.5, 800 images, 20 epochs: 129 s, val
    mAP@0.5 0.149; 12 epochs: 85 s, 0.132; 600 images, 14 epochs: 78 s, 0.123; width 1.0,
    800 images, 16 epochs: 88 s, 0.130. 12 epochs keep most of the mAP for two thirds of
    the time. det_lite0 from ImageNet weights (same data, 2026-11-30, load 3-5, CPU
    seconds of the whole process): 800 images, 4 epochs: 89 s, val mAP@0.5 0.242; 400
    images, 6 epochs: 79 s, 0.171; with the integral box head, its default since (load 0.7,
    training alone): 800 images, 4 epochs: 60 s wall, int8 mAP@0.5 0.445. det_lite0_slim
    there: 4 epochs 0.259, 6 epochs (65 s wall) 0.347, so the full backbone stays.
    """
    if options.fast:
        return DetectRecipe("det_test", 1.0, 64, 32, 8, 2,
                            note="Two epochs of a tiny model: it detects nothing yet "
                                 "(a smoke test)")
    if pretrained is None:
        from edgecnn.models.backbones.weights import efficientnet_lite0_installed

        pretrained = efficientnet_lite0_installed()
    if pretrained:
        return DetectRecipe(*PRETRAINED_RECIPE, weights="imagenet",
                            note="Fine-tuned from the ImageNet weights of the [pretrained] "
                                 "extra, in two phases (backbone frozen, then all layers)")
    return DetectRecipe("det_s", 1.5, 128, 800, 100, 12,
                        note="A short run from scratch: the [pretrained] extra is not "
                             "installed (`pip install 'edgecnn[pretrained]'` makes this step "
                             "fine-tune an ImageNet-pretrained det_lite0 instead); it finds "
                             "many shapes and places its boxes loosely")


def run(ctx: QuickstartContext) -> StepResult:
    import time

    from converters import convert_model
    from edgecnn.data.synth import make_synthetic_dataset
    from edgecnn.evaluate.detect import evaluate_detection
    from edgecnn.rundir import RunInfo
    from edgecnn.runtime.task import Task
    from edgecnn.train.config import TrainConfig
    from edgecnn.train.detect import train_detector

    r = detect_recipe(ctx.options)
    start = time.perf_counter()
    data = make_synthetic_dataset(ctx.path(DATA), r.train_images, r.val_images, imgsz=r.imgsz,
                                  seed=ctx.options.seed)
    ctx.say(f"data  {r.train_images} train / {r.val_images} val synthetic scenes "
            f"({r.imgsz}x{r.imgsz}) in {time.perf_counter() - start:.1f}s -> {DATA}/")
    # op determinism off: a quarter of the training time on CPU (issue 16's measurement), and
    # the quickstart's detector needs no bit-exact rerun (the digits classifier keeps it)
    train_detector(TrainConfig(task=Task.DETECT, data=str(data), arch=r.arch,
                               out=str(ctx.path(RUN)), imgsz=r.imgsz, epochs=r.epochs,
                               batch=r.batch, width=r.width, seed=ctx.options.seed,
                               deterministic=False,
                               weights=None if r.weights == "scratch" else r.weights),
                   stream=ctx.stream)
    metrics = RunInfo.load(ctx.path(RUN)).metrics
    ctx.say(f"converting {RUN} to int8 .tflite")
    tflite = convert_model(ctx.path(RUN), ctx.path(TFLITE), quant="int8", held_out=0).path
    keras_map = evaluate_detection(ctx.path(RUN), str(data), progress=ctx.say)
    int8_map = evaluate_detection(tflite, str(data), threads=ctx.options.threads,
                                  progress=ctx.say)
    found = draw_val_detections(tflite, str(data), ctx)
    size = tflite.stat().st_size
    report = (
        "## Detection\n\n"
        f"`{r.arch}` (width {r.width}) trained from {SOURCES.get(r.weights, r.weights)} on "
        f"{r.train_images} synthetic "
        f"{r.imgsz}x{r.imgsz} shape scenes (`{DATA}/`) for {r.epochs} epochs "
        f"({metrics['train_seconds']:.0f} s; run directory `{RUN}/`), converted to int8 "
        f"(`{TFLITE}`, {size / 1024:.0f} KB). {r.note}.\n\n"
        "| model | mAP@0.5 | mAP@0.5:0.95 |\n|---|---|---|\n"
        f"| Keras float | {keras_map['map50']:.3f} | {keras_map['map']:.3f} |\n"
        f"| int8 .tflite | {int8_map['map50']:.3f} | {int8_map['map']:.3f} |\n\n"
        f"The int8 model on {PICTURE_IMAGES} val images ({found} detections at its default "
        f"score threshold):\n\n![detections]({PICTURE})\n")
    return StepResult(
        summary=(f"{r.arch} {r.imgsz}px, {r.epochs} epochs: mAP50 keras "
                 f"{keras_map['map50']:.3f}, int8 {int8_map['map50']:.3f}"),
        outputs={"data": f"{DATA}/data.yaml", "run": RUN, "int8": TFLITE, "picture": PICTURE},
        metrics={"arch": r.arch, "width": r.width, "imgsz": r.imgsz, "epochs": r.epochs,
                 "weights": r.weights, "train_images": r.train_images,
                 "keras_map50": keras_map["map50"], "keras_map": keras_map["map"],
                 "int8_map50": int8_map["map50"], "int8_map": int8_map["map"],
                 "int8_size": size, "train_seconds": metrics["train_seconds"]},
        report=report)


def draw_val_detections(tflite, data: str, ctx: QuickstartContext) -> int:
    """``detections.png``: the first val images with the int8 model's boxes, labels and
    scores; returns how many boxes it drew."""
    import cv2

    from edgecnn.camera import still
    from edgecnn.data.detection import load_detection_dataset, read_image
    from edgecnn.fsutil import write_atomic
    from edgecnn.runtime import load

    detector = load(tflite, threads=ctx.options.threads)
    tiles, count = [], 0
    for sample in load_detection_dataset(data).val[:PICTURE_IMAGES]:
        image = read_image(sample.image_path)
        found = detector(image, "BGR")
        count += len(found)
        tiles.append(still.annotate(image, found, min_side=CELL))
    ok, png = cv2.imencode(".png", still.grid(tiles, columns=3, cell=CELL))
    if ok:
        write_atomic(ctx.path(PICTURE), png.tobytes())
    return count
