"""Checkpoints: portable model files (safetensors) and resumable training state.

``model.safetensors`` holds the weights, the preprocessing statistics fitted on the training
split, and in its metadata the fully resolved run configuration and what the model was built for
(modalities, widths, task). It loads without pickle, so a checkpoint from a stranger is safe to
open. ``state.pt`` holds what ``--resume`` needs (optimizer, scheduler, RNG, early stopping); it is
written by us and read back with ``torch.load(weights_only=True)``, which refuses code objects.
Both are written atomically; a truncated or corrupt file is an error that names it.
"""

from __future__ import annotations

import hashlib
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
from decalign.errors import CheckpointAccessError, CheckpointError
from decalign.model.base import MultimodalModel
from decalign.model.factory import ModelInfo, build_model  # re-exported: their former home
from decalign.train.atomic import atomic_write

__all__ = [
    "CHECKSUM_KEY",
    "SKIP_CHECKSUM_ENV",
    "CheckpointError",
    "LoadedCheckpoint",
    "ModelInfo",
    "build_model",
    "load_checkpoint",
    "load_training_state",
    "load_weights",
    "save_checkpoint",
    "save_training_state",
    "tensors_checksum",
]

FORMAT = "decalign-checkpoint-v1"
_PRE = "preprocess."


@dataclass
class LoadedCheckpoint:
    """A ``model.safetensors`` read back (:func:`load_checkpoint`). For raw features use
    :meth:`decalign.inference.Predictor.from_loaded`, which adds the run's standardisation
    (``model`` alone skips it); inference sits above this module, so the checkpoint does not
    build predictors itself."""

    model: MultimodalModel
    config: RunConfig
    info: ModelInfo
    preprocess: dict[str, dict[str, np.ndarray]]
    """Standardisation statistics per modality (``lo``, ``hi``, ``mean``, ``std``), or empty."""
    metadata: dict[str, str]


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
        CHECKSUM_KEY: tensors_checksum(tensors),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


CHECKSUM_KEY = "tensors_sha256"
"""Metadata key of :func:`tensors_checksum`, verified by :func:`load_checkpoint`."""
SKIP_CHECKSUM_ENV = "DECALIGN_SKIP_CHECKSUM"
"""Set to ``1`` to load checkpoints whose weights were edited on purpose (checksum not verified)."""


