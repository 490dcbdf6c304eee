"""One HTML page per DAG run: batches, leaderboard, promotion gate and the pictures.

:func:`write_run_report` writes ``report.html`` and its PNGs side by side in one folder: per
backbone the pooled confusion matrix, ROC curves per class and per fold with their mean, the
COVID precision-recall curve (all drawn by :mod:`covidct.evaluation` from the stored test
predictions, so the pictures and the numbers come from one code path) and, when given, a
Grad-CAM panel (:func:`covidct.evaluation.explain.gradcam_figure`). The page uses relative links
and inline
CSS only (no script, no network), so the folder opens from disk in any browser, and can be
logged to MLflow or copied to object storage as it is.

Number format (:data:`UNITS`, the same in ``covidct report``'s terminal leaderboard): rates in
percent with two decimals (``95.62``), ``mcc``, ``roc_auc`` and ``pr_auc`` as fractions with
four decimals (``0.9731``), as ``covidct evaluate-predictions`` prints them; differences of
rates in percentage points. The leaderboard shows ``mean ± sd`` over folds, and the single
value where only one fold gave a finite value (``15.75 (1 fold)``). Its first table holds the
gate's metric first and a few key rates (:data:`KEY_METRICS`), so it fits a 1,400 px screen;
every other metric is in a collapsible ``<details>``, one table per level (image, patient).
"""

from __future__ import annotations

import logging
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from markupsafe import Markup
from matplotlib.figure import Figure

from covidct import templating
from covidct.evaluation.metrics import (
    DEFAULT_THRESHOLD,
    Metric,
    cells_from_confusion,
    confusion,
    predict_labels,
)
from covidct.evaluation.plots import plot_confusion_matrix, plot_pr_curve, plot_roc_curves
from covidct.evaluation.predictions import (
    FOLD,
    P_COVID,
    Y_TRUE,
    parse_metric_key,
    validate_predictions,
)
from covidct.lake.layout import RunLayout
from covidct.report import wording
from covidct.report.pictures import Picture, slug
from covidct.templating import UNITS as UNITS, metric_title, render

if TYPE_CHECKING:
    from covidct.report.gradcam_report import GradCams

logger = logging.getLogger(__name__)

REPORT_FILE = RunLayout.REPORT_FILE
BACKBONE_COLUMN = "backbone"
MEAN_SUFFIX = "_mean"
SD_SUFFIX = "_sd"
#: The gate's metric when the gate record names none (``GateSettings.primary_metric``).
DEFAULT_PRIMARY = "image_roc_auc"
#: Metrics of the leaderboard's first table after the gate's metric (when the board has them).
KEY_METRICS: tuple[str, ...] = (
    "patient_balanced_accuracy",
    "image_covid_sensitivity",
    "image_covid_specificity",
    "image_roc_auc",
)
_FRACTION_METRICS = frozenset({Metric.MCC, Metric.ROC_AUC, Metric.PR_AUC})
_DPI = 100
_TITLE_WIDTH = 44  # characters per line of a picture title (the narrowest figure is 4.6 in)


# --------------------------------------------------------------------------- formatting


def format_metric(name: str, value: Any) -> str:
    """Format one metric value (module docstring rule); non-numbers as text, NaN and None (an
    undefined metric travels as null in JSON) as ``n/a``.

    ``name``: a metric key such as ``image_covid_sensitivity`` (unit prefix optional).
    """
    if value is None:
        return "n/a"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "n/a"
    try:
        metric = parse_metric_key(name)[1]
    except ValueError:
        return f"{number:.4g}"
    return f"{number:.4f}" if metric in _FRACTION_METRICS else f"{100 * number:.2f}"


def format_cell(name: str, mean: Any, spread: Any) -> str:
    """One leaderboard cell as text: ``mean ± sd``, or ``value (1 fold)`` when the spread is
    undefined because a single fold gave a finite value (the mean is then that fold's value)."""
    shown = format_metric(name, mean)
    if shown != "n/a" and format_metric(name, spread) == "n/a":
        return f"{shown} (1 fold)"
    return f"{shown} ± {format_metric(name, spread)}"


