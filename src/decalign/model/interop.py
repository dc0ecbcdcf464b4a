"""Moving weights between decalign and the authors' released DecAlign code.

The authors' checkpoints are plain ``state_dict()`` files of their model (layout in
``docs/method.md`` §18): one module per modality with the suffixes ``l`` (text),
``a`` (audio), ``v`` (vision) -- ``proj_l``, ``encoder_uni_l``, ``trans_l.layers.<i>.self_attn``,
``pde_l.net.0`` ... -- plus the shared ``encoder_com`` and the head ``out_layer``. Our model
stacks the per-modality weights of identical shape along a leading modality axis (so aligned
modalities run as one batched matmul); this module converts between the two layouts, key by key:

====================================================  ==================================================
decalign                                              official (``X`` in l, a, v; modality ``m``)
====================================================  ==================================================
``projection.convs.<m>.weight``                       ``proj_X.weight``
``decoupler.unique_weight[m]`` ``[d, d]``             ``encoder_uni_X.weight`` ``(d, d, 1)``
``decoupler.common_weight`` ``[d, d]``                ``encoder_com.weight`` ``(d, d, 1)``
``fusion.layers.<i>.attn_in.{weight,bias}[m]``        ``trans_X.layers.<i>.self_attn.in_proj_{weight,bias}``
``fusion.layers.<i>.attn_out.{weight,bias}[m]``       ``trans_X.layers.<i>.self_attn.out_proj.{weight,bias}``
``fusion.layers.<i>.attn_norm.{weight,bias}[m]``      ``trans_X.layers.<i>.attn_layer_norm.{weight,bias}``
``fusion.layers.<i>.fc1/fc2.{weight,bias}[m]``        ``trans_X.layers.<i>.fc1/fc2.{weight,bias}``
``fusion.layers.<i>.ffn_norm.{weight,bias}[m]``       ``trans_X.layers.<i>.final_layer_norm.{weight,bias}``
``homogeneity.hidden.{weight,bias}[m]``               ``pde_X.net.0.{weight,bias}``
``homogeneity.out.{weight,bias}[m]``                  ``pde_X.net.3.{weight,bias}``
``head.linear.{weight,bias}``                         ``out_layer.{weight,bias}``
``text_encoder.model.*`` (BERT option)                ``text_model.model.*``
====================================================  ==================================================

Use :func:`load_official_state_dict` / :func:`load_official_checkpoint` to run the authors'
weights in decalign, and :func:`export_official_state_dict` to hand decalign weights to their
code. :func:`to_official` / :func:`from_official` convert any mapping keyed like a state dict
(e.g. gradients), without building a model.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from decalign.config import ModelConfig, RunConfig
from decalign.errors import DecalignError
from decalign.model import DecAlign

__all__ = [
    "OFFICIAL_SUFFIX",
    "OfficialStateDictError",
    "export_official_state_dict",
    "from_official",
    "load_official_checkpoint",
    "load_official_state_dict",
    "to_official",
]

OFFICIAL_SUFFIX: dict[str, str] = {"text": "l", "audio": "a", "vision": "v"}
"""Our modality names and the suffixes the authors' code gives them."""

# Per-modality weights stored stacked [M, ...] in decalign: (our key, official key template).
# ``{X}`` is the official modality suffix, ``{i}`` the layer index.
_STACKED: tuple[tuple[str, str], ...] = (
    ("homogeneity.hidden.weight", "pde_{X}.net.0.weight"),
    ("homogeneity.hidden.bias", "pde_{X}.net.0.bias"),
    ("homogeneity.out.weight", "pde_{X}.net.3.weight"),
    ("homogeneity.out.bias", "pde_{X}.net.3.bias"),
)
_LAYER: tuple[tuple[str, str], ...] = (
    ("attn_in.weight", "self_attn.in_proj_weight"),
    ("attn_in.bias", "self_attn.in_proj_bias"),
    ("attn_out.weight", "self_attn.out_proj.weight"),
    ("attn_out.bias", "self_attn.out_proj.bias"),
    ("attn_norm.weight", "attn_layer_norm.weight"),
    ("attn_norm.bias", "attn_layer_norm.bias"),
    ("fc1.weight", "fc1.weight"),
    ("fc1.bias", "fc1.bias"),
    ("fc2.weight", "fc2.weight"),
    ("fc2.bias", "fc2.bias"),
    ("ffn_norm.weight", "final_layer_norm.weight"),
    ("ffn_norm.bias", "final_layer_norm.bias"),
)
_SAME: tuple[tuple[str, str], ...] = (
    ("head.linear.weight", "out_layer.weight"),
    ("head.linear.bias", "out_layer.bias"),
)
_OUR_TEXT_ENCODER = "text_encoder.model."
_OFFICIAL_TEXT_ENCODER = "text_model.model."
# Older ``transformers`` saved BERT's position-id buffer; newer ones do not. It is arange(T),
# carries no learned state, so a checkpoint may have it or not.
_OPTIONAL_BUFFERS = ("embeddings.position_ids",)
_LAYER_KEY = re.compile(r"^fusion\.layers\.(\d+)\.")
_OFFICIAL_LAYER_KEY = re.compile(r"^trans_[a-z]+\.layers\.(\d+)\.")

