"""Typed, validated configuration: the one source of truth for hyper-parameters.

Every setting lives in a frozen dataclass (pydantic dataclasses, so values are type-checked and
coerced once, at construction, with errors that name the field). The CLI's ``--set key=value``,
``config.json`` files and the presets in :mod:`decalign.presets` all map onto these classes; nothing
downstream reads settings from anywhere else.

Per-modality settings (convolution kernel, attention dropout) are mappings from modality name to
value with a ``"default"`` entry, so that a preset written for text/audio/vision also applies to a
dataset with other modalities.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from decalign.data.detect import DATASET_KINDS
from decalign.errors import ConfigError
from decalign.metrics import metric_mode  # re-exported: the one definition of metric direction
from decalign.model.factory import ARCHITECTURES
from decalign.train.devices import DEVICES

__all__ = [
    "CONFIG_FILE_LIMITS",
    "ConfigError",
    "ConfigFileLimits",
    "DataConfig",
    "FusionConfig",
    "HeterogeneityConfig",
    "HomogeneityConfig",
    "ModelConfig",
    "ObjectiveConfig",
    "RunConfig",
    "SyntheticConfig",
    "TextEncoderConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "flat_keys",
    "metric_mode",
    "read_config_file",
    "section_overrides",
    "write_config_file",
]

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

    architecture: Literal[tuple(ARCHITECTURES)] = "decalign"  # type: ignore[valid-type]
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
    device: Literal[DEVICES] = "auto"  # type: ignore[valid-type]
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

    dataset: Literal[(*DATASET_KINDS, "auto")] = "auto"  # type: ignore[valid-type]
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


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _dataclass_of(tp: Any) -> type | None:
    """The dataclass inside ``tp`` (also inside ``X | None``), or None."""
    tp = _unwrap(tp)
    if dataclasses.is_dataclass(tp):
        return tp  # type: ignore[return-value]
    for arg in get_args(tp):
        arg = _unwrap(arg)
        if dataclasses.is_dataclass(arg):
            return arg  # type: ignore[return-value]
    return None


def _is_mapping(tp: Any) -> bool:
    tp = _unwrap(tp)
    return get_origin(tp) in (dict, Mapping)


def flat_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """Every settable dotted key of a config class, e.g. ``model.fusion.num_layers``."""
    keys: list[str] = []
    hints = get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        sub = _dataclass_of(hints[f.name])
        if sub is not None:
            keys.extend(flat_keys(sub, f"{prefix}{f.name}."))
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _parse_value(text: str) -> Any:
    """A ``--set`` value: JSON where it parses (so ``1e-4`` stays a number, which YAML 1.1 reads
    as a string), else YAML (``[text,audio]``, ``{text: 3}``, ``yes``: what Hydra/OmegaConf users
    type), else the raw string."""
    low = text.strip().lower()
    if low in {"none", "null", "~"}:
        return None
    if low in {"true", "false"}:
        return low == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    import yaml  # a core dependency; imported here so that ``--help`` stays fast

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML reads "#x" or "" as null and dates as date objects: keep such text as written.
    return value if isinstance(value, (str, int, float, bool, list, dict)) else text


def _suggestions(key: str, valid: list[str]) -> list[str]:
    """Up to three valid keys closest to a mistyped ``key`` (whole dotted key, then leaf name)."""
    import difflib

    found = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    leaves = sorted({v.rsplit(".", 1)[-1] for v in valid})
    for leaf in difflib.get_close_matches(key.rsplit(".", 1)[-1], leaves, n=3, cutoff=0.75):
        found += [v for v in valid if v.rsplit(".", 1)[-1] == leaf]
    return list(dict.fromkeys(found))[:3]


def _unknown_key(key: str, valid: list[str], where: str = "") -> ConfigError:
    near = _suggestions(key, valid)
    if near:
        return ConfigError(f"unknown setting {key!r}{where}; did you mean {' or '.join(near)}? "
                           "(`decalign presets --keys` lists every setting)")
    return ConfigError(f"unknown setting {key!r}{where}; valid settings are:\n  " + "\n  ".join(valid))


def _resolve_key(key: str, valid: list[str]) -> tuple[str, str | None]:
    """Map a user key to a full dotted key; returns (key, sub-key for per-modality maps)."""
    if key in valid:
        return key, None
    # ``model.conv_kernel.audio``: one entry of a per-modality mapping.
    head, _, last = key.rpartition(".")
    if head in valid:
        return head, last
    # A unique leaf name (``lr``) or unique suffix (``fusion.num_layers``) is accepted too.
    matches = [v for v in valid if v.endswith("." + key)]
    if len(matches) == 1:
        return matches[0], None
    if head:
        matches = [v for v in valid if v.endswith("." + head)]
        if len(matches) == 1:
            return matches[0], last
    if len(matches) > 1:
        raise ConfigError(f"unknown setting {key!r} (ambiguous: {', '.join(matches)})")
    raise _unknown_key(key, valid)


def section_overrides(overrides: Iterable[Override], section: str) -> list[Override]:
    """The ``key=value`` overrides that set a key of ``section`` (e.g. ``data``), whatever form the
    key takes (dotted, unique suffix, per-modality entry): resolved by the same lookup as
    :func:`apply_overrides`, so data can be loaded before the rest of a config is known."""
    valid = flat_keys(RunConfig)
    chosen = []
    for item in overrides:
        key, _ = _split_override(item)
        full, _ = _resolve_key(key, valid)
        if full.startswith(section + "."):
            chosen.append(item)
    return chosen


Override = str | tuple[str, Any]
"""One override: ``"key=value"`` text (``--set``; the value parsed by :func:`_parse_value`), or a
``(key, value)`` pair whose value is used as it is (a ``--config`` file's parsed values: never
turned back into text and parsed again)."""


def _split_override(item: Override) -> tuple[str, Any]:
    """``(key, value)`` of an override, the value of a ``key=value`` text parsed."""
    if isinstance(item, tuple):
        return str(item[0]).strip(), item[1]
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    k, v = item.split("=", 1)
    return k.strip(), _parse_value(v)


def apply_overrides(config: RunConfig, overrides: Iterable[Override] | Mapping[str, Any]) -> RunConfig:
    """Return ``config`` with ``key=value`` overrides applied and the result re-validated.

    Keys are dotted paths (``train.lr``), unique suffixes (``lr``, ``fusion.num_layers``), or an
    entry of a per-modality mapping (``model.conv_kernel.audio``). Setting a per-modality mapping
    to a plain value (``model.conv_kernel=5``) applies it to every modality. An override is a
    ``key=value`` text or a ``(key, value)`` pair (:data:`Override`).
    """
    items: list[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = [_split_override(item) for item in overrides]
    valid = flat_keys(RunConfig)
    data = config_to_dict(config)
    hints_cache: dict[str, Any] = {}
    for key, value in items:
        full, sub = _resolve_key(key, valid)
        *path, leaf = full.split(".")
        node = data
        cls: Any = RunConfig
        for p in path:
            node = node[p]
            cls = _dataclass_of(get_type_hints(cls, include_extras=True)[p])
        tp = hints_cache.setdefault(full, get_type_hints(cls, include_extras=True)[leaf])
        if _is_mapping(tp):
            if sub is not None:
                node[leaf] = {**node[leaf], sub: value}
            elif isinstance(value, Mapping):
                node[leaf] = dict(value)
            else:
                node[leaf] = {"default": value}
        elif sub is not None:
            raise ConfigError(f"unknown setting {key!r}: {full} is not a per-modality mapping")
        else:
            node[leaf] = value
    return config_from_dict(RunConfig, data)


@dataclasses.dataclass(frozen=True)
class ConfigFileLimits:
    """Bounds on a ``--config`` file, all checked before a value is built: a config file holds a
    few hundred settings, so these leave ample room and stop what only an attack or an accident
    produces (a 344-byte YAML file of aliases nested 9 deep stands for 4e8 elements; a 5000-deep
    list exhausts the parser's recursion)."""

    max_bytes: int = 1 << 20
    """File size (1 MiB; a full ``config.json`` is about 3 KB)."""
    max_depth: int = 32
    """Nesting of mappings and lists (the deepest setting is 4 levels down)."""
    max_elements: int = 100_000
    """Scalars, lists and mappings the document stands for, each alias counted as a full copy of
    what it refers to (so alias "bombs" are counted at their expanded size)."""


CONFIG_FILE_LIMITS = ConfigFileLimits()


def _read_config_text(file: Path, limits: ConfigFileLimits) -> str:
    """The text of a config file: at most ``limits.max_bytes`` read, valid UTF-8, or one line."""
    from decalign.errors import file_error

    try:
        with open(file, "rb") as fh:
            raw = fh.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {str(file)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(file)!r} is a directory") from None
    except OSError as err:
        raise file_error(err, file, "read the config file") from None
    if len(raw) > limits.max_bytes:
        raise ConfigError(f"config file {str(file)!r} is larger than {limits.max_bytes} bytes (a config file holds "
                          "a few hundred settings); is it the right file?")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"config file {str(file)!r}, line {line} (byte {err.start}): not UTF-8 text "
                          f"(byte {raw[err.start:err.start + 1]!r}); is it a binary file?") from None