def format_difference(name: str, value: Any) -> str:
    """A difference of metric ``name``, signed: rates in percentage points (``+1.25``),
    MCC and AUCs as fractions (``+0.0125``), per :data:`UNITS`; ``n/a`` when not finite."""
    number = _number(value)
    if not math.isfinite(number):
        return "n/a"
    shown = format_metric(name, number)
    return shown if shown.startswith("-") else f"+{shown}"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def table_html(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    classes: Sequence[str] = (),
    table_class: str = "",
) -> str:
    """An HTML table in the report's style (template ``parts/table.html``).

    ``rows`` hold HTML: each cell is kept as it is (a caller escapes text first, or passes
    :class:`markupsafe.Markup`); ``header`` is text (escaped). ``classes``: CSS class per row.
    """
    cells = [[Markup(cell) for cell in row] for row in rows]  # noqa: S704 - HTML by contract
    return templating.table(header, cells, classes, table_class)


# --------------------------------------------------------------------------- sections


def leaderboard_metrics(leaderboard: pd.DataFrame) -> list[str]:
    """Metric names having both ``<name>_mean`` and ``<name>_sd`` columns, in column order."""
    columns = set(leaderboard.columns)
    return [
        column[: -len(MEAN_SUFFIX)]
        for column in leaderboard.columns
        if column.endswith(MEAN_SUFFIX) and column[: -len(MEAN_SUFFIX)] + SD_SUFFIX in columns
    ]


def _leaderboard_rows(leaderboard: pd.DataFrame) -> pd.DataFrame:
    if BACKBONE_COLUMN in leaderboard.columns:
        return leaderboard.reset_index(drop=True)
    return leaderboard.rename_axis(BACKBONE_COLUMN).reset_index()


def gate_metric(gate: Mapping[str, Any] | None) -> str:
    """The metric the gate judged: ``candidate_primary.metric``, else the first comparison's,
    else :data:`DEFAULT_PRIMARY`."""
    gate = gate or {}
    primary = (gate.get("candidate_primary") or {}).get("metric")
    comparisons = (gate.get("verdict") or {}).get("comparisons") or []
    first = comparisons[0].get("metric") if comparisons else None
    return str(primary or first or DEFAULT_PRIMARY)


def leaderboard_html(
    leaderboard: pd.DataFrame,
    candidate: str | None = None,
    *,
    primary_metric: str | None = None,
    gate: Mapping[str, Any] | None = None,
) -> str:
    """The leaderboard: a first table narrow enough for a 1,400 px screen (backbone, the gate's
    metric first, :data:`KEY_METRICS`, folds and, with ``gate``, "no better than chance" for a
    model whose sequestered AUC interval includes 0.5), then every metric in a ``<details>``,
    one table per level. Cells by :func:`format_cell`; titles by :func:`metric_title`.

    ``leaderboard``: :func:`covidct.pipeline.leaderboard`'s table (backbone as index or column).
    ``primary_metric``: the gate's metric (default :func:`gate_metric` of ``gate``).
    """
    if leaderboard.empty:
        return render("parts/paragraph.html", text="No model was trained in this run.")
    board = _leaderboard_rows(leaderboard)
    metrics = leaderboard_metrics(board)
    primary = primary_metric or gate_metric(gate)
    key = [m for m in dict.fromkeys((primary, *KEY_METRICS)) if m in metrics] or metrics[:5]
    models = {str(n): r for n, r in ((gate or {}).get("models") or {}).items()}
    records = board.to_dict("records")

    def cells(record: Mapping[Any, Any], names: Sequence[str]) -> list[dict[str, str]]:
        return [
            {"key": n, "text": format_cell(n, record[n + MEAN_SUFFIX], record[n + SD_SUFFIX])}
            for n in names
        ]

    rows = []
    for record in records:
        name = str(record[BACKBONE_COLUMN])
        confirmed = models.get(name) or {}
        rows.append({
            "backbone": name, "candidate": name == candidate, "cells": cells(record, key),
            "folds": record.get("folds"), "flag": _chance_flag(confirmed),
            "words": _sequestered_words(confirmed),
        })  # fmt: skip
    details = []
    for level in ("image", "patient", "other"):
        names = [m for m in metrics if _level(m) == level]
        if names:
            body = [[r[BACKBONE_COLUMN], *(c["text"] for c in cells(r, names))] for r in records]
            header = [BACKBONE_COLUMN, *(metric_title(m) for m in names)]
            details.append((f"{level} level", templating.table(header, body)))
    return render(
        "parts/leaderboard.html",
        primary=primary,
        columns=[{"key": m, "title": metric_title(m)} for m in key],
        rows=rows,
        has_folds="folds" in board.columns,
        has_words=bool(models),
        units=UNITS,
        details=details,
        n_metrics=len(metrics),
    )


