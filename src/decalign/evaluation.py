"""``decalign eval`` and its reports: metrics of a run's seeds or of one checkpoint with the
paper's numbers beside them, the per-class report, and the missing-modality robustness table
(``--drop-each``).

This sits above :mod:`decalign.api` (it evaluates checkpoints through it); the prediction
machinery it builds on (:class:`~decalign.inference.Predictor`, dropping modalities, class
reports) is in :mod:`decalign.inference`, below the API.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from decalign.data.types import DataError
from decalign.inference import class_report, format_class_report, unlabelled_error

if TYPE_CHECKING:
    from decalign.data import MultimodalDataset
    from decalign.metrics.display import MetricNames, ReportStyle, TableStyle
    from decalign.train.checkpoint import LoadedCheckpoint

__all__ = ["drop_each", "drop_each_report", "drop_each_table", "evaluate_report"]


def drop_each(
    checkpoints: Sequence[str | os.PathLike[str]],
    data: str | os.PathLike[str] | None,
    split: str = "test",
    device: str = "auto",
) -> dict[str, Any]:
    """The robustness table: metrics with every modality, then with each one left out.

    Returns ``{"split", "modalities", "rows": {row: {"seeds": {name: metrics}, "mean", "std"}}}``
    with rows ``all`` and ``w/o <modality>``; each checkpoint is one seed (a run's
    ``seed_<s>/model.safetensors``). The data is read once.
    """
    from pathlib import Path

    from decalign.api import evaluate_checkpoint
    from decalign.metrics.display import aggregate

    first, dataset = _data_of_first(checkpoints[0], data)
    modalities = [m for m in first.info.modalities if m in getattr(first.model, "active", first.info.modalities)]
    variants: dict[str, tuple[str, ...]] = {"all": ()}
    if len(modalities) > 1:
        variants.update({f"w/o {m}": (m,) for m in modalities})
    rows: dict[str, Any] = {}
    for row, drop in variants.items():
        seeds = {Path(c).parent.name if len(checkpoints) > 1 else Path(c).name:
                 evaluate_checkpoint(c, data, split, dataset=dataset, device=device, drop=drop) for c in checkpoints}
        agg = aggregate(list(seeds.values()))
        rows[row] = {"dropped": list(drop), "seeds": seeds, "mean": agg["mean"], "std": agg["std"]}
    return {"split": split, "modalities": modalities, "kind": dataset.kind, "task": dataset.task, "rows": rows}


def drop_each_table(result: Mapping[str, Any], style: TableStyle = "text") -> str:
    """:func:`drop_each`'s rows as a table of the dataset's report columns (``mean ± std``)."""
    from decalign.bench import table_keys
    from decalign.metrics.display import format_table

    rows = result["rows"]
    keys = table_keys(result["kind"], result["task"], next(iter(rows.values()))["mean"])
    return format_table({name: {"mean": r["mean"], "std": r["std"]} for name, r in rows.items()}, keys=keys,
                        style=style, row_header=f"{result['split']} split")


def drop_each_report(
    run: str | os.PathLike[str] | None,
    checkpoint: str | os.PathLike[str] | None,
    data: str | os.PathLike[str] | None,
    split: str = "test",
    device: str = "auto",
    json_path: str | os.PathLike[str] | None = None,
) -> str:
    """``decalign eval --drop-each``: :func:`drop_each` over a run's seeds (or one checkpoint),
    written to ``json_path`` and, for a run, to ``<run>/drop_each_<split>.json`` and ``.md``.
    Returns the text table."""
    from pathlib import Path

    from decalign.train.atomic import write_json, write_text

    checkpoints = _checkpoints_of(run, checkpoint)
    result = drop_each(checkpoints, data, split, device)
    text = drop_each_table(result)
    if json_path is not None:
        write_json(json_path, result)
    if run is not None:
        seeds = len(checkpoints)
        md = (f"# Missing modalities at test time ({split} split)\n\n"
              f"Each row leaves the named modality out of every {split} sample; the model treats it as "
              f"inactive (its slots of the fused representation are zeros, no other modality attends to it). "
              f"Mean ± sample std over {seeds} seed{'s' if seeds > 1 else ''}.\n\n"
              f"{drop_each_table(result, style='markdown')}\n")
        write_json(Path(run) / f"drop_each_{split}.json", result)
        write_text(Path(run) / f"drop_each_{split}.md", md)
    return text


def evaluate_report(
    run: str | os.PathLike[str] | None,
    checkpoint: str | os.PathLike[str] | None,
    data: str | os.PathLike[str] | None,
    split: str = "test",
    device: str = "auto",
    drop: Sequence[str] = (),
    json_path: str | os.PathLike[str] | None = None,
    figure: str | os.PathLike[str] | None = None,
    *,
    std: str = "sample",
    style: ReportStyle = "text",
    names: MetricNames = "ours",
) -> str:
    """``decalign eval``: metrics of a run's seeds (mean ± std) or of one checkpoint, the paper's
    numbers beside them on its benchmarks, and for classification the confusion matrix and
    per-class scores (pooled over a run's seeds). Writes ``json_path`` and ``figure`` (a confusion
    matrix, or predictions against labels with the residuals) when given. Returns the text.

    ``std``: ``sample`` or ``population`` standard deviation over seeds (named in the header);
    ``style``: ``text``, ``markdown``, ``latex`` or ``mmsa`` (MMSA's result CSV); ``names``:
    ``ours`` or ``mmsa`` metric names (see :func:`decalign.api.metrics_table`)."""
    from pathlib import Path

    from decalign.api import evaluate_checkpoint_outputs, metrics_table
    from decalign.metrics import report_from_confusion
    from decalign.metrics.display import aggregate
    from decalign.train.atomic import write_json

    checkpoints = _checkpoints_of(run, checkpoint)
    dataset = None
    if len(checkpoints) > 1:  # read the data once for every seed
        dataset = _data_of_first(checkpoints[0], data)[1]
    per_seed: dict[str, dict[str, float]] = {}
    predictions, labels, reports = [], [], []
    info = None
    for c in checkpoints:
        ckpt, result, y = evaluate_checkpoint_outputs(c, data, split, dataset, device, drop)
        info = ckpt.info
        per_seed[Path(c).parent.name if run is not None else split] = result.metrics
        predictions.append(result.predictions)
        labels.append(y)
        if info.task == "classification":
            reports.append(class_report(result.predictions, y, info))
    n = len(per_seed)
    kind = info.kind if info else None
    title = f"{split}" + (f" ({n} seed{'' if n == 1 else 's'})" if run is not None else "") + (
        f" without {', '.join(drop)}" if drop else "")
    payload: dict[str, Any]
    if run is not None:
        agg = aggregate(list(per_seed.values()), std=std)
        mean, spread = agg["mean"], agg["std"]
        payload = {"split": split, "seeds": per_seed, "mean": mean, "std": spread, "std_kind": std}
    else:
        mean, spread = next(iter(per_seed.values())), None
        payload = {"split": split, "metrics": mean}
    if drop:
        payload["dropped"] = list(drop)
    text = metrics_table(title, mean, spread if spread is not None else {}, style=style,
                         kind=kind, std_kind=std, names=names)
    if spread is None or n == 1:  # one checkpoint or seed: plain values, no "± 0"
        from decalign.metrics.display import PAPER_RESULTS, format_mmsa, format_table
        from decalign.model.output import LOG_KEYS

        rows: dict[str, Any] = {title: dict(mean)}
        paper = PAPER_RESULTS.get(kind or "", {}).get("DecAlign")
        if paper:
            rows[f"paper ({kind}, DecAlign)"] = dict(paper)
        keys = [k for k in mean if k not in LOG_KEYS]
        text = format_mmsa(rows, keys=keys) if style == "mmsa" else format_table(rows, keys=keys, style=style,
                                                                                  names=names)
    if reports:
        total = np.sum([np.asarray(r["confusion"]) for r in reports], axis=0)
        report = report_from_confusion(total, reports[0]["class_names"])
        payload["report"] = {"seeds_pooled": len(reports), **report}
        text += "\n\n" + format_class_report(report)
    if json_path is not None:
        write_json(json_path, payload)
    if figure is not None:
        from decalign import plots

        name = Path(run).name if run is not None else Path(str(checkpoint)).parent.name
        fig_title = f"{name}, {title}" + (" (seeds pooled)" if len(checkpoints) > 1 else "")
        if reports:
            plots.plot_confusion(payload["report"], figure, fig_title)
        else:
            plots.plot_regression(np.concatenate(predictions), np.concatenate(labels), figure, fig_title)
    return text


def _data_of_first(checkpoint: str | os.PathLike[str],
                   data: str | os.PathLike[str] | None) -> tuple[LoadedCheckpoint, MultimodalDataset]:
    """The first checkpoint and the data it is evaluated on, read once for every seed of a run:
    the built-in dataset when the checkpoint was trained on it and no file is named."""
    import dataclasses

    from decalign.data import load_dataset
    from decalign.train.checkpoint import load_checkpoint

    first = load_checkpoint(checkpoint)
    if data is None and first.config.data.dataset != "synthetic":
        raise DataError("--data is required: the checkpoint was not trained on the built-in dataset")
    cfg = dataclasses.replace(first.config.data, dataset="auto" if data is not None else first.config.data.dataset)
    try:
        return first, load_dataset(data, cfg)
    except DataError as err:
        raise unlabelled_error(data, err) from None


def _checkpoints_of(run: str | os.PathLike[str] | None,
                    checkpoint: str | os.PathLike[str] | None) -> list[str | os.PathLike[str]]:
    """A run's seed checkpoints (through its :class:`~decalign.train.rundir.RunDir`), or the one
    checkpoint named."""
    from pathlib import Path

    from decalign.errors import RunDirError, UsageError
    from decalign.train.rundir import RunDir

    if run is None:
        if checkpoint is None:
            raise UsageError("give a run directory (--run) or a checkpoint (--checkpoint) to evaluate")
        return [checkpoint]
    if Path(run).exists() and not Path(run).is_dir():
        raise RunDirError(f"{str(run)!r} is a file, not a run directory: --run takes the folder `decalign train "
                          "--out` wrote; a single model.safetensors goes to --checkpoint")
    if not Path(run).is_dir():
        raise RunDirError(f"run directory {str(run)!r} does not exist")
    checkpoints: list[str | os.PathLike[str]] = list(RunDir(run).checkpoints())
    if not checkpoints:
        raise FileNotFoundError(f"no seed_*/model.safetensors checkpoint in {str(run)!r}")
    return checkpoints
