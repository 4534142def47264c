"""Runs made from runs: open a trained run directory for fine-tuning (prune, ``qat``) and write
the fine-tuned one beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.errors import UsageError
from edgecnn.rundir import MODEL_FILE, Provenance, RunInfo, dataset_reference


@dataclass(frozen=True)
class SourceRun:
    """A trained run opened for fine-tuning into another run directory.

    Attributes:
        path: the model argument as given (run directory or ``.keras`` file).
        spec, data_dir: the dataset to fine-tune on (default: the ones run.json names).
    """

    path: str
    model: Any                   # keras.Model (Keras ships no type information)
    info: RunInfo
    spec: str
    data_dir: str | None
    out: Path


def open_source_run(model_path, out, data: str | None = None,
                    data_dir: str | None = None, overwrite: bool = False) -> SourceRun:
    """Load ``model_path`` (safe mode) and its run.json, and check ``out`` can receive the
    fine-tuned run.

    Raises:
        UsageError: ``out`` is a file or the source's own directory, the model has no
            run.json, or no dataset is known.
    """
    from edgecnn.fsutil import check_output_dir
    from edgecnn.rundir import load_keras_model

    out = Path(out)
    src = Path(model_path)
    check_output_dir(out, overwrite)
    if out.resolve() == (src if src.is_dir() else src.parent).resolve():
        raise UsageError("--out is the model's own run directory", "choose another --out")
    model, info = load_keras_model(model_path)
    if info is None:
        raise UsageError(f"{model_path} has no run.json beside it",
                         "pass a run directory written by 'edgecnn train'")
    spec = data or info.data
    if not spec:
        raise UsageError("no dataset given and run.json names none", "pass --data SPEC")
    return SourceRun(str(model_path), model, info, spec, data_dir or info.data_dir, out)


def plain_copy(model):
    """The model without optimizer state: what ``model.keras`` should hold."""
    from edgecnn.lazy import keras

    copy = keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def save_derived_run(source: SourceRun, model, *, command: str, report_key: str,
                     report: dict, metrics: dict, history: dict[str, list[float]],
                     overwrite: bool = False) -> RunInfo:
    """Write ``model`` as a run directory at ``source.out`` (atomically) and return its RunInfo.

    The RunInfo is the source's, with ``metrics``, the step's ``report`` under
    ``reports[report_key]``, the dataset used and provenance ``command`` <- the source run.
    """
    from edgecnn.fsutil import atomic_dir
    from edgecnn.train.common import write_history_csv

    info = source.info.derive(metrics=metrics,
                              reports={**source.info.reports, report_key: report},
                              data=dataset_reference(source.spec),
                              data_dir=dataset_reference(source.data_dir),
                              provenance=Provenance.now(command, parent=source.path))
    with atomic_dir(source.out, overwrite) as tmp:
        plain_copy(model).save(tmp / MODEL_FILE)
        info.save(tmp)
        write_history_csv(tmp / "history.csv", history)
    return RunInfo.load(source.out)  # fail loudly here rather than in a later step