def _level(metric: str) -> str:
    """``image`` or ``patient`` for a metric key, ``other`` for a column that is none."""
    try:
        return parse_metric_key(metric)[0].value
    except ValueError:
        return "other"


def _chance_flag(record: Mapping[str, Any]) -> str:
    """ "no better than chance" (AUC interval includes 0.5), "worse than chance" (it lies
    below 0.5) or nothing, from a ``gate.json`` ``models`` entry."""
    if record.get("no_better_than_chance"):
        return "no better than chance"
    high = ((record.get("intervals") or {}).get("image_roc_auc") or {}).get("ci_high")
    return "worse than chance" if high is not None and float(high) < 0.5 else ""


def _sequestered_words(record: Mapping[str, Any]) -> str:
    """A model's sequestered image ROC AUC with its interval, or "not scored"."""
    if not record:
        return "not scored"
    auc = (record.get("intervals") or {}).get("image_roc_auc")
    return f"ROC AUC {wording.interval_text('image_roc_auc', auc)}"


def batches_html(batches: Sequence[Mapping[str, Any]]) -> str:
    """Table of the run's batches: id, accepted or quarantined, reasons; "No new batch arrived
    this week." when there is none."""
    shown = [
        {"id": b.get("batch_id", "?"), "passed": b.get("passed"), "reasons": b.get("reasons") or []}
        for b in batches
    ]
    return render("parts/batches.html", batches=shown)


def gate_html(gate: Mapping[str, Any] | None) -> str:
    """The promotion decision: verdict, reasons, the sequestered confirmation, each confirmed
    model in words (:func:`covidct.report.wording.models_html`) and the paired comparisons."""
    if not gate:
        return render("parts/gate.html", gate=None)
    verdict = gate.get("verdict") or {}
    return render(
        "parts/gate.html",
        gate=gate,
        candidate=gate.get("candidate", verdict.get("candidate", "?")),
        version=gate.get("version", "?"),
        passed=bool(verdict.get("passed")),
        status=verdict.get("status", "?"),
        champion_before=gate.get("champion_before"),
        champion_after=gate.get("champion_after"),
        reasons=verdict.get("reasons") or [],
        disagreements=gate.get("registry_disagreements") or [],
        confirmation=_confirmation(gate),
        models=Markup(wording.models_html(gate)),  # noqa: S704 - rendered by a template
        comparisons=_comparisons_html(verdict.get("comparisons") or []),
    )


def _comparisons_html(comparisons: Sequence[Mapping[str, Any]]) -> str:
    if not comparisons:
        return ""
    rows = []
    for item in comparisons:
        metric = str(item.get("metric", "?"))
        difference = [
            format_difference(metric, item.get(key)) for key in ("difference", "ci_low", "ci_high")
        ]
        sensitivity = [
            format_difference("covid_sensitivity", item.get(f"sensitivity_{key}"))
            for key in ("difference", "ci_low", "ci_high")
        ]
        passed = item.get("passed")
        rows.append([
            f"{item.get('comparator', '?')} {item.get('comparator_name', '')}",
            f"{item.get('n_patients', '?')} / {item.get('overlap_patients', '?')}",
            metric_title(metric),
            f"{difference[0]} [{difference[1]}, {difference[2]}]",
            f"{sensitivity[0]} [{sensitivity[1]}, {sensitivity[2]}]",
            render("parts/verdict.html", passed=passed, yes="yes", no="no"),
        ])  # fmt: skip
    header = ["compared with", "sequestered patients / seen in development", "metric",
              "difference [95% CI] (points for a rate)",
              "COVID sensitivity difference [95% CI] (points)", "passed"]  # fmt: skip
    return templating.table(header, rows, table_class="text")


