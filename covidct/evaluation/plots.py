"""Figures of a predictions table (matplotlib, no display needed): the confusion matrix, ROC curves
per class and per fold with their mean, and the COVID precision-recall curve.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from covidct.evaluation.metrics import (
    DEFAULT_THRESHOLD,
    NEGATIVE_CLASS,
    Metric,
    confusion,
    predict_labels,
    score_metrics,
)
from covidct.evaluation.predictions import ALL_FOLDS, FOLD, P_COVID, Y_TRUE, validate_predictions
from covidct.schema import CLASS_NAMES, POSITIVE_CLASS

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- pictures


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _is_confusion(frame: pd.DataFrame) -> bool:
    return list(frame.index) == list(CLASS_NAMES) and list(frame.columns) == list(CLASS_NAMES)


def plot_confusion_matrix(
    data: pd.DataFrame, *, title: str = "", slice_threshold: float = DEFAULT_THRESHOLD
) -> Figure:
    """Confusion-matrix heatmap (Agg Figure): counts and row percentages, labelled axes.

    ``data``: a predictions table (image level) or a :func:`covidct.evaluation.metrics.confusion`
    matrix.
    """
    if _is_confusion(data):
        matrix = data
    else:
        frame = validate_predictions(data)
        labels = predict_labels(frame[P_COVID].to_numpy(), slice_threshold)
        matrix = confusion(frame[Y_TRUE], labels)
    counts = matrix.to_numpy()
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure = _new_figure(4.6, 4.0)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, col), count in np.ndenumerate(counts):
        color = "white" if shares[row, col] > 0.5 else "black"
        text = f"{count:,}\n{100 * shares[row, col]:.1f}%"
        axes.text(col, row, text, ha="center", va="center", color=color)
    axes.set_xticks(range(len(matrix.columns)), labels=list(matrix.columns))
    axes.set_yticks(range(len(matrix.index)), labels=list(matrix.index))
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    # a figure title, not the axes': constrained layout keeps it above the colour bar too
    figure.suptitle(title or "confusion matrix (row %)")
    figure.colorbar(image, ax=axes, label="share of true class")
    return figure


def _fold_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if FOLD not in frame.columns:
        return [(ALL_FOLDS, frame)]
    return [(str(fold), group) for fold, group in frame.groupby(FOLD, sort=True)]


def _two_classes(name: str, truth: np.ndarray) -> bool:
    if truth.all() or not truth.any():
        logger.warning("fold %s has one class only; its curve is skipped", name)
        return False
    return True


def plot_roc_curves(predictions: pd.DataFrame, *, title: str = "") -> Figure:
    """ROC curves per class (COVID: score p_covid; normal: 1 - p_covid), one per fold, and their
    vertical mean ± sd on a common false-positive-rate grid. Returns an Agg Figure."""
    frame = validate_predictions(predictions)
    figure = _new_figure(10.0, 4.6)
    grid = np.linspace(0.0, 1.0, 201)
    for axes, positive in zip(figure.subplots(1, 2), (POSITIVE_CLASS, NEGATIVE_CLASS), strict=True):
        curves = []
        for name, group in _fold_groups(frame):
            truth = (group[Y_TRUE] == positive).to_numpy()
            if not _two_classes(name, truth):
                continue
            score = group[P_COVID].to_numpy()
            score = score if positive == POSITIVE_CLASS else 1.0 - score
            fpr, tpr, _ = roc_curve(truth, score)
            auc = float(np.trapezoid(tpr, fpr))
            axes.plot(fpr, tpr, lw=1, alpha=0.6, label=f"fold {name} (AUC {auc:.3f})")
            curves.append(np.interp(grid, fpr, tpr))
        _mean_curve(axes, grid, curves)
        axes.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
        axes.set(
            xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.01)
        )
        axes.set_title(f"ROC, positive class {positive}")
        axes.legend(loc="lower right", fontsize="small")
    figure.suptitle(title or "ROC curves per class and fold")
    return figure


def _mean_curve(axes: Any, grid: np.ndarray, curves: Sequence[np.ndarray]) -> None:
    if len(curves) < 2:
        return
    stack = np.vstack(curves)
    mean, sd = stack.mean(axis=0), stack.std(axis=0, ddof=1)
    mean[0] = 0.0
    auc = float(np.trapezoid(mean, grid))
    axes.plot(grid, mean, color="black", lw=2, label=f"mean of {len(curves)} folds (AUC {auc:.3f})")
    axes.fill_between(
        grid,
        np.clip(mean - sd, 0, 1),
        np.clip(mean + sd, 0, 1),
        color="grey",
        alpha=0.2,
        label="± 1 sd",
    )


def plot_pr_curve(predictions: pd.DataFrame, *, title: str = "") -> Figure:
    """Precision-recall curve for COVID (per fold and pooled), with the prevalence baseline.
    Returns an Agg Figure."""
    frame = validate_predictions(predictions)
    figure = _new_figure(8.0, 4.6)
    axes = figure.add_subplot()
    groups = _fold_groups(frame)
    if len(groups) > 1:
        groups.append(("pooled", frame))
    for name, group in groups:
        truth = (group[Y_TRUE] == POSITIVE_CLASS).to_numpy()
        if not _two_classes(name, truth):
            continue
        precision, recall, _ = precision_recall_curve(truth, group[P_COVID].to_numpy())
        ap = score_metrics(group[Y_TRUE], group[P_COVID])[Metric.PR_AUC]
        style = (
            {"color": "black", "lw": 2}
            if name in ("pooled", ALL_FOLDS)
            else {"lw": 1, "alpha": 0.6}
        )
        label = name if name in ("pooled", ALL_FOLDS) else f"fold {name}"
        axes.step(recall, precision, where="post", label=f"{label} (AP {ap:.3f})", **style)
    prevalence = float((frame[Y_TRUE] == POSITIVE_CLASS).mean())
    axes.axhline(prevalence, ls=":", color="grey", lw=1, label=f"prevalence {prevalence:.3f}")
    axes.set(
        xlabel="recall (COVID sensitivity)", ylabel="precision (COVID)", xlim=(0, 1), ylim=(0, 1.01)
    )
    axes.set_title(title or "precision-recall, positive class covid")
    # beside the axes: inside, the legend covered the low-recall, low-precision curves
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize="small")
    return figure
