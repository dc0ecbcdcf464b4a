"""A training process killed mid-way, as a crash would: the resume tests (one process and a
``torchrun`` job) start a run and SIGKILL it once a chosen epoch is saved."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["kill_when_saved", "saved_epoch"]


def saved_epoch(state: Path) -> int:
    """The epoch of a run's ``state.pt`` (0 while it is missing or being written)."""
    import torch

    try:
        return int(torch.load(state, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # being written or not there yet
        return 0


def kill_when_saved(cmd: Sequence[str], state: Path, epoch: int, *, env: Mapping[str, str], timeout: float = 240.0,
                    poll_s: float = 0.05, whole_group: bool = False) -> None:
    """Run ``cmd`` and SIGKILL it as soon as ``state`` holds ``epoch``, so it dies during the
    next epoch. ``whole_group``: the command starts a session of its own and every process of it
    (a torchrun agent and its workers) is killed.

    Raises:
        AssertionError: the command exited first (its stderr in the message) or ``timeout`` passed.
    """
    proc = subprocess.Popen(list(cmd), env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=whole_group)
    deadline = time.monotonic() + timeout
    try:
        while saved_epoch(state) < epoch:
            if proc.poll() is not None:
                raise AssertionError(f"training exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
            if time.monotonic() > deadline:
                raise AssertionError("training did not reach the epoch in time")
            time.sleep(poll_s)
        if whole_group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
