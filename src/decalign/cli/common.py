"""What the commands share: the flags ``--data``/``--dataset``, ``--set``,
``--seeds``/``--epochs``/``--device``, ``--split``, ``--std``, ``--drop``, ``-q``/``-v``, and how
they resolve into a dataset and a :class:`~decalign.config.RunConfig`.

A command declares its flags with these helpers and turns them into typed values with
:func:`load_and_resolve` and :func:`run_overrides`, exactly as ``decalign train`` does. Every
``choices`` comes from a registry (:data:`decalign.data.detect.DATASET_KINDS`,
:data:`~decalign.data.detect.SPLITS`, :data:`decalign.train.devices.DEVICES`).

Standard library only at import (``decalign --help`` answers in about a second).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from decalign.data.detect import SPLITS, file_kind_choices, kind_choices
from decalign.train.devices import DEVICES

if TYPE_CHECKING:
    from decalign.config import DataConfig, Override, RunConfig
    from decalign.data import MultimodalDataset

__all__ = [
    "Subparsers",
    "add_data_flags",
    "add_device_flag",
    "add_drop_flags",
    "add_file_kind_flag",
    "add_run_flags",
    "add_set_flag",
    "add_split_flag",
    "add_std_flag",
    "add_verbosity_flags",
    "config_file_overrides",
    "data_config",
    "load_and_resolve",
    "run_overrides",
]

class Subparsers(Protocol):
    """What a command's ``add_parser`` needs of ``ArgumentParser.add_subparsers()``'s result
    (argparse's private ``_SubParsersAction``): adding the command's parser. A protocol, so that
    ``report``'s page directives can build the report parser without a command table."""

    def add_parser(self, name: str, *, help: str | None = ..., description: str | None = ...,
                   formatter_class: type[argparse.HelpFormatter] = ...) -> argparse.ArgumentParser: ...


def add_verbosity_flags(p: argparse.ArgumentParser, quiet_help: str = "only warnings and errors") -> None:
    """``-q/--quiet`` and ``-v/--verbose`` (mutually exclusive)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    g.add_argument("-v", "--verbose", action="store_true", help="debug output and full tracebacks")


def add_data_flags(
    p: argparse.ArgumentParser,
    *,
    required: bool = False,
    data_help: str = "a benchmark pickle (MMSA layout, IEMOCAP) or a native .npz/.safetensors file or directory",
    dataset_help: str = "force the dataset kind (default: detected from the file's shapes; the built-in "
    "synthetic benchmark without --data)",
) -> None:
    """``--data PATH`` and ``--dataset KIND`` (every kind of the registry, or ``auto``)."""
    p.add_argument("--data", metavar="PATH", required=required, help=data_help)
    p.add_argument("--dataset", choices=kind_choices(), default=None, help=dataset_help)


def add_file_kind_flag(p: argparse.ArgumentParser) -> None:
    """``--dataset KIND`` of a command that reads a file (no built-in synthetic data)."""
    p.add_argument("--dataset", choices=file_kind_choices(), default="auto")


def add_set_flag(p: argparse.ArgumentParser, help: str = "override settings, e.g. --set train.lr=1e-4 "
                 "model.fusion.num_layers=3 (`decalign presets --keys` lists them)") -> None:
    """``--set KEY=VALUE ...`` into ``args.overrides``."""
    p.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE", help=help)


def add_device_flag(p: argparse.ArgumentParser, default: str | None = None, help: str = "train.device") -> None:
    p.add_argument("--device", choices=DEVICES, default=default, help=help)


def add_split_flag(p: argparse.ArgumentParser, *, many: bool = False) -> None:
    """``--split`` (one split, default ``test``; with ``many`` one or more)."""
    if many:
        p.add_argument("--split", nargs="+", default=["test"], choices=SPLITS)
    else:
        p.add_argument("--split", default="test", choices=SPLITS)


def add_std_flag(p: argparse.ArgumentParser) -> None:
    """``--std sample|population``: the ± of tables over seeds (``None`` when not given, so a
    command can pick its own default, as ``eval --format mmsa`` does)."""
    p.add_argument("--std", choices=["sample", "population"], default=None,
                   help="the ± of tables over seeds: sample std (ddof=1, the default) or population std "
                   "(ddof=0, what MMSA and the authors' code report); table headers say which")


def add_drop_flags(p: argparse.ArgumentParser, each: bool) -> None:
    """``--drop M ...``: modalities missing at test time (``eval``, ``predict``); with ``each``
    also ``--drop-each``, the robustness table (the two exclude each other)."""
    g = p.add_mutually_exclusive_group() if each else p
    g.add_argument("--drop", nargs="+", default=[], metavar="MODALITY",
                   help="leave these modalities out, as missing at test time (the model's ablation rule)")
    if each:
        g.add_argument("--drop-each", action="store_true",
                       help="the robustness table: all modalities, then each one left out (also written to "
                       "DIR/drop_each_<split>.md/.json for --run)")


def add_run_flags(
    p: argparse.ArgumentParser,
    *,
    seeds_help: str = "seeds (default: the preset's)",
    epochs_help: str = "maximum epochs (train.num_epochs)",
) -> None:
    """The shortcuts ``--seeds``, ``--epochs``, ``--device`` (see :func:`run_overrides`) and
    ``--encoder`` (see :func:`decalign.api.resolve_config`)."""
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help=seeds_help)
    p.add_argument("--epochs", type=int, metavar="N", help=epochs_help)
    add_device_flag(p)
    p.add_argument("--encoder", metavar="DIR",
                   help="fine-tune the text encoder in this local HuggingFace folder (model.text_encoder.kind=bert "
                   "and .path=DIR, plus the preset's fine-tuning schedule, e.g. its warm-up; --set still wins); "
                   "the data needs token ids (text_bert)")


def config_file_overrides(args: argparse.Namespace) -> list[Any]:
    """The settings of ``--config FILE`` as ``(key, value)`` overrides (to go before ``--set``),
    the values as the file's parser built them (never written back as text and parsed again).

    The file's ``data.path``/``data.dataset``/``preset`` become the defaults of ``--data``,
    ``--dataset`` and ``--preset`` (set on ``args``) so that the command line still wins."""
    from decalign.config import read_config_file

    if not getattr(args, "config", None):
        return []
    flat = read_config_file(args.config)
    path, kind, preset = flat.pop("data.path", None), flat.pop("data.dataset", None), flat.pop("preset", None)
    if args.data is None and path is not None:
        args.data = path
    if args.dataset is None and kind not in (None, "auto"):
        args.dataset = kind
    if getattr(args, "preset", None) is None and preset is not None:
        args.preset = preset
    return list(flat.items())


def run_overrides(args: argparse.Namespace) -> list[Any]:
    """``--set`` plus the shortcut flags ``--seeds``, ``--epochs`` and ``--device`` as overrides."""
    overrides: list[Any] = list(args.overrides)
    if getattr(args, "seeds", None) is not None:
        overrides.append(("train.seeds", list(args.seeds)))
    if getattr(args, "epochs", None) is not None:  # --epochs 0 is refused by the config, not ignored
        overrides.append(f"train.num_epochs={args.epochs}")
    if getattr(args, "device", None):
        overrides.append(f"train.device={args.device}")
    return overrides


def data_config(args: argparse.Namespace, overrides: Sequence[Override]) -> DataConfig:
    """:func:`decalign.api.data_config` of ``--data``/``--dataset`` and ``overrides``."""
    from decalign.api import data_config as resolve_data

    return resolve_data(args.data, args.dataset, overrides)


def load_and_resolve(args: argparse.Namespace, overrides: Sequence[Override]) -> tuple[MultimodalDataset, RunConfig]:
    """:func:`decalign.api.load_and_resolve` of ``--data``/``--dataset``/``--preset`` and
    ``overrides``, the way ``train``, ``bench`` and ``sweep`` all resolve them."""
    from decalign.api import load_and_resolve as resolve

    return resolve(args.data, args.dataset, args.preset, overrides, encoder=getattr(args, "encoder", None))
