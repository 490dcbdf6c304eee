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
value where only one fold gave a finite value (``15.75 (1 fold)``).
"""

from __future__ import annotations

import html
import logging
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from matplotlib.figure import Figure

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

if TYPE_CHECKING:
    from covidct.report.gradcam_report import GradCams

logger = logging.getLogger(__name__)

REPORT_FILE = RunLayout.REPORT_FILE
BACKBONE_COLUMN = "backbone"
MEAN_SUFFIX = "_mean"
SD_SUFFIX = "_sd"
_FRACTION_METRICS = frozenset({Metric.MCC, Metric.ROC_AUC, Metric.PR_AUC})
_DPI = 100
#: The one sentence on units, shown under the leaderboard and by ``covidct report``.
UNITS = "Rates in percent; MCC and AUCs as fractions (-1..1 and 0..1)."
_TITLE_WIDTH = 44  # characters per line of a picture title (the narrowest figure is 4.6 in)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1b1b1b; background: #fff; }
.table-box { max-width: 100%; overflow-x: auto; }
h1 { font-size: 1.5rem; } h2 { border-bottom: 2px solid #2c5d8f; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #bbb; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child, table.text td { text-align: left; }
thead th { background: #e8eef5; }
tr.candidate td { background: #fff6d5; font-weight: 600; }
.pass { color: #176b2c; font-weight: 700; } .fail { color: #a3161a; font-weight: 700; }
figure { display: inline-block; margin: .5rem; vertical-align: top; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85rem; color: #444; }
.note { color: #555; font-size: .85rem; }
"""


# --------------------------------------------------------------------------- formatting


def format_metric(name: str, value: Any) -> str:
    """Format one metric value (module docstring rule); non-numbers as text, NaN as ``n/a``.

    ``name``: a metric key such as ``image_covid_sensitivity`` (unit prefix optional).
    """
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


