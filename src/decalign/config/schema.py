"""The settings' schema: every hyper-parameter in a frozen dataclass, validated once when built.

The classes are pydantic dataclasses, so values are type-checked and coerced at construction, with
errors that name the field. The CLI's ``--set key=value`` (:mod:`decalign.config.overrides`),
config files (:mod:`decalign.config.files`) and the presets (:mod:`decalign.config.presets`) all map
onto these classes; nothing downstream reads settings from anywhere else. A field's docstring is
also its line in ``decalign presets --keys`` (:mod:`decalign.config.describe`).

Per-modality settings (convolution kernel, attention dropout) are mappings from modality name to
value with a ``"default"`` entry, so that a preset written for text/audio/vision also applies to a
dataset with other modalities.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from decalign.data.detect import DATASET_KINDS
from decalign.errors import ConfigError
from decalign.model.factory import ARCHITECTURES
from decalign.train.devices import Device

__all__ = ["DataConfig", "FusionConfig", "HeterogeneityConfig", "HomogeneityConfig", "ModelConfig", "ObjectiveConfig",
           "RunConfig", "SyntheticConfig", "TextEncoderConfig", "TrainConfig", "config_from_dict", "config_to_dict",
           "per_modality"]

_FROZEN = ConfigDict(frozen=True, extra="forbid", validate_assignment=True)

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Prob = Annotated[float, Field(ge=0.0, lt=1.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]


def _per_modality_check(name: str, value: Mapping[str, Any]) -> None:
    if "default" not in value:
        raise ValueError(f"{name} needs a 'default' entry (got keys {sorted(value)})")


def per_modality(value: Mapping[str, Any], modality: str) -> Any:
    """Value of a per-modality mapping for ``modality``, falling back to ``"default"``."""
    return value.get(modality, value["default"])


@dataclass(config=_FROZEN)
class FusionConfig:
    """Cross-modal transformer over the modality-unique sequences (docs/method.md §6)."""

    num_heads: PosInt = 8
    num_layers: PosInt = 5
    attn_dropout: dict[str, Prob] = Field(default_factory=lambda: {"default": 0.0, "text": 0.1})
    relu_dropout: Prob = 0.1
    embed_dropout: Prob = 0.1
    res_dropout: Prob = 0.05
    attn_mask: bool = True
    cross_modal: bool = True
    """Ablation switch: ``False`` replaces cross-modal attention by self-attention."""

    def __post_init__(self) -> None:
        _per_modality_check("model.fusion.attn_dropout", self.attn_dropout)


@dataclass(config=_FROZEN)
class HeterogeneityConfig:
    """Prototype-guided optimal transport on the modality-unique features (docs/method.md §4)."""

    enabled: bool = True
    """Ablation switch for the whole heterogeneity loss (OT + local prototype term)."""
    prototype_ot: bool = True
    """Ablation switch for the multi-marginal OT term L_OT."""
    prototype_local: bool = True
    """Ablation switch for the sample-to-prototype term L_proto."""
    num_prototypes: PosInt = 7
    em_iters: NonNegInt = 5
    var_floor: PosFloat = 1e-4
    ot_eps: PosFloat = 0.1
    ot_iters: PosInt = 50
    ot_gradient: Literal["unrolled", "envelope"] = "unrolled"
    """``unrolled`` back-propagates through every Sinkhorn iteration (released behaviour);
    ``envelope`` treats the converged potentials as constants (exact at convergence, cheaper)."""
    ot_solver: Literal["log", "released"] = "log"
    """``log``: exact log-domain Sinkhorn (stable for any eps). ``released``: the authors'
    kernel-domain iterations with their 1e-30 clamp and 1e-8 guards, for bit-level parity with
    their checkpoints where large prototype costs make the two differ (see
    :func:`decalign.ops.sinkhorn.released_entropic_ot`)."""
    cost_reduction: Literal["mean", "sum"] = "mean"
    local_normalize: bool = False
    """Divide the sample-to-prototype distance by the prototype variance (off: released)."""
    masked_pooling: bool = False
    """Pool the unique sequences over valid steps only (off: released, pools padding too)."""


@dataclass(config=_FROZEN)
class HomogeneityConfig:
    """Latent distribution matching on the modality-common features (docs/method.md §5)."""

    enabled: bool = True
    moments: bool = True
    """Ablation switch for moment matching (the paper's "Sem")."""
    mmd: bool = True
    """Ablation switch for the MMD term."""
    pde_dim: PosInt = 64
    mmd_kernel: Literal["fixed", "median", "multi"] = "fixed"
    """``fixed``: released kernel exp(-||a-b||^2 / (2 h)) with h = ``mmd_bandwidth``;
    ``median``: h = median pairwise squared distance / 2 (detached);
    ``multi``: average of kernels at ``mmd_bandwidths`` times the median heuristic."""
    mmd_bandwidth: PosFloat = 1.0
    mmd_bandwidths: tuple[PosFloat, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(config=_FROZEN)
class TextEncoderConfig:
    """Where text features come from: the data file (default) or a fine-tuned BERT."""

    kind: Literal["features", "bert"] = "features"
    path: str | None = None
    """Local directory of a HuggingFace BERT-family model (no hub downloads)."""
    max_length: PosInt | None = None
    """Not a setting: the token length is the data's ``text_bert`` width. Kept as a field so that
    older ``config.json`` files (which hold ``null``) still load; any other value is refused."""
    train_layers: NonNegInt | None = None
    """Fine-tune only the top ``k`` transformer layers; the embeddings and lower layers are frozen
    and run in eval mode. ``None``: fine-tune everything (released)."""
    cache_frozen: bool = True
    """With ``train_layers``: compute the frozen layers' output once per sample and reuse it, so
    an epoch runs only the trainable layers (exact: the frozen part has no dropout)."""

    def __post_init__(self) -> None:
        if self.kind == "bert" and not self.path:
            raise ValueError(
                "model.text_encoder.path must name a local model directory when kind='bert' "
                "(nothing can be downloaded from a model hub)"
            )
        if self.kind != "bert" and self.train_layers is not None:
            raise ValueError("model.text_encoder.train_layers needs model.text_encoder.kind='bert'")
        if self.max_length is not None:
            raise ValueError(
                "model.text_encoder.max_length is not read: the token length is the width of the data's "
                "text_bert (set it when extracting: decalign extract --text-max-len); remove the setting"
            )


@dataclass(config=_FROZEN)
class ModelConfig:
    """Architecture and alignment switches of :class:`decalign.model.DecAlign`.

    Input widths and sequence lengths are *not* here: they always come from the data.
    """

    # The Literal is built from the registry, which pydantic validates against; a static checker cannot.
    architecture: Literal[tuple(ARCHITECTURES)] = "decalign"  # ty: ignore[invalid-type-form]
    """``decalign``, or a baseline of :mod:`decalign.model.baselines` trained by the same engine
    and protocol (the registry :data:`decalign.model.factory.ARCHITECTURES`)."""
    d_model: PosInt = 64
    conv_kernel: dict[str, PosInt] = Field(default_factory=lambda: {"default": 1})
    text_dropout: Prob = 0.0
    output_dropout: Prob = 0.0
    modalities: tuple[str, ...] | None = None
    """Active modalities (ablations: unimodal, bimodal). ``None``: all modalities of the data."""
    decoupling_loss: bool = True
    """Ablation switch for the decoupling (orthogonality) loss."""
    padding_mask: bool = False
    """Ignore zero padding (off: released). With the data's true lengths, attention keys at padded
    steps are masked and every time-mean (fused sequences, common features, the unique features
    of the prototypes) runs over valid steps only; without it a short utterance in a long padded
    sequence is mostly padding (docs/method.md §6.1)."""
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    heterogeneity: HeterogeneityConfig = Field(default_factory=HeterogeneityConfig)
    homogeneity: HomogeneityConfig = Field(default_factory=HomogeneityConfig)
    text_encoder: TextEncoderConfig = Field(default_factory=TextEncoderConfig)

    def __post_init__(self) -> None:
        _per_modality_check("model.conv_kernel", self.conv_kernel)
        if self.d_model % self.fusion.num_heads:
            raise ValueError(
                f"model.d_model ({self.d_model}) must be divisible by "
                f"model.fusion.num_heads ({self.fusion.num_heads})"
            )
        if self.modalities is not None and len(self.modalities) == 0:
            raise ValueError("model.modalities must name at least one modality (or be null)")

    def kernel_for(self, modality: str) -> int:
        return int(per_modality(self.conv_kernel, modality))


@dataclass(config=_FROZEN)
class ObjectiveConfig:
    """Loss terms and weights: L = task + w_dec L_dec + alpha L_hete + beta L_homo + w_ct L_ct
    (+ w_bin L_bin) (docs/method.md §9)."""

    task_loss: Literal["mse", "l1", "ce"] = "mse"
    w_dec: NonNegFloat = 1.0
    alpha: NonNegFloat = 0.05
    beta: NonNegFloat = 0.07
    w_ct: NonNegFloat = 0.003
    ct_temperature: PosFloat = 0.1
    w_bin: NonNegFloat = 0.0


@dataclass(config=_FROZEN)
class TrainConfig:
    """Optimisation and protocol (docs/method.md §10)."""

    batch_size: PosInt = 32
    eval_batch_size: PosInt | None = None
    lr: PosFloat = 6e-5
    bert_lr: PosFloat | None = None
    """Learning rate of the BERT parameters; ``None``: same as ``lr``."""
    bert_warmup_steps: NonNegInt = 0
    """Linear warm-up of the BERT learning rate over this many optimizer steps (0: off)."""
    bert_decay: Literal["constant", "linear"] = "constant"
    """The BERT learning rate over training: ``constant`` (released; only the plateau scheduler
    lowers it) or ``linear``, scaled by ``(S - s) / S`` at optimizer step ``s`` of the
    ``S = num_epochs x steps per epoch`` steps, so it reaches 0 at the last one (the usual
    schedule for fine-tuning BERT-family encoders; multiplies the warm-up)."""
    grad_accumulation: PosInt = 1
    """Sum the gradients of this many consecutive batches before each optimizer step (1: off).
    The batch-level alignment losses still see one batch at a time (see docs/finetune.md)."""
    weight_decay: NonNegFloat = 0.005
    num_epochs: PosInt = 18
    early_stop_patience: PosInt = 6
    scheduler_patience: NonNegInt = 5
    scheduler_factor: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    grad_clip: PosFloat | None = 0.6
    selection_metric: str = "loss"
    """Validation metric for model selection: ``loss`` (task loss, minimised) or a metric key."""
    scheduler_metric: str | None = None
    """Validation metric for ReduceLROnPlateau; ``None``: the selection metric."""
    seeds: Annotated[tuple[int, ...], Field(min_length=1)] = (1111, 1112, 1113, 1114, 1115)
    device: Device = "auto"
    amp: bool = False
    """bf16 autocast on CUDA (no effect on other devices; docs/method.md §9)."""
    compile: bool = False
    """Wrap the model in ``torch.compile``."""
    num_threads: NonNegInt = 0
    """torch intra-op threads on the CPU; 0: ``OMP_NUM_THREADS`` if set, else the cores this
    process may use (affinity and cgroup quota; torch's own default counts every core of the
    machine) less the load on them at start (:mod:`decalign.train.threads`). The number chosen
    and why are the run's first line and in ``results.json``."""
    gather_alignment: bool = False
    """Distributed only: compute the batch-statistic alignment losses on features gathered
    from all ranks (with gradients) instead of each rank's own batch."""
    modality_dropout: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """Probability, per training batch, of leaving one modality (chosen uniformly among the
    active ones) out of the batch, so the model also learns to predict without each modality:
    the left-out modality is inactive exactly as a missing one (zeros in its slots, no
    alignment losses for that batch). 0: off (released)."""
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Exponential moving average of the trainable weights with this decay per optimizer step
    (ramped up over the first steps): validation, model selection, the saved checkpoint and the
    test use the averaged weights, training the raw ones (docs/method.md §10). It averages over
    about ``1 / (1 - ema_decay)`` steps. 0: off (released)."""
    modality_check: bool = False
    """At every validation, also evaluate the model with each active modality left out in turn,
    and leave a modality out for the rest of training (at test and in the saved checkpoint too)
    only on evidence: its absence lowers the per-sample validation loss beyond the noise (paired
    bootstrap at ``modality_check_level``), the model without it beats the best constant
    prediction the same way, at ``modality_check_agree`` consecutive validations; never the
    modality whose absence hurts most nor the last one; a decision later validations contradict
    is taken back (``decalign.train.modality_check``). Meant with ``modality_dropout`` > 0, which
    teaches the model to predict without each modality. Off: released."""
    modality_check_level: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.05
    """One-sided level of the check's paired bootstrap tests (0.05: 95 % bounds)."""
    modality_check_agree: Annotated[int, Field(ge=1, le=20)] = 2
    """Consecutive validations that must agree before the check leaves a modality out or takes
    it back."""

    @property
    def scheduler_metric_name(self) -> str:
        return self.scheduler_metric or self.selection_metric


@dataclass(config=_FROZEN)
class SyntheticConfig:
    """The built-in tri-modal benchmark (see :mod:`decalign.data.synthetic`), MOSI-shaped."""

    n_train: PosInt = 1284
    n_valid: PosInt = 229
    n_test: PosInt = 686
    seq_len: PosInt = 50
    dims: dict[str, PosInt] = Field(default_factory=lambda: {"text": 768, "audio": 5, "vision": 20})
    shared_weight: NonNegFloat = 1.0
    """Strength of the label component that every modality observes."""
    unique_weight: NonNegFloat = 1.0
    """Strength of each label component that only one modality observes."""
    noise: NonNegFloat = 1.0
    """Feature noise relative to the signal."""
    label_noise: NonNegFloat = 0.1
    """Standard deviation of the label noise no modality can explain (before quantisation)."""
    variable_lengths: bool = False
    """Give every modality but the first random true lengths in [T/2, T] (zero padding after),
    to exercise masking; off: aligned like MOSI ``aligned_50``."""
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.dims) < 2:
            raise ValueError(f"data.synthetic.dims needs at least 2 modalities, got {sorted(self.dims)}")


@dataclass(config=_FROZEN)
class DataConfig:
    """Which data and how it is prepared."""

    # Built from the registry, as ``ModelConfig.architecture``.
    dataset: Literal[(*DATASET_KINDS, "auto")] = "auto"  # ty: ignore[invalid-type-form]
    """A kind of the registry :data:`decalign.data.detect.DATASET_KINDS`, or ``auto`` (detected)."""
    path: str | None = None
    standardize: tuple[float, float] | None = None
    """Percentiles (lo, hi) for per-dimension clip + standardisation of audio and vision, fitted
    on the train split; ``None``: off."""
    iemocap_protocol: Literal["session_valid", "paper_count"] = "session_valid"
    valid_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1
    """Dialogue-level IEMOCAP: fraction of training dialogues carved out for validation."""
    split_seed: int = 0
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)

    def __post_init__(self) -> None:
        if self.standardize is not None:
            lo, hi = self.standardize
            if not 0.0 <= lo < hi <= 100.0:
                raise ValueError(f"data.standardize must be percentiles 0 <= lo < hi <= 100, got {self.standardize}")


