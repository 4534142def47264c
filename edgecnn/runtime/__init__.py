"""The light runtime: run an edgecnn ``.tflite`` with numpy, OpenCV and a TFLite interpreter.

Never imports TensorFlow (a test checks it in a subprocess with TensorFlow blocked).
"""

from edgecnn.runtime.classifier import Classifier, ClassifierOptions
from edgecnn.runtime.detector import Detector, DetectorOptions
from edgecnn.runtime.metadata import DecoderSpec, InputSpec, Metadata
from edgecnn.runtime.model import TensorInfo, TFLiteModel
from edgecnn.runtime.types import Category, Detection, Letterbox, Rect

__all__ = [
    "Category", "Classifier", "ClassifierOptions", "DecoderSpec", "Detection", "Detector",
    "DetectorOptions", "InputSpec",
    "Letterbox", "Metadata", "Rect", "TensorInfo", "TFLiteModel", "load",
]


def load(path, threads: int | None = None, verify: bool = True, **options):
    """A Classifier or Detector for the model's task, read from its metadata.

    ``verify=False`` loads a model whose flatbuffer does not match its metadata's SHA-256.
    """
    model = TFLiteModel(path, threads=threads, verify=verify)
    meta = model.require_metadata()
    if meta.task == "detect":
        return Detector(model, DetectorOptions(threads=threads, **options))
    return Classifier(model, ClassifierOptions(threads=threads, **options))
