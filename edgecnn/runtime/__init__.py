"""The light runtime: run an edgecnn ``.tflite`` with numpy, OpenCV and a TFLite interpreter.

Every task runner follows one protocol (:mod:`edgecnn.runtime.runner`); :func:`load` picks the
runner for the model's task. Never imports TensorFlow (a test checks it in a subprocess with
TensorFlow blocked).
"""

from edgecnn.runtime.classifier import Classifier, ClassifierOptions
from edgecnn.runtime.decoders.spec import DecoderSpec
from edgecnn.runtime.detector import Detector, DetectorOptions
from edgecnn.runtime.metadata import InputSpec, Metadata
from edgecnn.runtime.model import TensorInfo, TFLiteModel
from edgecnn.runtime.runner import Runner, TaskRunner, load, register_runner, runner_class
from edgecnn.runtime.task import Task
from edgecnn.runtime.types import Category, Detection, Letterbox, Rect

__all__ = [
    "Category", "Classifier", "ClassifierOptions", "DecoderSpec", "Detection", "Detector",
    "DetectorOptions", "InputSpec", "Letterbox", "Metadata", "Rect", "Runner", "TFLiteModel",
    "Task", "TaskRunner", "TensorInfo", "load", "register_runner", "runner_class",
]
