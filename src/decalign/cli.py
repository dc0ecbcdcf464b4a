"""The ``decalign`` command line (``decalign --help``; also ``python -m decalign``).

argparse from the standard library: no dependency, and ``--help`` answers without importing
torch. Each command imports what it needs when it runs. Errors a user can fix (bad data, bad
settings, a corrupt checkpoint) are printed as one message without a traceback (``--verbose``
shows it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from decalign.cli_common import (  # noqa: F401 - config_file_overrides, data_config, ...: their former home
    add_data_flags,
    add_device_flag,
    add_file_kind_flag,
    add_run_flags,
    add_set_flag,
    add_split_flag,
    add_verbosity_flags,
    config_file_overrides,
    data_config,
    load_and_resolve,
    run_overrides,
)

__all__ = ["COMMANDS", "EXTRA_COMMANDS", "build_parser", "main"]

log = logging.getLogger("decalign")

EXTRA_COMMANDS: dict[str, str] = {
    "bench": "decalign.bench",
    "sweep": "decalign.sweep",
    "extract": "decalign.extract.command",
    "export": "decalign.export",
    "probe": "decalign.probe",
    "datasets": "decalign.datasets",
    "serve": "decalign.serve.command",
    "report": "decalign.runs.command",
}
"""Commands implemented in their own modules: a new command is its module plus one entry here.
The module exposes ``add_parser(subparsers)`` and ``run(args) -> int``, declares its flags with
the helpers of :mod:`decalign.cli_common`, and imports nothing heavy at module level."""


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if not verbose else "%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("decalign")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

    def _show(
        message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        root.warning("warning: %s", message)

    warnings.showwarning = _show  # type: ignore[assignment]


def _add_drop_args(p: argparse.ArgumentParser, each: bool) -> None:
    """Missing modalities at test time (``eval``, ``predict``)."""
    g = p.add_mutually_exclusive_group() if each else p
    g.add_argument("--drop", nargs="+", default=[], metavar="MODALITY",
                   help="leave these modalities out, as missing at test time (the model's ablation rule)")
    if each:
        g.add_argument("--drop-each", action="store_true",
                       help="the robustness table: all modalities, then each one left out (also written to "
                       "DIR/drop_each_<split>.md/.json for --run)")


def build_parser() -> argparse.ArgumentParser:
    from decalign import __version__

    parser = argparse.ArgumentParser(
        prog="decalign",
        description="DecAlign (ICLR 2026): train, evaluate and compare decoupled multimodal models.",
    )
    parser.add_argument("--version", action="version", version=f"decalign {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="train over seeds and print the test table (default: built-in dataset)",
                       description="Train DecAlign with the preset of the data's benchmark over one or more seeds. "
                       "Writes config.json, results.json, history.csv, one checkpoint per seed and TensorBoard "
                       "events into --out.")
    add_data_flags(p)
    p.add_argument("--preset", help="hyper-parameter preset (default: the dataset's own; see `decalign presets`)")
    _add_config_file_args(p)
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
    _add_std_arg(p)
    add_verbosity_flags(p)

    p = sub.add_parser("eval", help="metrics of a saved model on a data file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", metavar="DIR", help="a run directory: every seed's checkpoint, then mean ± std")
    src.add_argument("--checkpoint", metavar="FILE", help="a model.safetensors file")
    p.add_argument("--data", metavar="PATH", help="data file (default: the built-in dataset, for models trained on it)")
    add_split_flag(p)
    p.add_argument("--json", metavar="FILE", help="also write the metrics to FILE")
    p.add_argument("--figure", metavar="PNG", help="also draw the confusion matrix (classification) or predictions "
                   "against labels with the residuals (regression); needs the plots extra")
    add_device_flag(p, default="auto", help="device to evaluate on")
    _add_drop_args(p, each=True)
    _add_std_arg(p)
    p.add_argument("--format", choices=["text", "markdown", "latex", "mmsa"], default="text",
                   help="table format: text, markdown, latex (booktabs tabular), or mmsa (MMSA's result CSV: "
                   "its metric names, (mean, std) cells x 100, population std unless --std says otherwise)")
    p.add_argument("--names", choices=["ours", "mmsa"], default="ours",
                   help="column names: ours (acc2_non0) or MMSA's (Non0_acc_2)")
    add_verbosity_flags(p)

    p = sub.add_parser("predict", help="write one prediction per sample id to a CSV file (labels optional)")
    p.add_argument("--checkpoint", metavar="FILE", required=True)
    p.add_argument("--data", metavar="PATH", help="data file, labelled or not, any splits, or a flat file of "
                   "named arrays (default: the built-in dataset)")
    p.add_argument("--out", metavar="CSV", help="predictions file (required unless --media)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--split", nargs="+", default=None, metavar="SPLIT",
                   help="splits to predict (default: test of a full dataset, every set of other files)")
    add_device_flag(p, default="auto", help="device to predict on")
    _add_drop_args(p, each=False)
    _add_media_args(p)
    add_verbosity_flags(p)

    p = sub.add_parser("info", help="what a data file holds: kind, splits, shapes, label ranges, problems",
                       description="Describe a data file as decalign reads it: the detected benchmark and layout, "
                       "every split's sample count, feature shapes, sequence lengths and labels, what the reader "
                       "fixed, and the file's fingerprint (compare it with a colleague's copy or the release's; "
                       "`decalign datasets` lists the releases). Without PATH: the built-in dataset.")
    p.add_argument("path", metavar="PATH", nargs="?",
                   help="a benchmark pickle, a native .npz/.safetensors file or directory, or a file of samples to "
                   "predict on (default: the built-in dataset, as `decalign train` uses)")
    add_file_kind_flag(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_verbosity_flags(p)

    p = sub.add_parser("convert", help="convert a benchmark pickle into decalign's pickle-free format")
    p.add_argument("input", metavar="IN")
    p.add_argument("output", metavar="OUT", help="output directory (or .npz file)")
    p.add_argument("--format", choices=["npz", "safetensors"], default="npz")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.add_argument("--add-misleading", nargs="?", const="vision", metavar="NAME",
                   help="add a modality NAME (default vision) that tracks the labels on train and says nothing "
                   "elsewhere, to test the modality check (regression data; docs/data.md)")
    p.add_argument("--misleading-dim", type=int, default=16, metavar="D", help="its width (default 16)")
    p.add_argument("--misleading-noise", type=float, default=0.5, help="its noise std (default 0.5)")
    p.add_argument("--misleading-seed", type=int, default=0, help="its random seed (default 0)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--folds", type=int, metavar="K", help="instead: write OUT/fold_1 .. fold_K, the K "
                       "cross-validation datasets by video of IN's train + valid clips (test fold k, valid fold "
                       "k+1, train the rest; IN's test split left out), as `decalign train --cv K` trains them")
    split.add_argument("--valid-halves", action="store_true", help="instead: write OUT/half_a and half_b, IN's "
                       "valid split cut by video in two, each half the valid split of one file and the test split "
                       "of the other (train kept; IN's test split left out)")
    add_file_kind_flag(p)
    add_verbosity_flags(p)

    p = sub.add_parser("presets", help="list presets, or show one preset's settings")
    p.add_argument("name", nargs="?", help="a preset to show as JSON")
    p.add_argument("--keys", action="store_true", help="list every key --set accepts: type, default, range, meaning")
    add_verbosity_flags(p)

    for module in EXTRA_COMMANDS.values():
        try:
            importlib.import_module(module).add_parser(sub)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
    return parser


def _add_std_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--std", choices=["sample", "population"], default=None,
                   help="the ± of tables over seeds: sample std (ddof=1, the default) or population std "
                   "(ddof=0, what MMSA and the authors' code report); table headers say which")


def _add_config_file_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="settings from a YAML or JSON file (a run's config.json, or "
                   "only the keys to change), on top of the preset; --set and the flags apply on top of it")
    p.add_argument("--dump-config", metavar="FILE", help="write the resolved settings to FILE (.yaml/.yml: YAML, "
                   "else JSON) and exit without training")


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from decalign.api import load_data, train
    from decalign.config import apply_overrides
    from decalign.train.rundir import RunDir

    overrides = config_file_overrides(args) + run_overrides(args)
    if args.resume and args.out and RunDir(args.out).config_file.exists():
        saved = RunDir(args.out).read_config()
        config = apply_overrides(saved, overrides) if overrides else saved
        data_cfg = dataclasses.replace(config.data, path=args.data) if args.data else config.data
        dataset = load_data(data_cfg.path, data_cfg)
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
    try:
        result = train(config, dataset, out, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet,
                       ctx=ctx, std=args.std or "sample",
                       tensorboard=not args.no_tensorboard, in_place=True, progress=None)
        if ctx.is_main:
            if args.plots:
                from decalign.plots import plots_unavailable
                from decalign.plots.run import plot_run

                note = plots_unavailable()
                if note:
                    log.warning("%s", note)
                else:
                    figures = plot_run(out)
                    print(f"figures: {RunDir(out).plots_dir} ({', '.join(f.name for f in figures) or 'none'})")
            if args.quiet:
                print(result.table(std=args.std or "sample"))
                if result.modality_check:
                    print(result.modality_check)
            print(f"results: {RunDir(out).results_file}")
    finally:
        ctx.close()
    return 0


def _cross_validate(args: argparse.Namespace, config: Any, dataset: Any) -> int:
    """``decalign train --cv K``: :func:`decalign.api.cross_validate`, then its table."""
    from decalign.api import cross_validate
    from decalign.errors import UsageError

    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise UsageError("--cv trains its folds one after another in one process; run it without torchrun")
    out = Path(args.out or os.path.join("runs", f"{config.preset}_cv"))
    result = cross_validate(config, dataset, out, args.cv, resume=args.resume, overwrite=args.overwrite,
                            quiet=args.quiet, tensorboard=not args.no_tensorboard, progress=None,
                            std=args.std or "sample")
    if args.plots:
        from decalign.plots import plots_unavailable
        from decalign.plots.run import plot_run

        note = plots_unavailable()
        if note:
            log.warning("%s", note)
        else:
            from decalign.train.rundir import RunDir

            for fold in result.folds:
                plot_run(fold)
            print(f"figures: {', '.join(RunDir(f).plots_dir for f in result.folds)}")
    if args.quiet:
        print(result.table())
    from decalign.train.rundir import CVDir

    print(f"cross-validation: {CVDir(out).summary_file}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from decalign.evaluation import drop_each_report, evaluate_report

    if args.drop_each:
        print(drop_each_report(args.run, args.checkpoint, args.data, args.split, args.device, args.json))
        return 0
    std_kind = args.std or ("population" if args.format == "mmsa" else "sample")
    print(evaluate_report(args.run, args.checkpoint, args.data, args.split, args.device, args.drop, args.json,
                          args.figure, std=std_kind, style=args.format, names=args.names))
    return 0


def _add_media_args(p: argparse.ArgumentParser) -> None:
    """``predict --media``: one new clip through the checkpoint's own extractors (docs/extract.md)."""
    p.add_argument("--media", metavar="FILE", help="a video or audio file to predict (runs the extractors the "
                   "checkpoint's training data was made with)")
    p.add_argument("--transcript", metavar="TEXT", help="what is said in --media")
    p.add_argument("--start", type=float, metavar="SEC", help="clip start in --media (seconds)")
    p.add_argument("--end", type=float, metavar="SEC", help="clip end in --media (seconds)")
    p.add_argument("--json", action="store_true", help="with --media: print the prediction as JSON")
    p.add_argument("--text", metavar="MODEL_DIR", help="with --media: the local text encoder the model was trained "
                   "with (default: the folder its record names, if it holds the recorded files)")
    p.add_argument("--vision-model", metavar="DIR", help="with --media: the local image model (as --text)")
    p.add_argument("--openface-dir", metavar="DIR", help="with --media: OpenFace CSVs (<media name>.csv)")
    p.add_argument("--max-clip-seconds", type=float, default=600.0, metavar="SEC",
                   help="with --media: longest clip decoded (default 600)")


