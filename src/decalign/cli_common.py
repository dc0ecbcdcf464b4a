"""What every command of the command line shares: the flags ``--data``/``--dataset``, ``--set``,
``--seeds``/``--epochs``/``--device``, ``-q``/``-v``, and how they resolve into a dataset and a
:class:`~decalign.config.RunConfig`.

A command in its own module (``decalign bench``, ``decalign sweep``, ...) declares its flags with
these helpers and resolves them with :func:`load_and_resolve`, exactly as ``decalign train`` does;
it is registered with one entry in :data:`decalign.cli.EXTRA_COMMANDS`. Every ``choices`` comes
from a registry (:data:`decalign.data.detect.DATASET_KINDS`, :data:`~decalign.data.detect.SPLITS`,
:data:`decalign.train.devices.DEVICES`).

Standard library only at import (``decalign --help`` answers in about a second).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from decalign.data.detect import SPLITS, file_kind_choices, kind_choices
from decalign.train.devices import DEVICES

__all__ = [
    "add_data_flags",
    "add_device_flag",
    "add_file_kind_flag",
    "add_run_flags",
    "add_set_flag",
    "add_split_flag",
    "add_verbosity_flags",
    "config_file_overrides",
    "data_config",
    "load_and_resolve",
    "run_overrides",
]


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


def add_run_flags(
    p: argparse.ArgumentParser,
    *,
    seeds_help: str = "seeds (default: the preset's)",
    epochs_help: str = "maximum epochs (train.num_epochs)",
) -> None:
    """The shortcuts ``--seeds``, ``--epochs`` and ``--device`` (see :func:`run_overrides`)."""
    p.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help=seeds_help)
    p.add_argument("--epochs", type=int, metavar="N", help=epochs_help)
    add_device_flag(p)


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


def data_config(args: argparse.Namespace, overrides: Sequence[str]) -> Any:
    """Data settings for loading: --dataset/--data plus every override of a ``data`` setting, in
    any form the config accepts (``data.split_seed``, ``split_seed``, ``synthetic.n_train``)."""
    from decalign.config import DataConfig, RunConfig, apply_overrides, section_overrides

    kind = args.dataset or ("auto" if args.data else "synthetic")
    base = RunConfig(data=DataConfig(dataset=kind, path=args.data))
    return apply_overrides(base, section_overrides(overrides, "data")).data


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


def load_and_resolve(args: argparse.Namespace, overrides: Sequence[str]) -> tuple[Any, Any]:
    """The dataset named by --data/--dataset and its preset (or --preset) with ``overrides``,
    the way ``train``, ``bench`` and ``sweep`` all resolve them."""
    from decalign.api import resolve_config
    from decalign.data import load_dataset

    data_cfg = data_config(args, overrides)
    dataset = load_dataset(data_cfg.path, data_cfg)
    return dataset, resolve_config(dataset, args.preset, overrides, path=args.data)
