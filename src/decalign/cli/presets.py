"""``decalign presets``: the presets with a line each, one preset's settings as JSON, or every
key ``--set`` accepts (:func:`decalign.config.describe.keys_table`)."""

from __future__ import annotations

import argparse
import json

from decalign.cli.common import Subparsers, add_verbosity_flags

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help)
    p.add_argument("name", nargs="?", help="a preset to show as JSON")
    p.add_argument("--keys", action="store_true", help="list every key --set accepts: type, default, range, meaning")
    add_verbosity_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.config import config_to_dict
    from decalign.config.presets import PRESET_DESCRIPTIONS, get_preset, preset_names

    if args.keys:
        from decalign.config.describe import keys_table

        print(keys_table())
    elif args.name == "custom":  # it depends on the data's task: regression shown, classification's changes said
        import sys

        from decalign.config.presets import CUSTOM_CLASSIFICATION, custom_preset

        print(json.dumps(config_to_dict(custom_preset("regression")), indent=2))
        changes = " ".join(f"{key}={value}" for key, value in CUSTOM_CLASSIFICATION.items())
        print(f"custom: the settings for regression data; for classification data also {changes}", file=sys.stderr)
    elif args.name:
        import sys

        from decalign.config.presets import finetune_changes

        print(json.dumps(config_to_dict(get_preset(args.name)), indent=2))
        schedule = {k: v for k, v in finetune_changes(args.name, "DIR").items() if not k.startswith("model.")}
        if schedule:  # on stderr, so stdout stays the preset's JSON
            changes = " ".join(f"{key}={json.dumps(value)}" for key, value in schedule.items())
            print(f"{args.name}: with --encoder DIR also {changes}", file=sys.stderr)
    else:
        width = max(len(n) for n in preset_names())
        print("\n".join(f"{n.ljust(width)}  {PRESET_DESCRIPTIONS.get(n, '')}".rstrip() for n in preset_names()))
    return 0
