"""HTML fragments of a run's evidence, shared by the run report and the model card.

Each function takes what :mod:`covidct.pipeline.evidence` recorded (JSON dicts, the subgroup table)
and
returns escaped HTML for :func:`covidct.report.html_report.render_page`: the subgroup table with its
intervals, calibration before and after temperature scaling, batch drift, the serving check and
the gate's subgroup rule. Rates are shown in percent with one decimal, intervals in brackets.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from covidct.report.html_report import table_html

#: (unit, metric) columns of the subgroup table, in order.
SUBGROUP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("patient", "covid_sensitivity"),
    ("patient", "covid_specificity"),
    ("patient", "balanced_accuracy"),
    ("image", "covid_sensitivity"),
    ("image", "covid_specificity"),
    ("image", "balanced_accuracy"),
)


def escape(value: Any) -> str:
    """HTML-escaped text of ``value``."""
    return html.escape(str(value), quote=True)


def _pct(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{100 * number:.1f}" if math.isfinite(number) else "n/a"


def number(value: Any, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals; ``n/a`` when not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{number:.{digits}f}" if math.isfinite(number) else "n/a"


def interval(point: Any, low: Any, high: Any) -> str:
    """``point [low, high]`` in percent (``n/a`` where undefined)."""
    return f"{_pct(point)} [{_pct(low)}, {_pct(high)}]"


def subgroup_table_html(table: pd.DataFrame | None, title: str = "") -> str:
    """One row per subgroup of :func:`covidct.evaluation.subgroups.subgroup_table`'s tidy table:
    patients
    (COVID / normal), images, then patient- and image-level COVID sensitivity, specificity and
    balanced accuracy with their 95% patient-bootstrap interval. Subgroups below the minimum
    size are shown, marked."""
    if table is None or table.empty:
        return "<p>No subgroup table was recorded.</p>"
    rows, classes = [], []
    for (axis, subgroup), group in table.groupby(["axis", "subgroup"], sort=False):
        first = group.iloc[0]
        cells = [
            escape(f"{axis}={subgroup}" if axis != "all" else "all patients"),
            escape(
                f"{first['n_patients']} ({first['n_covid_patients']} / "
                f"{first['n_normal_patients']})"
            ),
            escape(first["n_images"]),
        ]
        for unit, metric in SUBGROUP_COLUMNS:
            row = group[(group["unit"] == unit) & (group["metric"] == metric)]
            cells.append(
                escape(interval(*row.iloc[0][["point", "low", "high"]])) if len(row) else "n/a"
            )
        small = bool(first["below_min_size"])
        cells.append("below minimum size" if small else "")
        rows.append(cells)
        classes.append("")
    header = ["subgroup", "patients (COVID / normal)", "images",
              *(f"{unit} {metric.replace('_', ' ')} [95% CI]" for unit, metric in SUBGROUP_COLUMNS),
              "note"]  # fmt: skip
    head = f"<p><b>{escape(title)}</b></p>" if title else ""
    note = (
        '<p class="note">Percent, 95% percentile patient bootstrap (stratified by label; a '
        "patient's slices move together), same resamples as the gate. Subgroups below the "
        "minimum size are shown with their (wide) intervals, not hidden; <i>unknown</i> holds "
        "patients whose attribute is not recorded.</p>"
    )
    return head + table_html(header, rows, classes, table_class="text") + note


def calibration_html(models: Mapping[str, Mapping[str, Any]]) -> str:
    """ECE, Brier score and NLL of each model's sequestered predictions before and after its
    temperature (``evidence.json``'s ``models``)."""
    if not models:
        return "<p>No calibration was recorded.</p>"
    rows = []
    for name, entry in models.items():
        raw = entry.get("calibration_raw") or {}
        scaled = entry.get("calibration_scaled") or {}
        fit = entry.get("temperature_fit") or {}
        rows.append(
            [
                escape(f"{name} v{entry.get('version')}"),
                escape(number(entry.get("temperature"), 3) if entry.get("temperature") else "none"),
                escape(fit.get("n_predictions", "-")),
                *(escape(number(raw.get(k))) for k in ("ece", "brier", "nll")),
                *(
                    escape(number(scaled.get(k)) if scaled else "n/a")
                    for k in ("ece", "brier", "nll")
                ),
            ]
        )
    header = ["model", "temperature T", "development predictions fitted on", "ECE before",
              "Brier before", "NLL before", "ECE after", "Brier after", "NLL after"]  # fmt: skip
    note = (
        '<p class="note">Image level, sequestered patients. T is fitted by minimum NLL on the '
        "model's development out-of-fold predictions (never the sequestered ones) and applied "
        "as p = sigmoid(logit(p) / T); decisions at 0.5 and AUCs do not change. ECE: 15 "
        "equal-width bins of p(COVID) (Guo et al. 2017).</p>"
    )
    refused = [
        f"{name}: not applied (T = 1): {(entry.get('temperature_fit') or {}).get('reason')}"
        for name, entry in models.items()
        if (entry.get("temperature_fit") or {}).get("applied") is False
    ]
    flagged = "".join(f'<p class="fail">{escape(text)}.</p>' for text in refused)
    return table_html(header, rows, table_class="text") + flagged + note


def drift_html(records: Sequence[Mapping[str, Any]]) -> str:
    """One row per measure of each batch's drift record (``runs/<run>/drift/<batch>.json``)."""
    if not records:
        return "<p>No batch passed validation in this run; nothing was compared.</p>"
    rows = []
    for record in records:
        batch = record.get("batch_id", "?")
        if not record.get("measures"):
            rows.append(
                [escape(batch), "-", "-", "-", "-", escape(record.get("note", "not measured"))]
            )
            continue
        for measure in record["measures"]:
            flag = (
                '<span class="fail">DRIFT</span>'
                if measure.get("drifted")
                else '<span class="pass">ok</span>'
            )
            rows.append(
                [
                    escape(batch),
                    escape(measure.get("name")),
                    escape(f"{number(measure.get('value'))} {measure.get('unit', '')}"),
                    escape(f"{measure.get('limit')}"),
                    flag,
                    escape(measure.get("detail", "")),
                ]
            )
    header = ["batch", "measure", "value", "limit", "drift", "detail"]
    note = (
        '<p class="note">Each batch that passed validation against the curated reference '
        "(covidct.batch.drift). A drifted batch is accepted and raises a batch_drift alert.</p>"
    )
    return table_html(header, rows, table_class="text") + note


def serving_html(check: Mapping[str, Any] | None) -> str:
    """The serving check: passed or the reasons, tolerance, latency."""
    if not check:
        return "<p>No serving check was recorded.</p>"
    state = (
        '<span class="pass">passed</span>'
        if check.get("passed")
        else '<span class="fail">FAILED</span>'
    )
    rows = [
        ["model URI", escape(check.get("model_uri"))],
        ["result", state + (f" ({escape(check.get('reason'))})" if check.get("reason") else "")],
        ["probe slices (digest)",
         escape(f"{check.get('slices', '-')} ({check.get('probe_digest', '-')})")],
        ["max |p served - p evaluated| (tolerance)",
         escape(f"{check.get('max_abs_diff')} ({check.get('tolerance')})")],
        ["served digest / registered",
         escape(f"{check.get('served_digest')} / {check.get('expected_digest')}")],
        ["load (s)", escape(number(check.get("load_s"), 2))],
        ["latency, warm (ms per slice)", escape(number(check.get("ms_per_slice"), 1))],
        ["first pass (ms per slice)", escape(number(check.get("first_predict_ms_per_slice"), 1))],
        ["fresh process, spawn to exit (s)", escape(number(check.get("total_s"), 1))],
    ]  # fmt: skip
    note = (
        '<p class="note">The registered model loaded from its registry URI in a fresh process '
        "and scored the fixed probe set of converted TCIA 16-bit slices "
        "(covidct.promotion.serving), "
        "before any alias moved.</p>"
    )
    return table_html(["serving check", ""], rows, table_class="text") + note


def subgroup_rule_html(rule: Mapping[str, Any] | None) -> str:
    """The gate's subgroup rule (``gate.json``'s ``subgroups``): each judged subgroup's COVID
    sensitivity difference to the champion with its interval; those not judged listed."""
    if not rule:
        return "<p>Subgroup rule not applied: no champion to compare with.</p>"
    rows = []
    for item in rule.get("comparisons") or []:
        if not item.get("judged"):
            continue
        rows.append(
            [
                escape(f"{item['axis']}={item['subgroup']}"),
                escape(f"{item['n_patients']} ({item['n_covid_patients']})"),
                escape(
                    f"{number(item.get('difference'))} [{number(item.get('ci_low'))}, "
                    f"{number(item.get('ci_high'))}]"
                ),  # fmt: skip
                '<span class="pass">yes</span>'
                if item.get("passed")
                else '<span class="fail">no</span>',
            ]
        )
    head = (
        f"<p>Refused when a judged subgroup's lower bound is below -{escape(rule.get('margin'))} "
        f"(judged: at least {escape(rule.get('min_patients'))} patients, "
        f"{escape(rule.get('min_covid_patients'))} with COVID). Not judged (too small): "
        f"{escape(', '.join(rule.get('not_judged') or []) or 'none')}.</p>"
    )
    if not rows:
        return head
    header = ["subgroup", "patients (COVID)", "COVID sensitivity difference [95% CI]", "passed"]
    return head + table_html(header, rows, table_class="text")


def _figure(src: str, caption: str) -> str:
    return (
        f'<figure><img src="{escape(src)}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def run_evidence_html(store: Any, prefix: str, out_dir: Path) -> str:
    """The run report's evidence section: drift of each batch, subgroup tables, the gate's
    subgroup rule, calibration (diagrams copied into ``out_dir``), the serving check and links
    to the model cards, all read from what :mod:`covidct.pipeline.evidence` wrote under
    ``prefix``."""
    from covidct.lake.access import read_json
    from covidct.lake.layout import RunLayout

    run = RunLayout.at(prefix)
    drift = [
        read_json(store, key) for key in sorted(store.list(run.drift_dir)) if key.endswith(".json")
    ]
    gate = read_json(store, run.gate) or {}
    evidence = read_json(store, run.evidence_index) or {}
    models = evidence.get("models") or {}
    parts = ["<h3>Batch drift</h3>", drift_html(drift)]
    parts.append("<h3>Subgroups on the sequestered patients</h3>")
    tables = [(n, m) for n, m in models.items() if m.get("subgroups_key")]
    for name, entry in tables:
        table = pd.read_csv(io.BytesIO(store.read_bytes(entry["subgroups_key"])))
        parts.append(subgroup_table_html(table, f"{name} v{entry.get('version')}"))
    if not tables:
        parts.append("<p>No subgroup table was recorded (no model was confirmed).</p>")
    parts += ["<h3>The gate's subgroup rule</h3>", subgroup_rule_html(gate.get("subgroups"))]
    parts += ["<h3>Calibration before and after temperature scaling</h3>", calibration_html(models)]
    for name, entry in models.items():
        key = entry.get("reliability_key")
        if key and store.exists(key):
            file = f"evidence-{name}-reliability.png"
            (Path(out_dir) / file).write_bytes(store.read_bytes(key))
            parts.append(_figure(file, f"{name} v{entry.get('version')}: reliability diagram"))
    parts += ["<h3>Serving check</h3>", serving_html(gate.get("serving_check"))]
    cards = read_json(store, run.model_cards_index) or {}
    links = "".join(
        f'<li><a href="{escape(run.model_card_from_report(v))}">'
        f"model card of version {escape(v)}</a>"
        f" (MLflow: {escape(card.get('artifact_uri', '-'))})</li>"
        for v, card in sorted(cards.items())
        if not card.get("error")
    )
    parts += ["<h3>Model cards</h3>", f"<ul>{links}</ul>" if links else "<p>No model card.</p>"]
    return "".join(parts)
