"""Build the ``edgecnn.json`` metadata of a converted model from its run and its tensors.

Input and output quantization always come from the converted model's interpreter tensors
(the ``io`` section is an informational copy). For detectors, the positions of the box and
score outputs in the interpreter's output list are found by comparing the interpreter's
outputs with the Keras model's on a real sample: output order after conversion is not
guaranteed, and shape alone cannot tell ``[1, N, 4]`` boxes from ``[1, N, C]`` scores when C
is 4.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from converters.recipes import Recipe
from edgecnn.errors import UsageError
from edgecnn.rundir import RunInfo
from edgecnn.runtime.metadata import DecoderSpec, Metadata
from edgecnn.runtime.model import TFLiteModel

BOX_OUTPUT = "boxes"
SCORE_OUTPUT = "scores"


def io_section(model: TFLiteModel) -> dict:
    return {"inputs": [t.to_dict() for t in model.inputs],
            "outputs": [t.to_dict() for t in model.outputs]}


def match_outputs(reference: Mapping[str, np.ndarray], converted: Sequence[np.ndarray]
                  ) -> dict[str, int]:
    """Reference output name -> position in ``converted`` holding the same tensor.

    Outputs are paired by shape and, among same-shaped candidates, by the smallest mean
    absolute difference (the converted model may be quantized, so values are close, not
    equal). Raises UsageError if some reference output has no counterpart.
    """
    names = list(reference)
    if len(names) != len(converted):
        raise UsageError(f"the converted model has {len(converted)} outputs, the Keras model "
                         f"{len(names)}")
    costs = np.full((len(names), len(converted)), np.inf)
    for i, name in enumerate(names):
        ref = np.asarray(reference[name], np.float64)
        for j, out in enumerate(converted):
            out = np.asarray(out, np.float64)
            if out.size == ref.size and out.reshape(-1).shape == ref.reshape(-1).shape \
                    and out.shape[-1] == ref.shape[-1]:
                costs[i, j] = float(np.mean(np.abs(out.reshape(ref.shape) - ref)))
    # Few outputs: try every assignment and keep the cheapest finite one.
    from itertools import permutations

    best, best_cost = None, np.inf
    for perm in permutations(range(len(converted))):
        cost = sum(costs[i, j] for i, j in enumerate(perm))
        if cost < best_cost:
            best, best_cost = perm, cost
    if best is None:
        raise UsageError("cannot match the converted model's outputs to the Keras model's "
                         f"outputs {names}")
    return {name: int(j) for name, j in zip(names, best)}


def decoder_spec(info: RunInfo, positions: Mapping[str, int]) -> DecoderSpec:
    """The run's decoder parameters with the box/score output positions of the converted model."""
    if BOX_OUTPUT not in positions or SCORE_OUTPUT not in positions:
        raise UsageError(f"a detection model needs outputs named {BOX_OUTPUT!r} and "
                         f"{SCORE_OUTPUT!r}; it has {sorted(positions)}",
                         "build detectors from the model registry")
    base = info.decoder or DecoderSpec()
    return base.replace(box_output=positions[BOX_OUTPUT], score_output=positions[SCORE_OUTPUT])


def build_metadata(info: RunInfo, model: TFLiteModel, recipe: Recipe, name: str,
                   output_positions: Mapping[str, int] | None = None) -> Metadata:
    """Metadata for the converted ``model`` (interpreter over the bytes without metadata).

    Args:
        info: the run description (labels, input size, normalization, task, decoder).
        model: the converted model, loaded in the runtime.
        recipe: the quantization recipe used.
        name: model name recorded in the metadata (and used in file names).
        output_positions: detect only, from :func:`match_outputs`.
    """
    spec = info.input_spec()
    inp = model.input
    if inp.shape[1:] != (spec.height, spec.width, spec.channels):
        raise UsageError(f"converted input shape {inp.shape} does not match the run's "
                         f"{spec.height}x{spec.width}x{spec.channels}")
    decoder = None
    if info.task == "detect":
        decoder = decoder_spec(info, output_positions or {})
        scores = model.outputs[decoder.score_output].shape
        if scores[-1] != len(info.labels):
            raise UsageError(f"the score output has {scores[-1]} classes but the run lists "
                             f"{len(info.labels)} labels")
    else:
        n = int(np.prod(model.outputs[0].shape[1:]))
        if n != len(info.labels):
            raise UsageError(f"the model has {n} outputs but the run lists {len(info.labels)} "
                             "labels", "check labels.txt / run.json of the run")
    return Metadata(task=info.task, labels=tuple(info.labels), input=spec, name=name,
                    arch=info.arch, output_activation=info.output_activation, decoder=decoder,
                    quantization=recipe.quant.value, io=io_section(model))
