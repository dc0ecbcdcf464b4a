r"""Exponential moving average of the trainable weights (``train.ema_decay``; docs/method.md §10).

After every optimizer step ``t`` (1-based) the average of each trainable parameter is the
bias-corrected exponential moving average of its values after steps ``1..t``:

.. math::

    \bar\theta_t = \frac{\sum_{s=1}^{t} (1 - d)\, d^{\,t-s}\, \theta_s}{1 - d^{\,t}}
    \quad\Longleftrightarrow\quad
    \bar\theta_t = d_t\,\bar\theta_{t-1} + (1 - d_t)\,\theta_t,
    \qquad 1 - d_t = \frac{1 - d}{1 - d^{\,t}},

the correction of Adam's moment estimates (Kingma & Ba, 2015): the weights sum to one from the
first step, so the average never leans towards the initial weights and its horizon is about
``1 / (1 - d)`` steps at once (a ramped decay such as TensorFlow's ``(1 + t) / (10 + t)`` stays
below 0.97 for the first 290 steps, longer than a 10-epoch run on mosi-dev). Validation, model
selection, the saved checkpoint and the test use the averaged weights; training goes on with the
raw ones.

Why: with a learning rate that converges in a few epochs, the validation loss of the raw weights
jumps from epoch to epoch (on mosi-dev, 0.95 → 1.43 → 2.32 in three epochs of one seed), and
selecting the best epoch of such a curve mostly selects noise. The average over the last
``1 / (1 - d)`` steps is what those oscillating iterates hover around.

Written here rather than with :class:`torch.optim.swa_utils.AveragedModel`: that keeps a second
copy of the whole module, including the frozen text-encoder layers and their per-sample cache
and the model's set of active modalities, which would then have to be kept in step; swapping the
averaged values into the one model for evaluation keeps a single model and costs one copy of the
trainable parameters.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The moving average of ``model``'s parameters that require gradients (buffers and frozen
    parameters are not trained, so they are used as they are)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self._names = [name for name, _ in named]
        self._params = [p for _, p in named]
        self._shadow = [p.detach().clone() for p in self._params]

    def current_decay(self) -> float:
        """:math:`d_t` of the next update (0 for the first: the average starts at the weights
        after the first step)."""
        t = self.updates + 1
        return (self.decay - self.decay**t) / (1.0 - self.decay**t)

    @torch.no_grad()
    def update(self) -> None:
        """One step of the average; call after each optimizer step."""
        weight = 1.0 - self.current_decay()
        self.updates += 1
        for shadow, p in zip(self._shadow, self._params):
            shadow.lerp_(p.detach(), weight)

    @contextmanager
    def applied(self) -> Generator[None, None, None]:
        """The model holds the averaged weights inside the block and its own ones again after it
        (also when the block raises)."""
        with torch.no_grad():
            saved = [p.detach().clone() for p in self._params]
            for p, shadow in zip(self._params, self._shadow):
                p.copy_(shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, value in zip(self._params, saved):
                    p.copy_(value)

    def averaged(self) -> dict[str, Tensor]:
        """The averaged values by parameter name (as in ``model.named_parameters()``)."""
        return dict(zip(self._names, self._shadow))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.averaged()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shadow = state["shadow"]
        if sorted(shadow) != sorted(self._names):
            raise ValueError("the saved weight average is of other parameters than this model's trainable ones")
        self.updates = int(state["updates"])
        with torch.no_grad():
            for mine, name in zip(self._shadow, self._names):
                mine.copy_(shadow[name])