def _json_depth(text: str) -> int:
    """The deepest nesting of ``[``/``{`` in JSON ``text`` (outside strings), without parsing it,
    so that a deep document is refused before the recursive parser sees it."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _count_json(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + sum(1 + _count_json(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(_count_json(v) for v in value)
    return 1


class _LimitExceeded(Exception):
    def __init__(self, message: str, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.key, self.line = key, line


def _yaml_loader(limits: ConfigFileLimits) -> Any:
    """A ``yaml.SafeLoader`` that refuses, while composing, nodes nested deeper than
    ``limits.max_depth`` and more than ``limits.max_elements`` nodes; the expanded size of the
    composed document (aliases counted at full size, cycles refused) is checked by
    :func:`_check_yaml_graph` before any Python value is constructed."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        depth = 0
        nodes = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            self.nodes += 1
            try:
                if self.depth > limits.max_depth:
                    raise _LimitExceeded(f"nested deeper than {limits.max_depth} levels",
                                         line=self.peek_event().start_mark.line + 1)
                if self.nodes > limits.max_elements:
                    raise _LimitExceeded(f"more than {limits.max_elements} elements",
                                         line=self.peek_event().start_mark.line + 1)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedLoader


def _check_yaml_graph(root: Any, limits: ConfigFileLimits) -> None:
    """Refuse a composed YAML document whose aliases expand beyond ``limits.max_elements`` or
    refer to themselves, naming the top-level key path where it happens. Each node's expanded
    size is computed once (memoised), so the check costs as much as the file, not as its
    expansion."""
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: Any, key: str) -> int:
        ident = id(node)
        if ident in sizes:
            return sizes[ident]
        if ident in on_path:
            raise _LimitExceeded("an alias refers to the mapping or list that contains it (a recursive alias)",
                                 key=key or None, line=node.start_mark.line + 1)
        on_path.add(ident)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else "?"
                total += size(k, key) + size(v, f"{key}.{name}" if key else str(name))
                if total > limits.max_elements:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                total += size(v, f"{key}[{i}]")
                if total > limits.max_elements:
                    break
        on_path.discard(ident)
        if total > limits.max_elements:
            raise _LimitExceeded(f"expands to more than {limits.max_elements} elements (aliases counted at full size)",
                                 key=key or None, line=node.start_mark.line + 1)
        sizes[ident] = total
        return total

    size(root, "")