def _e(value: Any) -> str:  # a missing value reads "none", never Python's "None"
    return "none" if value is None else html.escape(str(value), quote=True)


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    classes: Sequence[str] = (),
    table_class: str = "",
) -> str:
    """``rows`` hold HTML (already escaped); ``classes`` are per-row CSS classes."""
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = []
    for index, row in enumerate(rows):
        row_css = f' class="{classes[index]}"' if index < len(classes) and classes[index] else ""
        body.append(f"<tr{row_css}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
    css = f' class="{table_class}"' if table_class else ""
    table = f"<table{css}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="table-box">{table}</div>'  # a wide table scrolls in its box


def table_html(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    classes: Sequence[str] = (),
    table_class: str = "",
) -> str:
    """An HTML table in the report's style; ``rows`` hold HTML (already escaped)."""
    return _table(header, rows, classes, table_class)


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


def leaderboard_html(leaderboard: pd.DataFrame, candidate: str | None = None) -> str:
    """The leaderboard as an HTML table (:func:`format_cell` per metric, ``folds``).

    ``leaderboard``: :func:`covidct.pipeline.leaderboard`'s table (backbone as index or column).
    """
    if leaderboard.empty:
        return "<p>No model was trained in this run.</p>"
    board = _leaderboard_rows(leaderboard)
    metrics = leaderboard_metrics(board)
    header = [BACKBONE_COLUMN, *metrics, *(["folds"] if "folds" in board.columns else [])]
    rows, classes = [], []
    for record in board.to_dict("records"):
        cells = [_e(record[BACKBONE_COLUMN])]
        for name in metrics:
            cells.append(
                _e(format_cell(name, record[name + MEAN_SUFFIX], record[name + SD_SUFFIX]))
            )
        if "folds" in board.columns:
            cells.append(_e(record["folds"]))
        rows.append(cells)
        classes.append("candidate" if str(record[BACKBONE_COLUMN]) == candidate else "")
    note = (
        '<p class="note">Mean ± standard deviation over folds of per-fold metrics; "(1 fold)": '
        f"the one fold where the metric is defined. {_e(UNITS)} Highlighted: the gate's "
        "candidate.</p>"
    )
    return _table(header, rows, classes) + note


def batches_html(batches: Sequence[Mapping[str, Any]]) -> str:
    """Table of the run's batches: id, accepted or quarantined, reasons."""
    if not batches:
        return "<p>No new batch in this run.</p>"
    rows = []
    for batch in batches:
        passed = batch.get("passed")
        if passed is None:
            state = "?"
        elif passed:
            state = '<span class="pass">accepted</span>'
        else:
            state = '<span class="fail">QUARANTINED</span>'
        reasons = "<br>".join(_e(reason) for reason in batch.get("reasons") or []) or "-"
        rows.append([_e(batch.get("batch_id", "?")), state, reasons])
    return _table(["batch", "validation", "reasons"], rows, table_class="text")


def gate_html(gate: Mapping[str, Any] | None) -> str:
    """The promotion decision: verdict, reasons and the paired comparisons, if any."""
    if not gate:
        return "<p>No promotion gate ran in this run.</p>"
    verdict = gate.get("verdict") or {}
    passed = bool(verdict.get("passed"))
    decision = (
        '<span class="pass">PROMOTED to @champion</span>'
        if passed
        else '<span class="fail">not promoted</span>'
    )
    parts = [
        f"<p>Candidate <b>{_e(gate.get('candidate', verdict.get('candidate', '?')))}</b> "
        f"(version {_e(gate.get('version', '?'))}): {decision} "
        f"(status {_e(verdict.get('status', '?'))}). Champion: "
        f"{_e(gate.get('champion_before'))} &rarr; {_e(gate.get('champion_after'))}.</p>"
    ]
    reasons = verdict.get("reasons") or []
    if reasons:
        parts.append("<ul>" + "".join(f"<li>{_e(reason)}</li>" for reason in reasons) + "</ul>")
    parts.append(_confirmation_html(gate))
    parts.append(wording.models_html(gate))
    parts.append(_comparisons_html(verdict.get("comparisons") or []))
    return "".join(parts)


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
        rows.append(
            [
                _e(f"{item.get('comparator', '?')} {item.get('comparator_name', '')}"),
                _e(f"{item.get('n_patients', '?')} / {item.get('overlap_patients', '?')}"),
                _e(item.get("metric", "?")),
                _e(f"{difference[0]} [{difference[1]}, {difference[2]}]"),
                _e(f"{sensitivity[0]} [{sensitivity[1]}, {sensitivity[2]}]"),
                '<span class="pass">yes</span>'
                if item.get("passed")
                else '<span class="fail">no</span>',
            ]
        )
    header = [
        "compared with",
        "sequestered patients / seen in development",
        "metric",
        "difference [95% CI] (points for a rate)",
        "COVID sensitivity difference [95% CI] (points)",
        "passed",
    ]
    return _table(header, rows, table_class="text")


def _confirmation_html(gate: Mapping[str, Any]) -> str:
    """The sequestered figures of every scored model, with the candidate's interval."""
    models = gate.get("models") or {}
    if not models:
        return ""
    primary = gate.get("candidate_primary") or {}
    metric = str(primary.get("metric", "patient_balanced_accuracy"))
    same = gate.get("evaluated_model_digest") == gate.get("registered_model_digest")
    head = (
        f"<p>Confirmed on <b>{_e(gate.get('sequestered_patients'))}</b> sequestered patients "
        f"({_e(gate.get('sequestered_covid_patients'))} COVID), which no compared model trained, "
        f"validated or picked a threshold on. Candidate {_e(metric)}: "
        f"{_e(_shown(metric, primary.get('value')))} (95% CI "
        f"{_e(_shown(metric, primary.get('ci_low')))} to "
        f"{_e(_shown(metric, primary.get('ci_high')))}). Model evaluated = model registered: "
        f"{'yes' if same else 'NO'}"
        f" (digest {_e(gate.get('evaluated_model_digest'))}).</p>"
    )
    rows = []
    for name, record in models.items():
        figures = record.get("metrics") or {}
        rows.append(
            [
                _e(f"{name} v{record.get('version')}"),
                _e(record.get("patients")),
                _e(record.get("overlap_patients")),
                *(
                    _e(_shown(key, figures.get(key)))
                    for key in (metric, "image_covid_sensitivity", "image_roc_auc")
                ),
            ]
        )
    header = ["model", "patients", "seen in development", metric, "image COVID sensitivity",
              "image ROC AUC"]  # fmt: skip
    return head + _table(header, rows, table_class="text")


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
        rows.append([_e(fold), *(_e(f"{int(count):,}") for count in cells)])
    return _table(["fold", "TP", "FN", "FP", "TN"], rows)


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
    return "".join(
        f'<figure><img src="{_e(picture.file)}" alt="{_e(picture.caption)}">'
        f"<figcaption>{_e(picture.caption)}</figcaption></figure>"
        for picture in pictures
    )


def _backbone_section(
    out_dir: Path, backbone: str, predictions: pd.DataFrame, gradcam: GradCams | None
) -> str:
    pictures = backbone_pictures(out_dir, backbone, predictions)
    outcomes = ""
    if gradcam is not None:
        from covidct.report.gradcam_report import gradcam_html

        cams, outcomes = gradcam_html(out_dir, backbone, predictions, gradcam)
        pictures.extend(cams)
    n_images = len(predictions)
    n_patients = predictions["patient_id"].nunique() if "patient_id" in predictions else 0
    return (
        f'<section id="{_e(slug(backbone))}"><h3>{_e(backbone)}</h3>'
        f'<p class="note">{n_images:,} test images, {n_patients:,} (fold, patient) pairs; a '
        "slice is predicted COVID when p(covid) &gt; 0.5.</p>"
        f"{fold_confusion_html(predictions)}{outcomes}{_figures_html(pictures)}</section>"
    )


# --------------------------------------------------------------------------- page


def render_page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A complete HTML document: ``title`` and (heading, body HTML) sections."""
    body = "".join(f"<h2>{_e(heading)}</h2>{content}" for heading, content in sections)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{_e(title)}</h1>{body}</body></html>\n"
    )


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
    backbones = "".join(
        _backbone_section(out, name, frame, gradcam.get(name))
        for name, frame in sorted(predictions.items())
    )
    sections = [
        ("Batches", batches_html(batches) + wording.curation_html(curation)),
        ("Leaderboard", leaderboard_html(leaderboard, candidate)),
        ("Promotion gate", gate_html(gate)),
        *extra_sections,
        ("Pictures per backbone", backbones or "<p>No test predictions in this run.</p>"),
    ]
    path = out / REPORT_FILE
    path.write_text(render_page(title, sections), encoding="utf-8")
    logger.info("run report written to %s", path)
    return path