def _confirmation(gate: Mapping[str, Any]) -> dict[str, Any] | None:
    """The sequestered figures of every scored model, with the candidate's interval."""
    models = gate.get("models") or {}
    if not models:
        return None
    primary = gate.get("candidate_primary") or {}
    metric = str(primary.get("metric", "patient_balanced_accuracy"))
    # the gate's metric first, once
    shown = list(dict.fromkeys((metric, "image_covid_sensitivity", "image_roc_auc")))
    rows = [
        [
            f"{name} v{record.get('version')}",
            record.get("patients"),
            record.get("overlap_patients"),
            *(_shown(key, (record.get("metrics") or {}).get(key)) for key in shown),
        ]
        for name, record in models.items()
    ]
    header = ["model", "patients", "seen in development",
              *(metric_title(key) for key in shown)]  # fmt: skip
    return {
        "patients": gate.get("sequestered_patients"),
        "covid": gate.get("sequestered_covid_patients"),
        "metric_title": metric_title(metric),
        "value": _shown(metric, primary.get("value")),
        "low": _shown(metric, primary.get("ci_low")),
        "high": _shown(metric, primary.get("ci_high")),
        "same": gate.get("evaluated_model_digest") == gate.get("registered_model_digest"),
        "digest": gate.get("evaluated_model_digest"),
        "table": templating.table(header, rows, table_class="text"),
    }


def _shown(name: str, value: Any) -> str:
    return "n/a" if value is None else format_metric(name, value)


def fold_confusion_html(predictions: pd.DataFrame) -> str:
    """Per-fold image-level confusion counts (TP, FN, FP, TN, p_covid > 0.5) as a table."""
    frame = validate_predictions(predictions)
    groups = (
        [(str(fold), group) for fold, group in frame.groupby(FOLD, sort=True)]
        if FOLD in frame.columns
        else [("all", frame)]
    )
    rows = []
    for fold, group in groups:
        matrix = confusion(
            group[Y_TRUE], predict_labels(group[P_COVID].to_numpy(), DEFAULT_THRESHOLD)
        )
        cells = cells_from_confusion(matrix)  # tp, fn, fp, tn
        rows.append([fold, *(f"{int(count):,}" for count in cells)])
    return templating.table(["fold", "TP", "FN", "FP", "TN"], rows)


# --------------------------------------------------------------------------- pictures


def _save(figure: Figure, path: Path) -> None:
    # bbox_inches="tight" grows the canvas to every title, label and colour bar: nothing clipped
    figure.savefig(path, dpi=_DPI, format="png", bbox_inches="tight", pad_inches=0.08)


_PLOTS: tuple[tuple[str, Callable[..., Figure], str], ...] = (
    ("confusion", plot_confusion_matrix, "confusion matrix, images pooled over folds"),
    ("roc", plot_roc_curves, "ROC per class and per fold, with their mean ± sd"),
    ("pr", plot_pr_curve, "COVID precision-recall per fold and pooled"),
)


def backbone_pictures(out_dir: Path, backbone: str, predictions: pd.DataFrame) -> list[Picture]:
    """Draw and save the confusion, ROC and PR PNGs of one backbone's pooled test predictions.

    Files ``<slug>-confusion.png``, ``<slug>-roc.png``, ``<slug>-pr.png`` in ``out_dir``.
    Raises ValueError (naming the backbone) on an invalid predictions table.
    """
    pictures = []
    for kind, plot, caption in _PLOTS:
        name = f"{slug(backbone)}-{kind}.png"
        try:
            title = textwrap.fill(f"{backbone}: {caption}", _TITLE_WIDTH)
            figure = plot(predictions, title=title)
        except ValueError as error:
            raise ValueError(f"backbone {backbone}: {error}") from None
        _save(figure, Path(out_dir) / name)
        pictures.append(Picture(name, f"{backbone}: {caption}"))
    return pictures