def _parse_config_text(file: Path, text: str, limits: ConfigFileLimits) -> Any:
    """The document of a config file within ``limits`` (JSON for ``.json``, else YAML)."""
    import yaml

    kind = file.suffix.lstrip(".").upper() if file.suffix.lower() == ".json" else "YAML"
    try:
        if kind == "JSON":
            if _json_depth(text) > limits.max_depth:
                raise _LimitExceeded(f"nested deeper than {limits.max_depth} levels")
            data = json.loads(text)
            if _count_json(data) > limits.max_elements:
                raise _LimitExceeded(f"more than {limits.max_elements} elements")
            return data
        loader = _yaml_loader(limits)(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_yaml_graph(node, limits)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except _LimitExceeded as err:
        where = "".join([f", key {err.key!r}" if err.key else "", f", line {err.line}" if err.line else ""])
        raise ConfigError(f"config file {str(file)!r}{where}: {err}; a config file holds a few settings") from None
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"config file {str(file)!r} is not valid {kind}: {str(err).splitlines()[0]}") from None
    except (ValueError, OverflowError) as err:  # a value YAML/JSON parse but Python cannot build (a date
        # of month 13, an integer of 10^6 digits)
        raise ConfigError(f"config file {str(file)!r} holds a value that cannot be read: "
                          f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def read_config_file(path: str | os.PathLike[str], limits: ConfigFileLimits = CONFIG_FILE_LIMITS) -> dict[str, Any]:
    """The settings in a YAML or JSON file (a run's ``config.json``, or a partial file holding
    only the keys to change), as ``{dotted key: value}`` ready for :func:`apply_overrides`.

    Nested sections map onto the config classes (``model: {fusion: {num_layers: 3}}``); dotted
    keys at any level (``train.lr: 1e-4``) work too. An unknown key is an error naming the file
    and the nearest valid keys. The file is bounded by ``limits`` (:class:`ConfigFileLimits`:
    size, nesting, elements with aliases expanded), checked before any value is built; values
    are returned as parsed (never turned back into text).
    """
    file = Path(path)
    data = _parse_config_text(file, _read_config_text(file, limits), limits)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {str(file)!r} must hold a mapping of settings, found {type(data).__name__}")
    valid = flat_keys(RunConfig)
    sections = {v.rsplit(".", 1)[0] for v in valid if "." in v}
    sections |= {s.rsplit(".", 1)[0] for s in list(sections) if "." in s}
    flat: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            if key in sections and isinstance(v, Mapping):
                walk(v, key + ".")
            elif key in valid or key == "preset":
                flat[key] = v
            else:
                head = key.rpartition(".")[0]
                if head in valid and _is_mapping_key(head):  # model.conv_kernel.audio: 3
                    flat[key] = v
                else:
                    raise _unknown_key(key, [*valid, *sorted(sections)], f" in {str(file)!r}")

    walk(data, "")
    return flat


def _is_mapping_key(full: str) -> bool:
    *path, leaf = full.split(".")
    cls: Any = RunConfig
    for p in path:
        cls = _dataclass_of(get_type_hints(cls, include_extras=True)[p])
    return _is_mapping(get_type_hints(cls, include_extras=True)[leaf])


def write_config_file(config: RunConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``config`` as YAML (``.yaml``/``.yml``) or JSON (anything else); either file is a
    valid ``decalign train --config`` input that reproduces ``config`` exactly."""
    import yaml

    file = Path(path)
    data = config_to_dict(config)
    if file.suffix.lower() in (".yaml", ".yml"):
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
    else:
        text = json.dumps(data, indent=2) + "\n"
    from decalign.train.atomic import write_text

    return write_text(file, text)
