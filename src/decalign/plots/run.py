"""All figures of a finished run, drawn from its files (``decalign train --plots``, ``bench``).

This sits above :mod:`decalign.api` (it reloads the run's best checkpoint and data through
:func:`decalign.api.load_for_eval`), while :mod:`decalign.plots` only draws arrays: so training
never draws, and its callers (the command line, the bench) decide when figures are made.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from decalign.plots import (
    collect_features,
    plot_embeddings,
    plot_test_predictions,
    plot_training_curves,
    plot_transport_plan,
)
from decalign.train.rundir import RunDir

__all__ = ["plot_run"]

log = logging.getLogger("decalign")


def plot_run(run_dir: str | os.PathLike[str], split: str = "test", max_samples: int = 250) -> list[Path]:
    """Write a run's figures into ``<run_dir>/plots/`` and return their paths.

    ``curves.png`` from ``history.csv``; from the best checkpoint of the run's first seed on
    ``split``: ``embeddings.png`` (models with decoupled features) and ``transport_plan.png``
    (when the prototype OT term produced a plan). The data is rebuilt from the run's
    configuration (``data.path``, or the built-in dataset) with the checkpoint's own
    preprocessing; if it cannot be loaded, the checkpoint figures are skipped with a warning.
    """
    from decalign.api import load_for_eval
    from decalign.train.checkpoint import load_checkpoint

    run = RunDir(run_dir)
    out_dir = run.plots_dir
    written: list[Path] = []
    name = run.path.name
    rows = run.read_history()
    if rows:
        written.append(plot_training_curves(rows, out_dir / "curves.png", title=f"Training curves: {name}"))
    written.extend(plot_test_predictions(run.path))
    if not run.config_file.exists():
        return written
    config = run.read_config()
    seed = config.train.seeds[0]
    ckpt_file = run.seed(seed).model
    if not ckpt_file.exists():
        log.warning("plots: %s has no checkpoint yet; only the training curves were drawn", ckpt_file)
        return written
    ckpt = load_checkpoint(ckpt_file)
    try:
        _, _, prepared = load_for_eval(ckpt, trained_data=True)
    except Exception as err:  # moved or deleted data must not fail a finished run
        log.warning("plots: cannot reload the data of %s (%s); embedding and transport plots skipped", run.path, err)
        return written
    if split not in prepared.splits:
        raise ValueError(f"plot_run: unknown split {split!r}; the data has {sorted(prepared.splits)}")
    feats = collect_features(ckpt.model, prepared.splits[split], ckpt.config.train.batch_size)
    arch = ckpt.config.model.architecture
    if feats["unique"] is not None:
        written.append(plot_embeddings(
            feats["unique"], feats["common"], feats["labels"], ckpt.info.modalities, out_dir / "embeddings.png",
            class_names=ckpt.info.class_names if ckpt.info.task == "classification" else None,
            max_samples=max_samples, title=f"{name} ({arch}, seed {seed}, {split} split)",
        ))
    plan = feats["plan"]
    if plan is not None and np.isfinite(plan).all() and plan.sum() > 0:
        batch = min(ckpt.config.train.batch_size, len(prepared.splits[split]))
        written.append(plot_transport_plan(
            plan, ckpt.info.modalities, out_dir / "transport_plan.png",
            title=f"Prototype transport plan: {name} (seed {seed}, first {split} batch of {batch})",
        ))
    return written