def _figures_html(pictures: Sequence[Picture]) -> str:
    shown = [{"src": picture.file, "caption": picture.caption} for picture in pictures]
    return render("parts/figures.html", pictures=shown)


def _backbone_section(
    out_dir: Path, backbone: str, predictions: pd.DataFrame, gradcam: GradCams | None
) -> str:
    pictures = backbone_pictures(out_dir, backbone, predictions)
    outcomes = ""
    if gradcam is not None:
        from covidct.report.gradcam_report import gradcam_html

        cams, outcomes = gradcam_html(out_dir, backbone, predictions, gradcam)
        pictures.extend(cams)
    n_patients = predictions["patient_id"].nunique() if "patient_id" in predictions else 0
    return render(
        "parts/backbone.html",
        anchor=slug(backbone),
        backbone=backbone,
        n_images=f"{len(predictions):,}",
        n_patients=f"{n_patients:,}",
        confusion=fold_confusion_html(predictions),
        outcomes=Markup(outcomes),  # noqa: S704 - rendered by gradcam_html's template
        figures=_figures_html(pictures),
    )


# --------------------------------------------------------------------------- page


def render_page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A complete HTML document (template ``page.html`` on ``base.html``): ``title`` and
    (heading, body HTML) sections; headings are text (escaped), bodies HTML (kept)."""
    shown = [(heading, Markup(body)) for heading, body in sections]  # noqa: S704 - HTML
    return str(render("page.html", title=title, sections=shown)) + "\n"


def write_run_report(
    out_dir: Path,
    *,
    leaderboard: pd.DataFrame,
    gate: dict | None,
    batches: list[dict],
    predictions: dict[str, pd.DataFrame],
    curation: Mapping[str, Any] | None = None,
    gradcam: Mapping[str, GradCams] | None = None,
    title: str = "covidct run report",
    extra_sections: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write ``out_dir/report.html`` and its PNGs; return the HTML file's path.

    ``leaderboard``: :func:`covidct.pipeline.leaderboard` (``<metric>_mean``/``_sd``, ``folds``;
    backbone as index or column). ``gate``: the dict :func:`covidct.pipeline.gate_and_promote`
    returns, or None. ``batches``: ``{"batch_id", "passed", "reasons"}`` per validated batch.
    ``predictions``: backbone -> pooled test predictions (``patient_id, y_true, p_covid``,
    ``fold``). ``gradcam``: backbone -> fold -> Grad-CAM PNG (or one PNG), copied beside the
    report with a note of the outcome kinds shown and absent (:func:`gradcam_html`).
    ``curation``: the run's ``curation.json`` (slices curated, selected, not diagnostic), shown
    under the batches when given. ``extra_sections``: (heading, HTML) pairs placed after the
    gate (the run's evidence, :func:`covidct.report.evidence_html.run_evidence_html`).
    Raises ValueError on an invalid predictions table, FileNotFoundError for a missing PNG.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gradcam = dict(gradcam or {})
    unknown = sorted(set(gradcam) - set(predictions))
    if unknown:
        logger.warning("Grad-CAM given for backbones without predictions: %s", ", ".join(unknown))
    candidate = (gate or {}).get("candidate")
    backbones = [
        _backbone_section(out, name, frame, gradcam.get(name))
        for name, frame in sorted(predictions.items())
    ]
    no_pictures = render("parts/paragraph.html", text="No test predictions in this run.")
    sections = [
        ("Batches", Markup(batches_html(batches)) + Markup(wording.curation_html(curation))),  # noqa: S704
        ("Leaderboard", leaderboard_html(leaderboard, candidate, gate=gate)),
        ("Promotion gate", gate_html(gate)),
        *((heading, Markup(body)) for heading, body in extra_sections),  # noqa: S704 - HTML
        ("Pictures per backbone", Markup("").join(backbones) or no_pictures),  # noqa: S704
    ]
    path = out / REPORT_FILE
    path.write_text(render("run_report.html", title=title, sections=sections) + "\n", "utf-8")
    logger.info("run report written to %s", path)
    return path
