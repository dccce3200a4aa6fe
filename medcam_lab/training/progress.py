"""Epoch progress lines with the losses and the time left, readable in a terminal, a notebook and a batch log.

A tqdm bar inside a notebook is a widget that an executed copy does not keep; these lines go through the
``medcam_lab`` logger, which :func:`show_progress` connects to the notebook's output (the command line
configures logging itself).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping

__all__ = ["EpochProgress", "format_duration", "show_progress"]

log = logging.getLogger("medcam_lab")
_HANDLER_NAME = "medcam_lab.progress"


def format_duration(seconds: float) -> str:
    """``75`` → ``"1 min 15 s"``; ``3700`` → ``"1 h 2 min"``; under a minute in seconds."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class EpochProgress:
    """Times the epochs of one training run and writes one line per epoch.

    Args:
        name: what trains (``"align"``, ``"finetune lr=0.001"``).
        total: the last epoch.
        start: epochs already done (a resumed run); the time left counts only epochs timed here.
        clock: time source (seconds), replaceable in tests.
    """

    def __init__(self, name: str, total: int, start: int = 0, clock=time.monotonic) -> None:
        self.name, self.total, self.start = name, total, start
        self._clock = clock
        self._t0 = clock()

    def line(self, epoch: int, metrics: Mapping[str, float]) -> str:
        """The line after ``epoch`` (1-based) finished with ``metrics``, e.g.
        ``align epoch 3/20 · train_loss 1.234 · 12 s/epoch · 3 min 24 s left``."""
        done = max(epoch - self.start, 1)
        per_epoch = (self._clock() - self._t0) / done
        values = " · ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)) and k != "epoch")
        left = "done" if epoch >= self.total else f"{format_duration(per_epoch * (self.total - epoch))} left"
        return f"{self.name} epoch {epoch}/{self.total} · {values} · {format_duration(per_epoch)}/epoch · {left}"

    def report(self, epoch: int, metrics: Mapping[str, float]) -> str:
        """Log :meth:`line` at INFO and return it."""
        text = self.line(epoch, metrics)
        log.info(text)
        return text


def show_progress(stream=None) -> None:
    """Print the ``medcam_lab`` INFO lines (epoch progress) to ``stream`` (default: the current
    ``sys.stdout``, i.e. the notebook cell's output). Calling it again (Run All twice) adds no second copy."""
    for handler in list(log.handlers):
        if handler.get_name() == _HANDLER_NAME:
            log.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