Shape = tuple[int | str, ...]


class OfficialStateDictError(DecalignError, ValueError):
    """An official state dict does not fit the model it is loaded into.

    The message lists every problem at once; the same lists are in ``unknown`` (keys the model
    has no place for), ``missing`` (``(key, expected shape)``) and ``mismatched``
    (``(key, expected shape, found shape)``).
    """

    def __init__(
        self,
        unknown: Sequence[tuple[str, Shape]],
        missing: Sequence[tuple[str, Shape]],
        mismatched: Sequence[tuple[str, Shape, Shape]],
        hint: str = "",
        source: str = "",
    ) -> None:
        self.unknown = list(unknown)
        self.missing = list(missing)
        self.mismatched = list(mismatched)
        where = f" in {source}" if source else ""
        lines = [
            f"the official DecAlign state dict{where} does not fit the model "
            f"({len(self.unknown)} unknown, {len(self.missing)} missing, {len(self.mismatched)} mis-shaped keys)"
        ]
        lines += [f"  unknown key {k} (found shape {s})" for k, s in self.unknown]
        lines += [f"  missing key {k} (expected shape {s})" for k, s in self.missing]
        lines += [f"  shape mismatch {k}: expected {e}, found {f}" for k, e, f in self.mismatched]
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


def _suffix(modality: str) -> str:
    try:
        return OFFICIAL_SUFFIX[modality]
    except KeyError:
        raise ValueError(
            f"the official DecAlign layout only has the modalities {list(OFFICIAL_SUFFIX)}; "
            f"found {modality!r}"
        ) from None


def _num_layers(keys: Sequence[str], pattern: re.Pattern[str] = _LAYER_KEY) -> int:
    found = [int(m.group(1)) for k in keys if (m := pattern.match(k))]
    return max(found) + 1 if found else 0


def _stacked_pairs(modalities: Sequence[str], num_layers: int) -> list[tuple[str, str]]:
    pairs = list(_STACKED)
    for i in range(num_layers):
        pairs += [(f"fusion.layers.{i}.{ours}", f"trans_{{X}}.layers.{i}.{theirs}") for ours, theirs in _LAYER]
    return pairs


def to_official(tensors: Mapping[str, Tensor], modalities: Sequence[str]) -> dict[str, Tensor]:
    """Convert a mapping keyed like our ``state_dict()`` (weights, gradients, ...) to the official
    layout.

    Args:
        tensors: decalign keys -> tensors; stacked entries have the modality axis first, in
            the order of ``modalities``. Keys absent from ``tensors`` are skipped.
        modalities: the model's modality order (``model.modalities``), each of ``text``,
            ``audio``, ``vision``.

    Returns:
        Official keys -> tensors. Every tensor is a fresh contiguous copy: slices of the
        stacked weights would otherwise be views, and ``torch.save`` of a view writes the whole
        stacked storage.
    """
    suffixes = [_suffix(m) for m in modalities]
    out: dict[str, Tensor] = {}
    for m, x in zip(modalities, suffixes):
        key = f"projection.convs.{m}.weight"
        if key in tensors:
            out[f"proj_{x}.weight"] = tensors[key].detach().clone()
    if "decoupler.unique_weight" in tensors:
        for i, x in enumerate(suffixes):
            out[f"encoder_uni_{x}.weight"] = tensors["decoupler.unique_weight"][i].detach().unsqueeze(-1).clone()
    if "decoupler.common_weight" in tensors:
        out["encoder_com.weight"] = tensors["decoupler.common_weight"].detach().unsqueeze(-1).clone()
    for ours, template in _stacked_pairs(modalities, _num_layers(list(tensors))):
        if ours in tensors:
            for i, x in enumerate(suffixes):
                out[template.format(X=x)] = tensors[ours][i].detach().clone()
    for ours, theirs in _SAME:
        if ours in tensors:
            out[theirs] = tensors[ours].detach().clone()
    for key, value in tensors.items():
        if key.startswith(_OUR_TEXT_ENCODER):
            out[_OFFICIAL_TEXT_ENCODER + key[len(_OUR_TEXT_ENCODER):]] = value.detach().clone()
    return out


