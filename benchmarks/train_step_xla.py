"""Detector training step: TensorFlow graph mode vs XLA (``jit_compile=True``) on this CPU.

One det_s (width 1.5, 256x256, batch 16, 4 classes) training step, the detector engine's own
(``edgecnn.train.engine.detector_step.make_train_step``: assignment with the static branch in
the graph as in training, detection losses, gradient clipping, Adam; no weight average), on
random images with 5 boxes each; both variants are timed interleaved, 4 rounds of 8 steps,
after 3 warm-up steps.

Example:
    python benchmarks/train_step_xla.py
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH, SIZE, CLASSES, STRIDES = 16, 256, 4, (8, 16, 32)


def make_batch(rng):
    boxes = np.zeros((BATCH, 100, 4), "float32")
    classes = -np.ones((BATCH, 100), "int32")
    for b in range(BATCH):
        for j in range(5):
            x, y = rng.uniform(0, 200, 2)
            w, h = rng.uniform(20, 60, 2)
            boxes[b, j] = [x, y, x + w, y + h]
            classes[b, j] = rng.integers(0, CLASSES)
    images = rng.integers(0, 255, (BATCH, SIZE, SIZE, 3)).astype("float32")
    return images, boxes, classes


def main() -> int:
    from edgecnn.lazy import tensorflow
    from edgecnn.models.registry import get_entry
    from edgecnn.train import common
    from edgecnn.train.engine.detector_step import AnchorGrid, detector_heads, make_train_step

    tf = tensorflow()
    model = get_entry("det_s", task="detect").builder(input_shape=(SIZE, SIZE, 3),
                                                      num_classes=CLASSES, width=1.5)
    batch = [tf.constant(a) for a in make_batch(np.random.default_rng(0))]
    heads = detector_heads(model)
    optimizer = common.make_optimizer("adam", 1e-3)
    optimizer.build(heads.trainable_variables)
    # A static phase of one step: its branch stays in the graph, as in a training run.
    step = make_train_step(heads, optimizer, AnchorGrid.of(SIZE, STRIDES), CLASSES,
                           static_steps=1.0)
    variants = {"graph": tf.function(step, autograph=False),
                "xla": tf.function(step, autograph=False, jit_compile=True)}
    for name, fn in variants.items():
        t = time.perf_counter()
        fn(*batch)
        print(f"{name}: first call (trace + compile) {time.perf_counter() - t:.1f} s", flush=True)
        for _ in range(3):
            fn(*batch)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(4):
        for name, fn in variants.items():
            t = time.perf_counter()
            for _ in range(8):
                float(fn(*batch)[0])
            times[name].append((time.perf_counter() - t) / 8 * 1e3)
    for name, values in times.items():
        print(f"{name}: ms per step by round {[round(v, 1) for v in values]}, "
              f"median {np.median(values):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
