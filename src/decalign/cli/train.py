"""``decalign train``: the flags of a run resolved into a configuration, then
:func:`decalign.api.train` (one process, or one process of a ``torchrun`` job)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from decalign.cli.common import (
    Subparsers,
    add_data_flags,
    add_run_flags,
    add_set_flag,
    add_std_flag,
    add_verbosity_flags,
    config_file_overrides,
    load_and_resolve,
    run_overrides,
)

if TYPE_CHECKING:
    from decalign.config import RunConfig
    from decalign.data import MultimodalDataset

__all__ = ["add_parser", "run"]

log = logging.getLogger("decalign")


def add_parser(subparsers: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
    p = subparsers.add_parser(name, help=help,
                              description="Train DecAlign with the preset of the data's benchmark over one or more "
                              "seeds. Writes config.json, results.json, history.csv, one checkpoint per seed and "
                              "TensorBoard events into --out.")
    add_data_flags(p)
    p.add_argument("--preset", help="hyper-parameter preset (default: the dataset's own; see `decalign presets`)")
    p.add_argument("--config", metavar="FILE", help="settings from a YAML or JSON file (a run's config.json, or "
                   "only the keys to change), on top of the preset; --set and the flags apply on top of it")
    p.add_argument("--dump-config", metavar="FILE", help="write the resolved settings to FILE (.yaml/.yml: YAML, "
                   "else JSON) and exit without training")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default: runs/<preset>)")
    add_run_flags(p)
    add_set_flag(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last completed epoch")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out (deleting its files)")
    p.add_argument("--plots", action="store_true", help="also write training-curve, embedding and transport plots")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard event files")
    p.add_argument("--cv", type=int, metavar="K", help="cross-validation by video instead: K folds of the train + "
                   "valid clips (test split not read), one run per fold in OUT/fold_<k>, pooled out-of-fold "
                   "metrics in OUT/cv.json and cv.csv (sample ids '<video>$_$<clip>')")
    add_std_flag(p)
    add_verbosity_flags(p)
    return p


def run(args: argparse.Namespace) -> int:
    from decalign.api import train
    from decalign.config import apply_overrides
    from decalign.data import load_dataset
    from decalign.train.rundir import RunDir

    overrides = config_file_overrides(args) + run_overrides(args)
    if args.resume and args.out and RunDir(args.out).config_file.exists():
        saved = RunDir(args.out).read_config()
        if args.encoder:  # the saved schedule stays; a changed encoder is refused by the run's checks
            overrides = [("model.text_encoder.kind", "bert"), ("model.text_encoder.path", args.encoder), *overrides]
        config = apply_overrides(saved, overrides) if overrides else saved
        data_cfg = dataclasses.replace(config.data, path=args.data) if args.data else config.data
        dataset = load_dataset(data_cfg.path, data_cfg)
    else:
        dataset, config = load_and_resolve(args, overrides)
    if args.dump_config:
        from decalign.config import write_config_file
        from decalign.safety.outputs import guarded_output

        with guarded_output(args.dump_config, flag="--dump-config", overwrite=args.overwrite,
                            inputs={"--config": args.config, "--data": args.data}) as dump:
            print(f"config: {write_config_file(config, dump)}")
        return 0
    if args.cv is not None:
        return _cross_validate(args, config, dataset)
    out = Path(args.out or os.path.join("runs", config.preset))
    from decalign.train.distributed_setup import context_from_environment

    ctx = context_from_environment(config.train.device)  # under torchrun: one process of a DDP job
    if not ctx.is_main:
        logging.getLogger("decalign").setLevel(logging.WARNING)  # one copy of the progress log
    finished = False
    try:
        result = train(config, dataset, out, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet,
                       ctx=ctx, std=args.std or "sample",
                       tensorboard=not args.no_tensorboard, in_place=True, progress=None)
        if ctx.is_main:
            drawn = _draw_figures([out]) if args.plots else None
            if drawn:
                plots_dir, figures = drawn[0]
                print(f"figures: {plots_dir} ({', '.join(f.name for f in figures) or 'none'})")
            if args.quiet:
                print(result.table(std=args.std or "sample"))
                if result.modality_check:
                    print(result.modality_check)
            print(f"results: {RunDir(out).results_file}")
        finished = True
    finally:
        ctx.close(finished)
    return 0


def _cross_validate(args: argparse.Namespace, config: RunConfig, dataset: MultimodalDataset) -> int:
    """``decalign train --cv K``: :func:`decalign.api.cross_validate`, then its table."""
    from decalign.api import cross_validate
    from decalign.errors import UsageError
    from decalign.train.rundir import CVDir

    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise UsageError("--cv trains its folds one after another in one process; run it without torchrun")
    out = Path(args.out or os.path.join("runs", f"{config.preset}_cv"))
    result = cross_validate(config, dataset, out, args.cv, resume=args.resume, overwrite=args.overwrite,
                            quiet=args.quiet, tensorboard=not args.no_tensorboard, progress=None,
                            std=args.std or "sample")
    drawn = _draw_figures(result.folds) if args.plots else None
    if drawn:
        print(f"figures: {', '.join(str(plots_dir) for plots_dir, _ in drawn)}")
    if args.quiet:
        print(result.table())
    print(f"cross-validation: {CVDir(out).summary_file}")
    return 0


def _draw_figures(runs: list[Path]) -> list[tuple[Path, list[Path]]] | None:
    """``--plots``: every figure of each finished run directory, as (its plots folder, the
    figures); None, with the reason logged, when the plots extra is missing."""
    from decalign.plots import plots_unavailable
    from decalign.plots.run import plot_run
    from decalign.train.rundir import RunDir

    note = plots_unavailable()
    if note:
        log.warning("%s", note)
        return None
    return [(RunDir(run).plots_dir, plot_run(run)) for run in runs]