def from_official(tensors: Mapping[str, Tensor], modalities: Sequence[str]) -> dict[str, Tensor]:
    """Inverse of :func:`to_official`: official keys -> decalign keys, stacking per-modality
    weights in the order of ``modalities``.

    A stacked entry is produced only when every modality's tensor is present; keys this layout
    does not know are ignored (:func:`load_official_state_dict` reports them).
    """
    suffixes = [_suffix(m) for m in modalities]
    out: dict[str, Tensor] = {}
    for m, x in zip(modalities, suffixes):
        if f"proj_{x}.weight" in tensors:
            out[f"projection.convs.{m}.weight"] = tensors[f"proj_{x}.weight"]
    uni = [f"encoder_uni_{x}.weight" for x in suffixes]
    if all(k in tensors for k in uni):
        out["decoupler.unique_weight"] = torch.stack([tensors[k].squeeze(-1) for k in uni])
    if "encoder_com.weight" in tensors:
        out["decoupler.common_weight"] = tensors["encoder_com.weight"].squeeze(-1)
    for ours, template in _stacked_pairs(modalities, _num_layers(list(tensors), _OFFICIAL_LAYER_KEY)):
        keys = [template.format(X=x) for x in suffixes]
        if all(k in tensors for k in keys):
            out[ours] = torch.stack([tensors[k] for k in keys])
    for ours, theirs in _SAME:
        if theirs in tensors:
            out[ours] = tensors[theirs]
    for key, value in tensors.items():
        if key.startswith(_OFFICIAL_TEXT_ENCODER):
            out[_OUR_TEXT_ENCODER + key[len(_OFFICIAL_TEXT_ENCODER):]] = value
    return out


def export_official_state_dict(model: DecAlign) -> dict[str, Tensor]:
    """The model's weights in the authors' checkpoint layout (loadable by their code with
    ``load_state_dict``, and by :func:`load_official_state_dict`).

    The model must have exactly the modalities ``text``, ``audio`` and ``vision`` (any order).
    """
    if sorted(model.modalities) != sorted(OFFICIAL_SUFFIX):
        raise ValueError(
            f"the official DecAlign layout needs exactly the modalities {list(OFFICIAL_SUFFIX)}; "
            f"this model has {list(model.modalities)}"
        )
    return to_official(model.state_dict(), model.modalities)


def _model_config(preset: str | RunConfig | ModelConfig) -> ModelConfig:
    if isinstance(preset, ModelConfig):
        return preset
    if isinstance(preset, RunConfig):
        return preset.model
    if isinstance(preset, str):
        from decalign.config.presets import get_preset

        return get_preset(preset).model
    raise TypeError(f"preset must be a preset name, a RunConfig or a ModelConfig, got {type(preset).__name__}")