def cmd_predict(args: argparse.Namespace) -> int:
    from decalign.api import predict_checkpoint
    from decalign.errors import UsageError

    if args.media:
        from decalign.extract.predict import predict_media

        if args.transcript is None:
            raise UsageError("--media needs --transcript TEXT (what is said in the clip)")
        from decalign.extract.media import MediaLimits

        result = predict_media(args.checkpoint, args.media, args.transcript, start=args.start, end=args.end,
                               device=args.device, text_model=args.text, vision_model=args.vision_model,
                               openface_dir=args.openface_dir, limits=MediaLimits(max_seconds=args.max_clip_seconds))
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            from decalign.extract.predict import format_prediction

            print(format_prediction(result))
        return 0
    if args.out is None:
        raise UsageError("predict needs --out CSV (or --media FILE --transcript TEXT for one new clip)")
    path = predict_checkpoint(args.checkpoint, args.data, args.out, splits=args.split, device=args.device,
                              drop=args.drop, overwrite=args.overwrite)
    print(f"predictions: {path}")
    return 0


def _format_info(info: dict[str, Any]) -> str:
    """``decalign info`` as text: header, one row per split, then the notes."""
    mods = info.get("modalities", {})
    task = info.get("task", "?")
    if task == "classification":
        names = f" ({', '.join(info['class_names'])})" if info.get("class_names") else ""
        task += f", {info.get('num_classes')} classes" + names
    elif info.get("label_range"):
        lo, hi = info["label_range"]
        task += f", labels in [{lo:g}, {hi:g}]"
    lines = [
        f"file:       {info.get('source')}",
        f"kind:       {info.get('kind')}    layout: {info.get('layout')}    task: {task}",
        "modalities: " + ", ".join(f"{m} {v['dim']}-d x {v['seq_len']} steps" for m, v in mods.items())
        + ("" if info.get("aligned", True) else "  (unaligned)"),
        "",
    ]
    header = ["split", "n", *[f"{m} lengths" for m in mods], "labels"]
    rows = [header]
    for name, sp in info.get("splits", {}).items():
        cells = [name, str(sp["n"])]
        for m in mods:
            lengths = sp["modalities"].get(m, {}).get("lengths")
            cells.append(f"{lengths[0]}-{lengths[1]}" if lengths else "-")
        lab = sp.get("labels", {})
        if "class_counts" in lab:
            cells.append(" ".join(f"{k} {v}" for k, v in lab["class_counts"].items()))
        elif lab:
            cells.append(f"{lab['min']:.2f} .. {lab['max']:.2f} (mean {lab['mean']:.2f}, {lab.get('zeros', 0)} zero)")
        else:
            cells.append("-")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    if info.get("extraction"):
        lines += ["", "extracted with:", *[f"  {m}: {what}" for m, what in info["extraction"].items()]]
    notes = info.get("notes") or []
    lines += ["", "notes:" if notes else "notes: none", *[f"  - {n}" for n in notes]]
    fp = info.get("fingerprint") or {}
    if fp.get("content"):
        lines += ["", f"content fingerprint: {fp['content']}  (the digest a run on this data stores in dataset.json)"]
    if fp.get("sha256"):
        lines += ([] if fp.get("content") else [""]) + [f"file sha256:         {fp['sha256']}"]
    if fp:
        lines.append("compare with a colleague's copy or the release's (`decalign datasets` lists the releases)")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    from decalign.config import DataConfig
    from decalign.data import DataError, describe_dataset, load_dataset
    from decalign.data.checks import InvalidValuesError
    from decalign.datasets import file_sha256, fingerprint

    builtin = args.path is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # problems are listed in the description's notes
        try:
            dataset = load_dataset(args.path, DataConfig(dataset="synthetic" if builtin else args.dataset,
                                                         path=args.path))
            info = describe_dataset(dataset)
            info["fingerprint"] = fingerprint(dataset, args.path)
            if builtin:
                info["source"] = "the built-in dataset (generated; `decalign train` without --data trains on it)"
        except InvalidValuesError:  # the layout was understood; its values are what is wrong
            raise
        except DataError as err:  # not a full labelled dataset: samples to predict on, if anything
            from decalign.data.samples import describe_samples, read_samples

            try:
                samples = read_samples(args.path)
            except DataError:
                raise err from None
            if samples.is_full_dataset:  # a training dataset with a problem: that is the news
                raise err from None
            info = describe_samples(samples)
            info["fingerprint"] = {"content": None, "sha256": file_sha256(args.path)}
    print(json.dumps(info, indent=2, default=str) if args.json else _format_info(info))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from decalign.data import convert

    misleading = None
    if args.add_misleading is not None:
        from decalign.data.misleading import MisleadingModality
        from decalign.errors import UsageError

        try:
            misleading = MisleadingModality(args.add_misleading, args.misleading_dim, args.misleading_noise,
                                            args.misleading_seed)
        except ValueError as err:
            raise UsageError(str(err)) from None
    kind = None if args.dataset == "auto" else args.dataset
    if args.folds is not None or args.valid_halves:
        from decalign.data.folds import write_split_files

        files = write_split_files(args.input, args.output, folds=args.folds, halves=args.valid_halves,
                                  fmt=args.format, kind=kind, overwrite=args.overwrite, misleading=misleading)
        print("written: " + ", ".join(str(f) for f in files))
        return 0
    out = convert(args.input, args.output, args.format, kind=kind, overwrite=args.overwrite, misleading=misleading)
    print(f"written: {out}")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from decalign.config import config_to_dict
    from decalign.presets import PRESET_DESCRIPTIONS, get_preset, preset_names

    if args.keys:
        from decalign.settings_help import keys_table

        print(keys_table())
    elif args.name:
        print(json.dumps(config_to_dict(get_preset(args.name)), indent=2))
    else:
        width = max(len(n) for n in preset_names())
        print("\n".join(f"{n.ljust(width)}  {PRESET_DESCRIPTIONS.get(n, '')}".rstrip() for n in preset_names()))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int] | str] = {
    "train": cmd_train,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "info": cmd_info,
    "convert": cmd_convert,
    "presets": cmd_presets,
    **EXTRA_COMMANDS,
}
"""Every command: its handler here, or the module (:data:`EXTRA_COMMANDS`) whose ``run`` it is."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. The CLI configures the ``decalign`` logger and the warning display for
    itself; both are restored on return, so calling ``main`` from Python (a notebook, a test) leaves
    no handler bound to a stream that may be closed by then."""
    logger = logging.getLogger("decalign")
    saved = (logger.handlers[:], logger.level, logger.propagate, warnings.showwarning)
    try:
        return _main(argv)
    finally:
        logger.handlers[:], logger.level, logger.propagate, warnings.showwarning = saved


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet, verbose = getattr(args, "quiet", False), getattr(args, "verbose", False)
    _setup_logging(quiet, verbose)
    entry = COMMANDS[args.command]
    handler = importlib.import_module(entry).run if isinstance(entry, str) else entry
    try:
        code = int(handler(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except BrokenPipeError:  # `decalign presets --keys | head`: the reader had enough; not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush goes nowhere
        return 0
    except KeyboardInterrupt:
        how = {"train": " (the completed epochs are saved: run the same command with --resume to continue)",
               "bench": " (completed runs and epochs are saved: run the same command again to continue)"}
        print(f"decalign: interrupted{how.get(args.command, '')}", file=sys.stderr)
        return 130
    except Exception as err:
        user_err = _as_user_error(err)
        if verbose or user_err is None:
            raise
        print(f"decalign: error: {_one_line(str(user_err))}", file=sys.stderr)
        return user_err.exit_code


def _one_line(message: str) -> str:
    """A message as one line: a multi-line one (every problem of a state dict) joined by ``; ``."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip())


def _as_user_error(err: Exception) -> Any:
    """The :class:`~decalign.errors.DecalignError` for an error a user caused, or ``None`` for our
    bugs (which keep their traceback).

    Operating-system refusals of a file the user named (permission, missing directory, name too
    long, full disk) become a :class:`~decalign.errors.FileAccessError`; ``ValueError``/``KeyError``
    from older code paths are still shown as one line (exit 2).
    """
    import errno

    from decalign.errors import DecalignError, UsageError, file_error

    if isinstance(err, DecalignError):
        return err
    user_errnos = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG,
                   errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.EEXIST}
    if isinstance(err, OSError) and err.errno in user_errnos:
        return file_error(err, action="access")
    if isinstance(err, (FileNotFoundError, FileExistsError)):
        return UsageError(str(err))
    if isinstance(err, KeyError):
        return UsageError(str(err.args[0]) if err.args else "missing key")
    if isinstance(err, ValueError):
        return UsageError(str(err))
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
