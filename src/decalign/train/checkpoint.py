"""Checkpoints: portable model files (safetensors) and resumable training state.

``model.safetensors`` holds the weights, the preprocessing statistics fitted on the training
split, and in its metadata the fully resolved run configuration and what the model was built for
(modalities, widths, task). It loads without pickle, so a checkpoint from a stranger is safe to
open. ``state.pt`` holds what ``--resume`` needs (optimizer, scheduler, RNG, early stopping); it is
written by us and read back with ``torch.load(weights_only=True)``, which refuses code objects.
Both are written atomically; a truncated or corrupt file is an error that names it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from decalign import __version__
from decalign.config import RunConfig, config_from_dict, config_to_dict
from decalign.errors import CheckpointError
from decalign.model.factory import ModelInfo, build_model  # re-exported: their former home
from decalign.train.atomic import atomic_write

__all__ = [
    "CheckpointError",
    "LoadedCheckpoint",
    "ModelInfo",
    "build_model",
    "load_checkpoint",
    "load_training_state",
    "load_weights",
    "save_checkpoint",
    "save_training_state",
]

FORMAT = "decalign-checkpoint-v1"
_PRE = "preprocess."


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    config: RunConfig
    info: ModelInfo
    preprocess: dict[str, dict[str, np.ndarray]]
    """Standardisation statistics per modality (``lo``, ``hi``, ``mean``, ``std``), or empty."""
    metadata: dict[str, str]

    def predictor(self, device: str = "cpu") -> Any:
        """A :class:`decalign.inference.Predictor`: this model with its preprocessing, for raw
        features (``ckpt.model`` alone skips the run's standardisation)."""
        from decalign.inference import Predictor

        return Predictor(self.model, self.config, self.info, self.preprocess, device)


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    config: RunConfig,
    info: ModelInfo,
    preprocess: dict[str, dict[str, np.ndarray]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` with everything needed to rebuild and use it, atomically."""
    from safetensors.torch import save_file

    module = getattr(model, "module", model)  # unwrap DDP
    module = getattr(module, "_orig_mod", module)  # unwrap torch.compile
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    for mod, stats in (preprocess or {}).items():
        for name, arr in stats.items():
            tensors[f"{_PRE}{mod}.{name}"] = torch.as_tensor(np.asarray(arr, dtype=np.float32))
    metadata = {
        "format": FORMAT,
        "decalign_version": __version__,
        "config": json.dumps(config_to_dict(config)),
        "model_info": json.dumps(asdict(info)),
        "extra": json.dumps(extra or {}),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _read(file: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    from safetensors import safe_open

    if not file.is_file():
        raise CheckpointError(f"checkpoint {str(file)!r} does not exist")
    try:
        with safe_open(str(file), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as err:  # safetensors raises its own error types for corrupt headers/data
        raise CheckpointError(f"checkpoint {str(file)!r} is corrupt or truncated: {err}") from err
    return metadata, tensors


def load_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Only the model weights of a checkpoint (no model is built, no random number drawn)."""
    _, tensors = _read(Path(path))
    return {k: v for k, v in tensors.items() if not k.startswith(_PRE)}


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model saved by :func:`save_checkpoint` (no pickle involved)."""
    file = Path(path)
    metadata, tensors = _read(file)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(file)!r} is not a decalign checkpoint (metadata format {metadata.get('format')!r}); "
            "to import the authors' checkpoints use decalign.interop.load_official_checkpoint"
        )
    try:
        config = config_from_dict(RunConfig, json.loads(metadata["config"]))
        info = ModelInfo.from_dict(json.loads(metadata["model_info"]))
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint {str(file)!r} has unreadable metadata: {err}") from err
    preprocess: dict[str, dict[str, np.ndarray]] = {}
    weights = {}
    for key, value in tensors.items():
        if key.startswith(_PRE):
            mod, name = key[len(_PRE):].rsplit(".", 1)
            preprocess.setdefault(mod, {})[name] = value.numpy()
        else:
            weights[key] = value
    model = build_model(config, info)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {str(file)!r} does not fit the model it describes: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}"
        )
    model.to(device)
    return LoadedCheckpoint(model, config, info, preprocess, metadata)


def save_training_state(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write the resumable training state (tensors, numbers, strings, lists, dicts) atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state written by :func:`save_training_state`; a damaged file is an error naming it,
    never a silent fresh start."""
    file = Path(path)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"training state {str(file)!r} does not exist") from None
    except Exception as err:
        raise CheckpointError(
            f"training state {str(file)!r} is corrupt or truncated ({type(err).__name__}: {err}); "
            "delete it to restart this seed from scratch"
        ) from err
    if not isinstance(state, dict) or "epoch" not in state:
        raise CheckpointError(f"training state {str(file)!r} is not a decalign training state")
    return state
