"""Tiny ``.tflite`` files of the layouts other tools export (Ultralytics, SSD, bare
classifiers), built with TensorFlow: their outputs are constants plus a multiple of the input's
mean, so what a black image decodes to is known in advance. Used by the foreign-runtime tests
and by the README test, which needs files with the names its examples use."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np


def build_tflite(outputs, shape=(1, 64, 64, 3), channel_means: bool = False,
                 signature: bool = False, input_weight: float = 1.0) -> bytes:
    """A float ``.tflite`` whose outputs are ``constant + input_weight * mean(input)`` (or, with
    ``channel_means``, the per-channel means of an NCHW input: a 3-class classifier);
    ``signature``: through a SavedModel, so the file has a serving signature."""
    import tensorflow as tf

    consts = [tf.constant(np.asarray(o, np.float32)) for o in outputs]

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def model(x):
        if channel_means:
            return tf.reduce_mean(x, axis=[2, 3])
        m = tf.reduce_mean(x) * input_weight
        return tuple(c + m for c in consts)

    if not signature:
        fn = model.get_concrete_function()
        return tf.lite.TFLiteConverter.from_concrete_functions([fn], model).convert()
    import tempfile

    module = tf.Module()
    module.serve = model
    with tempfile.TemporaryDirectory() as folder:   # a serving signature (ai-edge-quantizer)
        tf.saved_model.save(module, folder, signatures={"serving_default": model})
        return tf.lite.TFLiteConverter.from_saved_model(folder).convert()


def with_ultralytics_metadata(flat: bytes, **keys) -> bytes:
    """Append metadata.json the way Ultralytics' LiteRT export does (zipfile in "a" mode)."""
    buf = io.BytesIO(flat)
    buf.seek(0, io.SEEK_END)
    doc = {"description": "Ultralytics YOLO11n model", "author": "Ultralytics",
           "task": "detect", "stride": 32, "imgsz": [64, 64], "names": {"0": "a", "1": "b",
                                                                       "2": "c"}, **keys}
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", json.dumps(doc, indent=2))
    return buf.getvalue()
