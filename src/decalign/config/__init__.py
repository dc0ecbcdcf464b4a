"""Configuration: the one source of truth for hyper-parameters, and where they come from.

- :mod:`~decalign.config.schema`: the frozen, validated dataclasses (:class:`RunConfig` and its parts);
- :mod:`~decalign.config.overrides`: settings by dotted key, ``--set key=value`` and their application;
- :mod:`~decalign.config.files`: YAML/JSON config files, read within bounds and written back;
- :mod:`~decalign.config.presets`: the per-benchmark presets, each as its changes from the defaults;
- :mod:`~decalign.config.ablations`: the paper's ablations as switches;
- :mod:`~decalign.config.describe`: what each setting is (``decalign presets --keys``);
- ``spaces/``: the search space of ``decalign sweep`` for each preset (package data).

The names below are those of the schema, overrides and files, so ``from decalign.config import
RunConfig, apply_overrides`` is all most code needs; presets, ablations and the settings'
descriptions are imported from their modules.
"""

from __future__ import annotations

from decalign.config.files import CONFIG_FILE_LIMITS, ConfigFileLimits, read_config_file, write_config_file
from decalign.config.overrides import Override, apply_overrides, flat_keys, section_overrides
from decalign.config.schema import (
    DataConfig,
    FusionConfig,
    HeterogeneityConfig,
    HomogeneityConfig,
    ModelConfig,
    ObjectiveConfig,
    RunConfig,
    SyntheticConfig,
    TextEncoderConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
)
from decalign.errors import ConfigError

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
    "Override",
    "RunConfig",
    "SyntheticConfig",
    "TextEncoderConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "flat_keys",
    "read_config_file",
    "section_overrides",
    "write_config_file",
]
