"""Settings by dotted key: the keys a config has, how a user's key is resolved to one, and how
``key=value`` overrides (``--set``, a config file's values, a preset's changes) are applied.

A key is a dotted path (``train.lr``), a unique suffix (``lr``, ``fusion.num_layers``) or an entry
of a per-modality mapping (``model.conv_kernel.audio``). Every override goes through
:func:`apply_overrides`, which re-validates the whole :class:`~decalign.config.schema.RunConfig`,
so a setting is checked the same way whichever way it arrives.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin, get_type_hints

from decalign.config.schema import RunConfig, config_from_dict, config_to_dict
from decalign.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Override", "apply_overrides", "flat_keys", "is_per_modality_key", "section_overrides",
           "unknown_key_error"]


def _unwrap(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _dataclass_of(tp: Any) -> type[DataclassInstance] | None:
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


def flat_keys(cls: type[DataclassInstance] = RunConfig, prefix: str = "") -> list[str]:
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


def unknown_key_error(key: str, valid: list[str], where: str = "") -> ConfigError:
    """The error for a key that names no setting: the nearest valid keys where some are close
    (a typo), else every valid key; ``where`` names the source (a config file)."""
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
    raise unknown_key_error(key, valid)


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
        items = [(str(key), value) for key, value in overrides.items()]
    else:
        items = [_split_override(item) for item in overrides]
    valid = flat_keys(RunConfig)
    data = config_to_dict(config)
    for key, value in items:
        full, sub = _resolve_key(key, valid)
        *path, leaf = full.split(".")
        node = data
        for p in path:
            node = node[p]
        if _is_mapping(_field_type(full)):
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


def _field_type(full: str) -> Any:
    """The annotation of the field a full dotted key (one of :func:`flat_keys`) names."""
    *path, leaf = full.split(".")
    cls: Any = RunConfig
    for p in path:
        cls = _dataclass_of(get_type_hints(cls, include_extras=True)[p])
    return get_type_hints(cls, include_extras=True)[leaf]


def is_per_modality_key(full: str) -> bool:
    """Whether the full dotted key ``full`` is a per-modality mapping (``model.conv_kernel``), whose
    entries (``model.conv_kernel.audio``) are settable keys too."""
    return _is_mapping(_field_type(full))
