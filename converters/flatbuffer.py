"""Post-conversion edits of the TFLite flatbuffer that change its size, never its arithmetic.

The converter names every intermediate tensor after the Keras layers fused into it
(``dsnet_s_1/s2b1_pw_1/convolution;dsnet_s_1/s2b1_pw_bn_1/batchnorm/sub1``): 3-6 KB of strings
in a ~100 KB int8 model, read by nobody at run time. They are replaced by ``t<index>``; the
model's input and output tensors and the signature keep their names.
"""

from __future__ import annotations

import numpy as np


def shorten_tensor_names(flatbuffer: bytes) -> bytes:
    """The same model with intermediate tensors renamed ``t<index>``.

    The result is checked to produce bit-identical outputs on a random input; if it does not
    (or the rewrite fails), the original bytes are returned unchanged.
    """
    try:
        from tensorflow.lite.tools import flatbuffer_utils as fu

        model = fu.convert_bytearray_to_object(bytearray(flatbuffer))
        for graph in model.subgraphs:
            keep = {int(i) for i in graph.inputs} | {int(i) for i in graph.outputs}
            for i, tensor in enumerate(graph.tensors):
                if i not in keep:
                    tensor.name = f"t{i}".encode()
        shorter = bytes(fu.convert_object_to_bytearray(model))
    except Exception:  # noqa: BLE001 - an optional size optimization must never break conversion
        return flatbuffer
    if len(shorter) >= len(flatbuffer) or not _same_outputs(flatbuffer, shorter):
        return flatbuffer
    return shorter


def _same_outputs(a: bytes, b: bytes) -> bool:
    from edgecnn.errors import UsageError
    from edgecnn.runtime.model import TFLiteModel
    from edgecnn.runtime.modelcheck import Probe

    try:
        ma = TFLiteModel(a, threads=1, probe=Probe.NEVER)  # both straight from the converter
        mb = TFLiteModel(b, threads=1, probe=Probe.NEVER)
    except UsageError:
        return False
    rng = np.random.default_rng(0)
    inputs = []
    for info in ma.inputs:
        if np.issubdtype(info.dtype, np.integer):
            lim = np.iinfo(info.dtype)
            inputs.append(rng.integers(lim.min, lim.max, info.shape, endpoint=True)
                          .astype(info.dtype))
        else:
            inputs.append(rng.uniform(0, 1, info.shape).astype(info.dtype))
    ya = ma.run(*inputs, quantized=True, dequantize=False)
    yb = mb.run(*inputs, quantized=True, dequantize=False)
    return len(ya) == len(yb) and all(np.array_equal(x, y) for x, y in zip(ya, yb))
