"""Plain words for what a confirmed model's figures mean, shared by the terminal summary, the run
report and the model card.

A model whose image ROC AUC interval on the sequestered patients includes 0.5 is called "no
better than chance" (``gate.json``: ``models[<name>].no_better_than_chance``, set by
:func:`covidct.pipeline.decision.sequestered_intervals`); figures are fractions in the records,
rates shown in percent and AUC as a fraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from covidct.evaluation.truth import SEVERITY_BANDS

#: Shown after a model's figures when its AUC interval includes 0.5.
CHANCE_WORDS = "no better than chance: its ROC AUC interval includes 0.5"
#: Shown after a model's figures when its whole AUC interval lies below 0.5 (it ranks COVID
#: below normal: worse than a coin, not merely no better).
WORSE_WORDS = "worse than chance: its whole ROC AUC interval lies below 0.5"


def interval_text(metric: str, item: Mapping[str, Any] | None) -> str:
    """``value (95% CI low to high)`` of ``item`` (``{"value", "ci_low", "ci_high"}``, fractions):
    an AUC as a fraction (3 decimals), any other metric (a rate) in percent; "undefined" without
    a value."""
    if not item or item.get("value") is None:
        return "undefined"
    scale, unit, digits = (1.0, "", 3) if metric.endswith("auc") else (100.0, "%", 1)

    def shown(value: Any) -> str:
        return "?" if value is None else f"{scale * float(value):.{digits}f}{unit}"

    return f"{shown(item['value'])} (95% CI {shown(item['ci_low'])} to {shown(item['ci_high'])})"


def model_sentence(name: str, record: Mapping[str, Any]) -> str:
    """One sentence on one confirmed model: its image ROC AUC and patient balanced accuracy on
    the sequestered patients with 95% intervals, and "no better than chance" when it is.

    ``record``: a ``gate.json`` ``models`` entry (``version``, ``patients``, ``intervals``,
    ``no_better_than_chance``). A model whose whole AUC interval lies below 0.5 is "worse than
    chance" (:data:`WORSE_WORDS`)."""
    intervals = record.get("intervals") or {}
    auc, accuracy = "image_roc_auc", "patient_balanced_accuracy"
    text = (
        f"{name} v{record.get('version', '?')} on {record.get('patients', '?')} sequestered "
        f"patients: image ROC AUC {interval_text(auc, intervals.get(auc))}, "
        f"patient balanced accuracy {interval_text(accuracy, intervals.get(accuracy))}"
    )
    high = (intervals.get(auc) or {}).get("ci_high")
    if record.get("no_better_than_chance"):
        text += f": {CHANCE_WORDS}"
    elif high is not None and float(high) < 0.5:
        text += f": {WORSE_WORDS}"
    return text


def severity_sentence(record: Mapping[str, Any]) -> str | None:
    """COVID sensitivity by severity band (share of the lung involved, from the synthetic
    phantom's truth), or None when the record has none. ``record["severity"]``: band ->
    ``{"patients", "value", "ci_low", "ci_high"}`` (patient-level sensitivity, fractions)."""
    bands = record.get("severity") or {}
    if not bands:
        return None
    order = {band: index for index, band in enumerate(SEVERITY_BANDS)}  # JSON sorts keys
    parts = [
        f"{band} {interval_text('sensitivity', item)} of {item.get('patients', '?')} patients"
        for band, item in sorted(bands.items(), key=lambda pair: order.get(pair[0], len(order)))
    ]
    return "COVID sensitivity by severity: " + "; ".join(parts)


def pointing_sentence(record: Mapping[str, Any]) -> str | None:
    """The Grad-CAM pointing game (share of true-positive selected slices whose heat-map maximum
    lies inside a lesion of the truth mask) beside its chance level (a cell of the map drawn at
    random), or None when it was not played."""
    game = (record.get("metrics") or {}).get("gradcam_pointing_game")
    slices = record.get("gradcam_pointing_slices")
    if game is None:
        return None
    text = f"Grad-CAM pointing game {100 * float(game):.0f}% of {slices} true-positive slices"
    chance, cells = record.get("gradcam_pointing_chance"), record.get("gradcam_cells")
    if chance is not None:
        text += f" on a {cells} map (a cell drawn at random: {100 * float(chance):.0f}%)"
    return text


def models_html(gate: Mapping[str, Any]) -> str:
    """HTML list (template ``parts/models.html``): each confirmed model of ``gate``
    (``gate.json``) in words (:func:`model_sentence`, severity, pointing game); "no better than
    chance" flagged."""
    from covidct.templating import render

    models = [
        {
            "sentence": model_sentence(name, record),
            "chance": bool(record.get("no_better_than_chance"))
            or WORSE_WORDS in model_sentence(name, record),
            "extra": [t for t in (severity_sentence(record), pointing_sentence(record)) if t],
        }
        for name, record in (gate.get("models") or {}).items()
    ]
    return render("parts/models.html", models=models)


def curation_html(curation: Mapping[str, Any] | None) -> str:
    """Slices per batch: selected (open lung) and not diagnostic (closed lung, left out by the
    COVID-CTset selection, kept in the lake); empty without a ``curation.json`` record."""
    from covidct.templating import render, table

    if not curation:
        return ""
    keys = ("n_slices", "n_selected", "n_not_diagnostic")
    rows = [[b["batch_id"], *(b[k] for k in keys)] for b in curation.get("batches") or []]
    rows.append(["all", *(curation[k] for k in keys)])
    header = ["batch", "slices", "selected (open lung)", "not diagnostic: closed lung"]
    return render(
        "parts/curation.html", curation=curation, table=table(header, rows, table_class="text")
    )