def _infer_input_dims(state_dict: Mapping[str, Tensor]) -> dict[str, int | None]:
    """Input widths from the projection weights ``proj_X.weight`` ``(d, D_X, k)``; ``None`` where
    that key is absent or not a conv weight (reported with the other key problems)."""
    dims: dict[str, int | None] = {}
    for m, x in OFFICIAL_SUFFIX.items():
        w = state_dict.get(f"proj_{x}.weight")
        dims[m] = int(w.shape[1]) if w is not None and w.dim() == 3 else None
    return dims


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _strip_wrapper_prefix(state_dict: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
    """``nn.DataParallel`` saves every key under ``module.``; accept that uniform prefix."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


def load_official_state_dict(
    state_dict: Mapping[str, Tensor],
    preset: str | RunConfig | ModelConfig,
    input_dims: Mapping[str, int] | None = None,
    num_outputs: int | None = None,
    *,
    source: str = "",
) -> DecAlign:
    """Build our :class:`DecAlign` from a state dict saved by the authors' code.

    Args:
        state_dict: official keys -> tensors (see the module docstring). A uniform ``module.``
            prefix (``nn.DataParallel``) is accepted.
        preset: the hyper-parameters the checkpoint was trained with: a preset name, a
            :class:`RunConfig` or a :class:`ModelConfig`. With ``model.text_encoder.kind='bert'``
            the BERT weights ``text_model.model.*`` are loaded into our text encoder.
        input_dims: ``{"text": D_l, "audio": D_a, "vision": D_v}``; ``None`` reads them from the
            ``proj_X.weight`` shapes.
        num_outputs: 1 for regression or the number of classes; ``None`` reads it from
            ``out_layer.weight``.
        source: where the state dict came from (a file name), for error messages.

    Returns:
        The model in float32, in training mode like any new module (call ``.eval()`` to predict).

    Raises:
        OfficialStateDictError: listing every unknown key, missing key and shape mismatch at once.
    """
    config = _model_config(preset)
    state_dict = _strip_wrapper_prefix(state_dict)
    dims = dict(input_dims) if input_dims is not None else _infer_input_dims(state_dict)
    missing_dims = [m for m in OFFICIAL_SUFFIX if m not in dims]
    if missing_dims:
        raise ValueError(f"input_dims must give the widths of {list(OFFICIAL_SUFFIX)}; missing {missing_dims}")
    if num_outputs is None:
        weight, bias = state_dict.get("out_layer.weight"), state_dict.get("out_layer.bias")
        if weight is not None and weight.dim() == 2:
            num_outputs = int(weight.shape[0])
        elif bias is not None and bias.dim() == 1:
            num_outputs = int(bias.shape[0])
    # Where a width or the output count cannot be read, build with a placeholder of 1 so that the
    # comparison below still reports every key problem at once; the expected shape then shows "?".
    unread = {f"proj_{OFFICIAL_SUFFIX[m]}.weight": 1 for m, dim in dims.items() if dim is None}
    if num_outputs is None:
        unread["out_layer.weight"] = 0
        unread["out_layer.bias"] = 0
    model = DecAlign(config, {m: dims[m] or 1 for m in OFFICIAL_SUFFIX}, num_outputs=num_outputs or 1)
    expected: dict[str, Shape] = {k: _shape(v) for k, v in export_official_state_dict(model).items()}
    for key, axis in unread.items():
        expected[key] = tuple("?" if i == axis else s for i, s in enumerate(expected[key]))

    def optional(key: str) -> bool:
        return key.startswith(_OFFICIAL_TEXT_ENCODER) and key.endswith(_OPTIONAL_BUFFERS)

    unknown = [(k, _shape(v)) for k, v in state_dict.items() if k not in expected and not optional(k)]
    missing = [(k, s) for k, s in expected.items() if k not in state_dict and not optional(k)]
    mismatched = [(k, s, _shape(state_dict[k])) for k, s in expected.items()
                  if k in state_dict and _shape(state_dict[k]) != s]
    if unknown or missing or mismatched:
        hints = []
        if any(k.startswith("text_model.") for k, _ in unknown):
            hints.append("the checkpoint has a BERT text encoder: set model.text_encoder.kind='bert' and "
                         "model.text_encoder.path to a local copy of that BERT")
        if unread:
            hints.append("input widths are read from proj_X.weight and the number of outputs from "
                         "out_layer.weight; pass input_dims / num_outputs to give them explicitly")
        if any(k.startswith("text_model.") for k, _ in missing):
            hints.append("the model has a BERT text encoder but the checkpoint does not: use "
                         "model.text_encoder.kind='features'")
        raise OfficialStateDictError(unknown, missing, mismatched, "\n".join(hints), source)
    ours = from_official({k: v for k, v in state_dict.items() if k in expected}, model.modalities)
    with torch.no_grad():
        result = model.load_state_dict(ours, strict=False)
    leftover = [k for k in result.missing_keys if not k.endswith(_OPTIONAL_BUFFERS)] + list(result.unexpected_keys)
    if leftover:  # cannot happen if the key tables above are complete
        raise RuntimeError(f"internal error: official keys converted incompletely: {leftover}")
    return model


def load_official_checkpoint(
    path: str | os.PathLike[str],
    preset: str | RunConfig | ModelConfig,
    input_dims: Mapping[str, int] | None = None,
    num_outputs: int | None = None,
) -> DecAlign:
    """:func:`load_official_state_dict` on a file saved by the authors' code (``torch.save`` of
    ``model.state_dict()``).

    The file is read with ``weights_only=True``: a checkpoint is data, and unpickling arbitrary
    objects from a downloaded file can run code. A file holding ``{"state_dict": ...}`` or
    ``{"model": ...}`` is unwrapped.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint file {str(file)!r} does not exist")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"cannot read the checkpoint {str(file)!r}: {type(err).__name__}: {err}. The file may be truncated "
            "or corrupt, or hold Python objects other than tensors (only plain state dicts are loaded)"
        ) from err
    if isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{str(file)!r} does not hold a state dict (a mapping of names to tensors)")
    return load_official_state_dict(obj, preset, input_dims, num_outputs, source=repr(str(file)))
