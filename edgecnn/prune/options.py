"""Typed options of ``edgecnn prune``, validated on creation.

A library caller gets the CLI's errors: a bad number, or an option that does not apply to the
method or objective (``block`` with channel pruning, ``criterion`` with magnitude pruning, ...)
raises :class:`edgecnn.errors.UsageError` before any model or dataset is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from edgecnn.errors import UsageError

if TYPE_CHECKING:  # imported where used: only the latency objective needs that module
    from edgecnn.prune.latency import LatencyOptions

METHODS = ("magnitude", "channel")
OBJECTIVES = ("macs", "latency")
SCOPES = ("layer", "model")
CRITERIA = ("l1", "bn")

# Options one method only uses: name -> (method, the value that means "not set", CLI flag).
METHOD_ONLY: dict[str, tuple[str, object, str]] = {
    "skip_depthwise": ("magnitude", False, "--skip-depthwise"),
    "block": ("magnitude", None, "--block"),
    "scope": ("magnitude", "layer", "--scope"),
    "criterion": ("channel", "l1", "--criterion"),
    "channel_multiple": ("channel", 1, "--channel-multiple"),
}


@dataclass(frozen=True)
class PruneOptions:
    """How to prune and fine-tune a trained model.

    Attributes:
        method: ``magnitude`` (unstructured zeros; smaller when compressed) or ``channel``
            (thinner layers; fewer MACs, faster).
        sparsity: magnitude: fraction of kernel weights zeroed per pruned layer; channel:
            fraction of channels removed per prunable layer.
        target_macs: channel: fraction of the dense MACs to keep (instead of ``sparsity``).
        objective: channel: ``macs`` (the same ratio for every layer, bisected to
            ``target_macs``) or ``latency`` (channels removed where the measured int8 time per
            channel is highest relative to their importance; ``edgecnn.prune.latency``).
        target_latency: channel, ``latency`` objective: fraction of the dense int8 invoke
            time to keep, as predicted by the measured cost table.
        latency: channel, ``latency`` objective: ``LatencyOptions`` (threads, runs, min_keep;
            default ones when None).
        criterion: channel ranking: ``l1`` (filter norms) or ``bn`` (batch-norm scale).
        channel_multiple: channel: round kept channel counts to this multiple.
        skip: layer names left untouched (besides the default first conv / output layers).
        skip_depthwise: magnitude: leave depthwise kernels dense.
        block: magnitude: ``(rows, cols)`` (or ``"RxC"``, see ``parse_block``) blocks pruned
            together; None is unstructured.
        scope: magnitude: ``layer`` (``sparsity`` per pruned kernel) or ``model`` (``sparsity``
            of all kernel weights, skipped layers included).
        data, data_dir: dataset SPEC to fine-tune on (default: the one in ``run.json``).
        epochs: fine-tuning epochs (0: prune only).
        lr: peak fine-tuning learning rate (default 5e-4 magnitude, 1e-3 channel).
    """

    method: str
    sparsity: float | None = None
    target_macs: float | None = None
    objective: str = "macs"
    target_latency: float | None = None
    latency: LatencyOptions | None = None
    criterion: str = "l1"
    channel_multiple: int = 1
    skip: tuple[str, ...] = ()
    skip_depthwise: bool = False
    block: tuple[int, int] | str | None = None
    scope: str = "layer"
    data: str | None = None
    data_dir: str | None = None
    epochs: int = 2
    batch: int = 64
    lr: float | None = None
    max_train: int | None = None
    seed: int = 0
    verbose: int = 1
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip", tuple(self.skip))
        for name, value, choices in (("pruning method", self.method, METHODS),
                                     ("objective", self.objective, OBJECTIVES),
                                     ("scope", self.scope, SCOPES),
                                     ("channel criterion", self.criterion, CRITERIA)):
            if value not in choices:
                raise UsageError(f"unknown {name} {value!r}",
                                 f"choose one of: {', '.join(choices)}")
        if self.objective == "latency" or self.target_latency is not None:
            self._check_latency()
        self._check_amount()
        self._check_method_options()
        self._check_finetuning()

    @property
    def finetune_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        return 5e-4 if self.method == "magnitude" else 1e-3

    @property
    def block_size(self) -> tuple[int, int]:
        # __post_init__ has parsed a "RxC" block into (rows, cols)
        return self.block if isinstance(self.block, tuple) else (1, 1)

    def _check_amount(self) -> None:
        if self.sparsity is not None and not 0.0 <= self.sparsity < 1.0:
            raise UsageError(f"--sparsity {self.sparsity:g} is outside [0, 1)",
                             "give the fraction to remove, such as 0.75")
        if self.method == "magnitude":
            if self.sparsity is None:
                raise UsageError("magnitude pruning needs --sparsity", "e.g. --sparsity 0.75")
            if self.target_macs is not None:
                raise UsageError("--target-macs applies to --method channel only",
                                 "magnitude pruning does not reduce MACs; use --sparsity")
        elif self.objective == "macs" and (self.sparsity is None) == (self.target_macs is None):
            raise UsageError("channel pruning needs exactly one of --sparsity or --target-macs",
                             "e.g. --target-macs 0.5 (keep half the MACs)")
        if self.target_macs is not None and not 0.0 < self.target_macs <= 1.0:
            raise UsageError(f"--target-macs {self.target_macs:g} is outside (0, 1]",
                             "give the fraction of MACs to keep, such as 0.5")

    def _check_latency(self) -> None:
        if self.method != "channel":
            raise UsageError("--objective latency and --target-latency apply to --method "
                             "channel only",
                             "magnitude pruning does not change the int8 invoke time")
        if self.objective != "latency":
            raise UsageError("--target-latency needs --objective latency",
                             "add --objective latency (the time is measured with the "
                             "interpreter)")
        if self.sparsity is not None:
            raise UsageError("--objective latency takes --target-macs and/or "
                             "--target-latency, not --sparsity", "e.g. --target-macs 0.5")
        if self.target_macs is None and self.target_latency is None:
            raise UsageError("--objective latency needs --target-macs and/or "
                             "--target-latency", "e.g. --target-macs 0.5")
        if self.target_latency is not None and not 0.0 < self.target_latency <= 1.0:
            raise UsageError(f"--target-latency {self.target_latency:g} is outside (0, 1]",
                             "give the fraction of the dense int8 invoke time to keep, "
                             "e.g. 0.6")
        from edgecnn.prune.latency import LatencyOptions

        object.__setattr__(self, "latency", (self.latency or LatencyOptions()).validate())

    def _check_method_options(self) -> None:
        for f in fields(self):
            method, unset, flag = METHOD_ONLY.get(f.name, (self.method, None, ""))
            if method != self.method and getattr(self, f.name) != unset:
                raise UsageError(f"{flag} applies to --method {method} only",
                                 _WHY_NOT.get(f.name, f"drop {flag}"))
        if self.latency is not None and self.objective != "latency":
            raise UsageError("--min-keep and --latency-threads apply to --objective latency "
                             "only", "add --objective latency, or drop them")
        if self.channel_multiple < 1:
            raise UsageError(f"--channel-multiple must be >= 1, got {self.channel_multiple}")
        if self.block is not None:
            from edgecnn.prune.magnitude import parse_block

            text = self.block if isinstance(self.block, str) else "{}x{}".format(*self.block)
            object.__setattr__(self, "block", parse_block(text))

    def _check_finetuning(self) -> None:
        if self.epochs < 0:
            raise UsageError(f"--epochs must be >= 0, got {self.epochs}",
                             "use 0 to prune without fine-tuning")
        if self.batch < 1:
            raise UsageError(f"--batch must be >= 1, got {self.batch}")
        if self.lr is not None and self.lr <= 0:
            raise UsageError(f"--lr must be > 0, got {self.lr}")
        if self.max_train is not None and self.max_train < 2:
            raise UsageError(f"--max-train must be >= 2, got {self.max_train}")


_WHY_NOT = {
    "block": "channel pruning already removes whole channels",
    "scope": "channel pruning takes --target-macs for a model-wide budget",
    "skip_depthwise": "channel pruning keeps depthwise layers whole per channel",
    "criterion": "magnitude pruning ranks single weights by their magnitude",
    "channel_multiple": "magnitude pruning keeps every channel",
}