def tensors_checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order.

    safetensors checks that its header is consistent with the file, not that the numbers are the
    ones written: one flipped bit in a weight loads silently (and can make predictions of 1e36).
    The checksum in the metadata catches that; a file edited on purpose loads with
    ``load_checkpoint(path, verify=False)``, or with ``DECALIGN_SKIP_CHECKSUM=1`` in the
    environment for every command (``decalign eval``/``predict``).
    """
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        digest.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _missing_hint(file: Path) -> str:
    """Where a missing checkpoint might be: the seeds its run directory holds (a copied command
    with another run's seed, ``seed_1`` where the run wrote ``seed_1111``), or the missing folder."""
    run = file.parent.parent if file.parent.name.startswith("seed_") else file.parent
    if not run.is_dir():
        return f" (the folder {str(run)!r} does not exist)"
    seeds = sorted(p.parent.name for p in run.glob("seed_*/model.safetensors"))
    if not seeds:
        return f" (no seed_*/model.safetensors in {str(run)!r})"
    return f"; the run {str(run)!r} has {', '.join(seeds)}"


def _read(file: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    from safetensors import safe_open

    if not file.exists():
        raise CheckpointError(f"checkpoint {str(file)!r} does not exist{_missing_hint(file)}")
    if file.is_dir():
        raise CheckpointError(f"checkpoint {str(file)!r} is a directory, expected a .safetensors file")
    try:  # safetensors reports an unreadable file as "No such file"; ask the OS ourselves first
        open(file, "rb").close()
    except PermissionError:  # the OS refused: exit code 1 (docs/security.md), not 2 as a corrupt file
        raise CheckpointAccessError(f"checkpoint {str(file)!r} cannot be read: permission denied") from None
    except OSError as err:
        raise CheckpointAccessError(f"checkpoint {str(file)!r} cannot be read: {err.strerror or err}") from None
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


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", *, verify: bool | None = None
) -> LoadedCheckpoint:
    """Rebuild the model saved by :func:`save_checkpoint` (no pickle involved).

    Every problem with the file (unreadable, corrupt, metadata of the wrong type, a model the
    metadata cannot describe, weights of other shapes, weights that fail their checksum) is a
    :class:`CheckpointError` naming the file and the key. ``verify=False`` skips the checksum, for
    a file edited on purpose (default: verify unless ``DECALIGN_SKIP_CHECKSUM=1``). Files written
    before checksums existed load unverified.
    """
    if verify is None:
        verify = os.environ.get(SKIP_CHECKSUM_ENV, "") not in ("1", "true", "yes")
    file = Path(path)
    metadata, tensors = _read(file)
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(file)!r} is not a decalign checkpoint (metadata format {metadata.get('format')!r}); "
            "to import the authors' checkpoints use decalign.model.interop.load_official_checkpoint"
        )
    if verify and CHECKSUM_KEY in metadata and tensors_checksum(tensors) != metadata[CHECKSUM_KEY]:
        raise CheckpointError(
            f"checkpoint {str(file)!r}: the weights do not match the checksum stored in its metadata "
            f"({CHECKSUM_KEY}): the file was damaged or edited; if you edited it on purpose, load it "
            f"with {SKIP_CHECKSUM_ENV}=1 in the environment (or load_checkpoint(path, verify=False))"
        )
    config, info = _metadata_objects(file, metadata)
    preprocess: dict[str, dict[str, np.ndarray]] = {}
    weights = {}
    for key, value in tensors.items():
        if key.startswith(_PRE):
            mod, _, name = key[len(_PRE):].rpartition(".")
            preprocess.setdefault(mod, {})[name] = value.numpy()
        else:
            weights[key] = value
    try:
        model = build_model(config, info)
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        raise CheckpointError(
            f"checkpoint {str(file)!r}: its metadata (config, model_info) describes a model that cannot "
            f"be built: {type(err).__name__}: {err}"
        ) from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {str(file)!r} does not fit the model its metadata describes "
            f"({config.model.architecture}, widths {info.input_dims}): missing {missing[:8]}, "
            f"unexpected {unexpected[:8]}"
        )
    for key, value in weights.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"checkpoint {str(file)!r}, tensor {key!r}: shape {tuple(value.shape)} where the model its "
                f"metadata describes has {tuple(expected[key].shape)}"
            )
    model.load_state_dict(weights)
    model.to(device)
    return LoadedCheckpoint(model, config, info, preprocess, metadata)


def _metadata_objects(file: Path, metadata: dict[str, str]) -> tuple[RunConfig, ModelInfo]:
    """The ``config`` and ``model_info`` of a checkpoint's metadata, or an error naming the key."""
    parsed: dict[str, dict[str, Any]] = {}
    for key in ("config", "model_info"):
        if key not in metadata:
            raise CheckpointError(f"checkpoint {str(file)!r}: metadata key {key!r} is missing")
        try:
            value = json.loads(metadata[key])
        except ValueError as err:
            raise CheckpointError(f"checkpoint {str(file)!r}: metadata key {key!r} is not JSON ({err})") from None
        if not isinstance(value, dict):
            raise CheckpointError(
                f"checkpoint {str(file)!r}: metadata key {key!r} holds a JSON {type(value).__name__}, "
                "expected an object"
            )
        parsed[key] = value
    try:
        config = config_from_dict(RunConfig, parsed["config"])
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {str(file)!r}: metadata key 'config' is invalid: {err}") from None
    try:
        info = ModelInfo.from_dict(parsed["model_info"])
        _check_info(info)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise CheckpointError(
            f"checkpoint {str(file)!r}: metadata key 'model_info' is invalid: {type(err).__name__}: {err}"
        ) from None
    return config, info


def _check_info(info: ModelInfo) -> None:
    if info.task not in ("regression", "classification"):
        raise ValueError(f"task {info.task!r}")
    if not info.modalities or not set(info.modalities) == set(info.input_dims) == set(info.seq_lens):
        raise ValueError(f"modalities {info.modalities} do not match input_dims/seq_lens")
    for m in info.modalities:
        if info.input_dims[m] < 1 or info.seq_lens[m] < 1:
            raise ValueError(f"modality {m!r} has width {info.input_dims[m]} and length {info.seq_lens[m]}")
    if info.num_outputs < 1:
        raise ValueError(f"num_outputs {info.num_outputs}")


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