@dataclass(config=_FROZEN)
class RunConfig:
    """Everything a training run needs, as written to ``config.json``."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    preset: str = "mosi"

    @model_validator(mode="after")
    def _check_task_consistency(self) -> RunConfig:
        if self.objective.w_bin > 0 and self.objective.task_loss == "ce":
            raise ValueError("objective.w_bin > 0 needs a regression task loss, not 'ce'")
        if self.train.bert_warmup_steps and self.model.text_encoder.kind != "bert":
            raise ValueError("train.bert_warmup_steps > 0 needs model.text_encoder.kind='bert'")
        if self.train.bert_decay != "constant" and self.model.text_encoder.kind != "bert":
            raise ValueError(f"train.bert_decay={self.train.bert_decay!r} needs model.text_encoder.kind='bert'")
        return self


T = TypeVar("T")


def _format_validation_error(err: ValidationError, prefix: str = "") -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if p != "__post_init__")
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
        got = e.get("input")
        shown = "" if isinstance(got, (dict, list, tuple)) else f" (got {got!r})"
        lines.append(f"{where}: {e['msg'].removeprefix('Value error, ')}{shown}")
    return "; ".join(lines)


def config_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build and validate a config dataclass from plain data (e.g. a parsed ``config.json``)."""
    try:
        return TypeAdapter(cls).validate_python(dict(data))
    except ValidationError as err:
        raise ConfigError(f"invalid {cls.__name__}: {_format_validation_error(err)}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain, JSON-serialisable data of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
