"""A compiled training model kept between ``train_model`` calls in one process (opt-in).

``airflow dags test`` (``make demo``) runs every task in one process, so the folds of one
backbone are trained there one after the other, each building and tracing the same network
again: for ResNet152 at 64 px on 2 cores, about 7 s to build, 32-36 s for the first compiled
step and the trace of the batch-norm re-estimation. ``train_model(..., reuse_compiled=True)``
keeps its compiled model here after a successful run; the next such call with the same backbone
and settings takes it back and sets every variable of the model (weights, batch-norm
statistics, seed states) and of its optimizer (step count, moments) to the values they had
right after the seeded build, which is the model a fresh build with the same seed gives
(``tests/training/test_warm.py`` checks that the weights after training are identical). Keras
keeps the traced train function on the model, so nothing is traced again. Measured on 2 cores,
ResNet152 at 64 px, 20 steps (``benchmarks/warm_folds.py``): a fresh fold 127.8 s, the reused
one 82.3 s, weights identical; in ``make demo`` the reused fold's task took 139 and 142 s
against 200 and 204 s for the first fold.

One model is kept at most: a call with another backbone or other settings drops it first. A
worker that runs one task per process never reuses anything; the kept model only costs memory
until the process ends or :func:`release_warm_model` is called.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from covidct.training.optimization import PreciseBatchNorm

logger = logging.getLogger(__name__)


@dataclass
class WarmModel:
    """A compiled training model and the values its variables had at the seeded start."""

    key: str
    model: keras.Model
    start: list[np.ndarray]
    optimizer_start: list[np.ndarray]
    precise_bn: PreciseBatchNorm | None = None

    @classmethod
    def of(cls, key: str, model: keras.Model) -> WarmModel:
        """Record ``model``'s start; call right after building and compiling it."""
        return cls(
            key=key,
            model=model,
            start=[np.array(v.numpy(), copy=True) for v in model.variables],
            optimizer_start=[np.array(v.numpy(), copy=True) for v in model.optimizer.variables],
        )

    def reset(self) -> keras.Model:
        """Set every model and optimizer variable back to its start; return the model.

        Raises ValueError when the model or its optimizer no longer has as many variables as
        were recorded at its start (it cannot happen to a model kept by :func:`warm_key`)."""
        pairs = [
            *zip(self.model.variables, self.start, strict=True),
            *zip(self.model.optimizer.variables, self.optimizer_start, strict=True),
        ]
        for variable, value in pairs:
            variable.assign(value)
        self.model.reset_metrics()
        return self.model

    def recalibrator(self, model: keras.Model, *, compiled: bool) -> PreciseBatchNorm:
        """The :class:`PreciseBatchNorm` of ``model`` (the kept model's inference part), made
        on first use and kept with it."""
        if self.precise_bn is None:
            self.precise_bn = PreciseBatchNorm(model, compiled=compiled)
        return self.precise_bn


_kept: WarmModel | None = None


def warm_key(backbone: str, params: dict[str, Any], replicas: int) -> str:
    """What must match for a kept model to be reused: backbone, every setting, replicas."""
    return json.dumps(
        {"backbone": backbone, "params": params, "replicas": replicas}, sort_keys=True, default=str
    )


def take_warm_model(key: str) -> WarmModel | None:
    """The kept model for ``key``, reset to its start and no longer kept; None when there is
    none (a kept model of another key is dropped)."""
    global _kept
    warm, _kept = _kept, None
    if warm is None or warm.key != key:
        return None
    warm.reset()
    logger.info("reusing the compiled training model of an earlier fold (reset to its start)")
    return warm


def keep_warm_model(warm: WarmModel) -> None:
    """Keep ``warm`` for the next :func:`take_warm_model` of its key (replacing any kept model)."""
    global _kept
    _kept = warm


def release_warm_model() -> None:
    """Drop the kept model, if any."""
    global _kept
    _kept = None
