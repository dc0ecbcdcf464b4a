"""Config files: reading a YAML or JSON file of settings within declared bounds, and writing a
config back as a file that reproduces it.

A ``--config`` file is user input, so it is bounded (:class:`ConfigFileLimits`: size, nesting,
elements with YAML aliases counted at their expanded size) before any value is built; its
settings become ``(key, value)`` overrides applied by :func:`decalign.config.overrides.apply_overrides`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from decalign.config.overrides import flat_keys, is_per_modality_key, unknown_key_error
from decalign.config.schema import RunConfig, config_to_dict
from decalign.errors import ConfigError

__all__ = ["CONFIG_FILE_LIMITS", "ConfigFileLimits", "read_config_file", "write_config_file"]



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
                if head in valid and is_per_modality_key(head):  # model.conv_kernel.audio: 3
                    flat[key] = v
                else:
                    raise unknown_key_error(key, [*valid, *sorted(sections)], f" in {str(file)!r}")

    walk(data, "")
    return flat


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
