"""What a person sees while a run trains: batch bars, one line per epoch, TensorBoard scalars.

Its own module because it changes for the person watching (a terminal, Jupyter, a CI log, an
application with its own logging), never for the method: nothing here touches a tensor that
training uses or draws a random number. tqdm and TensorBoard are imported only when something is
drawn or written, so the core install needs neither.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from decalign.data.detect import METRIC_FAMILIES

__all__ = [
    "SHOWN_METRICS",
    "announce",
    "batch_bar",
    "interactive",
    "log_epoch",
    "report_epoch",
    "show_bars",
    "tensorboard_writer",
]

log = logging.getLogger("decalign")

SHOWN_METRICS = list(dict.fromkeys(k for columns in METRIC_FAMILIES.values() for k in columns))
"""Validation metrics of the epoch log line (those a dataset has), in report-column order."""


def interactive() -> bool:
    """A person is watching: a terminal, or a Jupyter kernel (where ``tqdm.auto`` draws a widget)."""
    if sys.stderr.isatty():
        return True
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return get is not None and type(get()).__name__ == "ZMQInteractiveShell"


def show_bars(quiet: bool, progress: bool | None) -> bool:
    """Whether to draw batch bars. ``progress=None`` (the CLI's rule): only for a person at a
    terminal, not in CI logs, pipes or quiet mode; ``True`` (Python): also in Jupyter."""
    if progress is None:
        return not quiet and sys.stderr.isatty() and not os.environ.get("CI")
    return progress and not quiet and interactive()


def batch_bar(total: int, description: str) -> Any:
    """A bar over one epoch's ``total`` batches that disappears when the epoch ends."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, leave=False, dynamic_ncols=True)


def announce(line: str, progress: bool | None) -> None:
    """A progress line: to the ``decalign`` log where it is shown (the CLI, an application that
    configured logging), else, with ``progress`` (Python, Jupyter), to stderr through
    ``tqdm.write`` so that it does not tear a progress bar."""
    if log.isEnabledFor(logging.INFO) and log.hasHandlers():
        log.info("%s", line)
    elif progress:
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)


def log_epoch(epoch: int, total: int, train: dict[str, float], valid: dict[str, float], lr: float,
              seconds: float, keys: list[str], progress: bool | None = None) -> None:
    """One line per epoch (through :func:`announce`): the training and validation losses, the
    validation metrics among ``keys`` that the dataset has, the learning rate and the time."""
    from decalign.metrics.display import format_value

    shown = " ".join(f"{k} {format_value(k, valid[k])}" for k in keys if k in valid)
    line = (f"epoch {epoch}/{total}  train loss {train['loss']:.4f}  |  valid loss {valid['loss']:.4f} {shown}  |  "
            f"lr {lr:.2e}  {seconds:.1f}s")
    announce(line, progress)


def report_epoch(writer: Any, epoch: int, total: int, train: dict[str, float], valid: dict[str, float], lr: float,
                 seconds: float, *, quiet: bool, progress: bool | None) -> None:
    """An epoch's TensorBoard scalars (``writer`` from :func:`tensorboard_writer`, or ``None``) and,
    unless ``quiet``, its log line."""
    if writer is not None:
        for split, stats in (("train", train), ("valid", valid)):
            for k, v in stats.items():
                writer.add_scalar(f"{split}/{k}", v, epoch)
        writer.add_scalar("lr", lr, epoch)
    if not quiet:
        log_epoch(epoch, total, train, valid, lr, seconds, SHOWN_METRICS, progress)


@contextmanager
def tensorboard_writer(directory: Path, enabled: bool) -> Generator[Any, None, None]:
    """A TensorBoard ``SummaryWriter`` on ``directory`` for the block, or ``None`` when not
    ``enabled`` or TensorBoard is not installed."""
    writer = None
    if enabled:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(directory))
        except ImportError as err:  # the core install has no tensorboard: not worth a warning on every run
            log.debug("TensorBoard event files are not written: %s (pip install 'decalign[tb]' to write them)", err)
    try:
        yield writer
    finally:
        if writer is not None:
            writer.close()
