"""HTML fragments of a run's evidence, shared by the run report and the model card.

Each function takes what :mod:`covidct.pipeline.evidence` recorded (JSON dicts, the subgroup
table) and returns HTML rendered by a Jinja2 template (:mod:`covidct.templating`,
autoescaped): the subgroup table with its intervals, calibration before and after temperature
scaling, batch drift, the serving check and the gate's subgroup rule. Rates are shown in percent
with one decimal, intervals in brackets, differences of rates in percentage points.

Plain words: a subgroup with at least :data:`ZERO_SENSITIVITY_MIN_COVID` COVID patients in which
the model finds none (patient-level COVID sensitivity 0) is flagged; so is a calibration whose
temperature sat at its search bound, was refused, or made the sequestered NLL worse.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import markupsafe
import pandas as pd

from covidct import templating
from covidct.templating import metric_title, render

#: (unit, metric) columns of the subgroup table, in order.
SUBGROUP_COLUMNS: tuple[tuple[str, str], ...] = (
    ("patient", "covid_sensitivity"),
    ("patient", "covid_specificity"),
    ("patient", "balanced_accuracy"),
    ("image", "covid_sensitivity"),
    ("image", "covid_specificity"),
    ("image", "balanced_accuracy"),
)
#: A subgroup's zero COVID sensitivity is flagged from this many COVID patients on: with 5
#: COVID patients a classifier that finds each with probability 0.5 misses all five in 3% of
#: samples, so 0 of 5 is a finding, not noise (0 of 2 happens a quarter of the time).
ZERO_SENSITIVITY_MIN_COVID = 5


def escape(value: Any) -> str:
    """HTML-escaped text of ``value`` (``markupsafe.escape``; ``None`` as ``none``)."""
    return str(markupsafe.escape("none" if value is None else str(value)))


def _pct(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return f"{100 * number:.1f}" if math.isfinite(number) else "n/a"


def _points(value: Any) -> str:
    shown = _pct(value)
    return shown if shown == "n/a" or shown.startswith("-") else f"+{shown}"


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


def _zero_sensitivity(group: pd.DataFrame, n_covid: int) -> bool:
    row = group[(group["unit"] == "patient") & (group["metric"] == "covid_sensitivity")]
    if not len(row) or n_covid < ZERO_SENSITIVITY_MIN_COVID:
        return False
    point = float(row.iloc[0]["point"])
    return math.isfinite(point) and point == 0.0


def subgroup_table_html(table: pd.DataFrame | None, title: str = "") -> str:
    """One row per subgroup of :func:`covidct.evaluation.subgroups.subgroup_table`'s tidy table:
    patients (COVID / normal), images, then patient-level COVID sensitivity, specificity and
    balanced accuracy with their 95% patient-bootstrap interval and a note; the image-level
    figures in a collapsible second table. Subgroups below the minimum size are shown, marked;
    a subgroup of at least :data:`ZERO_SENSITIVITY_MIN_COVID` COVID patients with COVID
    sensitivity 0 is flagged (row class ``flag``)."""
    if table is None or table.empty:
        return render("parts/paragraph.html", text="No subgroup table was recorded.")
    rows, details, classes = [], [], []
    for (axis, subgroup), group in table.groupby(["axis", "subgroup"], sort=False):
        first = group.iloc[0]
        name = f"{axis}={subgroup}" if axis != "all" else "all patients"
        n_covid = int(first["n_covid_patients"])
        figures = {}
        for unit, metric in SUBGROUP_COLUMNS:
            row = group[(group["unit"] == unit) & (group["metric"] == metric)]
            figures[unit, metric] = (
                interval(*row.iloc[0][["point", "low", "high"]]) if len(row) else "n/a"
            )
        notes = []
        missed = _zero_sensitivity(group, n_covid)
        if missed:
            notes.append(f"finds none of its {n_covid} COVID patients (COVID sensitivity 0)")
        if bool(first["below_min_size"]):
            notes.append("below minimum size")
        patients = f"{first['n_patients']} ({n_covid} / {first['n_normal_patients']})"
        level = [figures[key] for key in SUBGROUP_COLUMNS if key[0] == "patient"]
        note = render("parts/flag.html", notes=notes, flagged=missed)
        rows.append([name, patients, first["n_images"], *level, note])
        details.append([name, *(figures[key] for key in SUBGROUP_COLUMNS if key[0] == "image")])
        classes.append("flag" if missed else "")
    titles = {key: f"{metric_title(f'{key[0]}_{key[1]}')} [95% CI]" for key in SUBGROUP_COLUMNS}
    by_unit = {u: [titles[k] for k in SUBGROUP_COLUMNS if k[0] == u] for u in ("patient", "image")}
    header = ["subgroup", "patients (COVID / normal)", "images", *by_unit["patient"], "note"]
    image_header = ["subgroup", *by_unit["image"]]
    return render(
        "parts/subgroups.html",
        title=title,
        table=templating.table(header, rows, classes, table_class="text"),
        images=templating.table(image_header, details, table_class="text"),
        min_covid=ZERO_SENSITIVITY_MIN_COVID,
    )


def calibration_flags(entry: Mapping[str, Any]) -> list[str]:
    """What is wrong with one model's calibration record (``evidence.json``'s ``models``
    entry), in words; empty when nothing is: the temperature sat at its search bound, the fit
    was refused (``temperature_fit.applied`` False, with its reason), or scaling made the
    sequestered NLL worse (``calibration_scaled.nll`` above ``calibration_raw.nll``)."""
    fit = entry.get("temperature_fit") or {}
    flags = []
    if fit.get("applied") is False:
        flags.append(f"not applied (T = 1): {fit.get('reason') or 'refused'}")
    elif fit.get("at_bound"):
        flags.append(
            f"T = {number(fit.get('temperature'), 3)} hit its search bound and was applied: "
            "the data say nothing about T, and a temperature that large pushes every "
            "probability towards 0.5"
        )
    raw = (entry.get("calibration_raw") or {}).get("nll")
    scaled = (entry.get("calibration_scaled") or {}).get("nll")
    if raw is not None and scaled is not None and float(scaled) > float(raw):
        flags.append(
            f"scaling made calibration worse on the sequestered patients (NLL {number(raw)} "
            f"before, {number(scaled)} after)"
        )
    return flags


def calibration_html(models: Mapping[str, Mapping[str, Any]]) -> str:
    """ECE, Brier score and NLL of each model's sequestered predictions before and after its
    temperature (``evidence.json``'s ``models``), each model's calibration in words and
    :func:`calibration_flags` flagged (row class ``flag``)."""
    if not models:
        return render("parts/paragraph.html", text="No calibration was recorded.")
    rows, classes, words = [], [], []
    for name, entry in models.items():
        raw = entry.get("calibration_raw") or {}
        scaled = entry.get("calibration_scaled") or {}
        fit = entry.get("temperature_fit") or {}
        flags = calibration_flags(entry)
        temperature = entry.get("temperature")
        rows.append([
            f"{name} v{entry.get('version')}",
            number(temperature, 3) if temperature else "none",
            fit.get("n_predictions", "-"),
            *(number(raw.get(k)) for k in ("ece", "brier", "nll")),
            *(number(scaled.get(k)) if scaled else "n/a" for k in ("ece", "brier", "nll")),
            render("parts/verdict.html", passed=not flags, yes="ok", no="flagged"),
        ])  # fmt: skip
        classes.append("flag" if flags else "")
        words.append({"name": f"{name} v{entry.get('version')}", "flags": flags})
    header = ["model", "temperature T", "development predictions fitted on", "ECE before",
              "Brier before", "NLL before", "ECE after", "Brier after", "NLL after",
              "calibration"]  # fmt: skip
    return render(
        "parts/calibration.html",
        table=templating.table(header, rows, classes, table_class="text"),
        words=[w for w in words if w["flags"]],
    )


def drift_html(records: Sequence[Mapping[str, Any]], arrived: int | None = None) -> str:
    """One row per measure of each batch's drift record (``runs/<run>/drift/<batch>.json``).

    ``arrived``: how many new batches the run saw (None: not known). Without a record the page
    says "No new batch arrived this week" when none arrived, else that none passed validation.
    """
    if not records:
        text = (
            "No new batch arrived this week; nothing was compared."
            if arrived == 0
            else "No batch passed validation in this run; nothing was compared."
            if arrived
            else "No drift record: no new batch passed validation in this run."
        )
        return render("parts/paragraph.html", text=text)
    rows = []
    for record in records:
        batch = record.get("batch_id", "?")
        if not record.get("measures"):
            rows.append([batch, "-", "-", "-", "-", record.get("note", "not measured")])
            continue
        for measure in record["measures"]:
            drifted = bool(measure.get("drifted"))
            rows.append([
                batch,
                measure.get("name"),
                f"{number(measure.get('value'))} {measure.get('unit', '')}",
                measure.get("limit"),
                render("parts/verdict.html", passed=not drifted, yes="ok", no="DRIFT"),
                measure.get("detail", ""),
            ])  # fmt: skip
    header = ["batch", "measure", "value", "limit", "drift", "detail"]
    return render("parts/drift.html", table=templating.table(header, rows, table_class="text"))


def serving_html(check: Mapping[str, Any] | None) -> str:
    """The serving check: passed or the reasons, tolerance, latency."""
    if not check:
        return render("parts/paragraph.html", text="No serving check was recorded.")
    state = render(
        "parts/serving_state.html", passed=bool(check.get("passed")), reason=check.get("reason")
    )
    rows: list[list[Any]] = [
        ["model URI", check.get("model_uri")],
        ["result", state],
        ["probe slices (digest)", f"{check.get('slices', '-')} ({check.get('probe_digest', '-')})"],
        ["max |p served - p evaluated| (tolerance)",
         f"{check.get('max_abs_diff')} ({check.get('tolerance')})"],
        ["served digest / registered",
         f"{check.get('served_digest')} / {check.get('expected_digest')}"],
        ["load (s)", number(check.get("load_s"), 2)],
        ["latency, warm (ms per slice)", number(check.get("ms_per_slice"), 1)],
        ["first pass (ms per slice)", number(check.get("first_predict_ms_per_slice"), 1)],
        ["fresh process, spawn to exit (s)", number(check.get("total_s"), 1)],
    ]  # fmt: skip
    return render(
        "parts/serving.html",
        table=templating.table(["serving check", ""], rows, table_class="text"),
    )


def subgroup_rule_html(rule: Mapping[str, Any] | None) -> str:
    """The gate's subgroup rule (``gate.json``'s ``subgroups``): each judged subgroup's COVID
    sensitivity difference to the champion with its interval, in percentage points; those not
    judged listed."""
    if not rule:
        text = "Subgroup rule not applied: no champion to compare with."
        return render("parts/paragraph.html", text=text)
    rows = [
        [
            f"{item['axis']}={item['subgroup']}",
            f"{item['n_patients']} ({item['n_covid_patients']})",
            f"{_points(item.get('difference'))} [{_points(item.get('ci_low'))}, "
            f"{_points(item.get('ci_high'))}]",
            render("parts/verdict.html", passed=item.get("passed"), yes="yes", no="no"),
        ]
        for item in rule.get("comparisons") or []
        if item.get("judged")
    ]
    header = ["subgroup", "patients (COVID)", "COVID sensitivity difference [95% CI] (points)",
              "passed"]  # fmt: skip
    return render(
        "parts/subgroup_rule.html",
        margin=_pct(rule.get("margin")),
        min_patients=rule.get("min_patients"),
        min_covid=rule.get("min_covid_patients"),
        not_judged=", ".join(rule.get("not_judged") or []) or "none",
        table=templating.table(header, rows, table_class="text") if rows else "",
    )


def run_evidence_html(
    store: Any, prefix: str, out_dir: Path, batches: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """The run report's evidence section: drift of each batch, subgroup tables, the gate's
    subgroup rule, calibration (diagrams copied into ``out_dir``), the serving check and links
    to the model cards, all read from what :mod:`covidct.pipeline.evidence` wrote under
    ``prefix``. ``batches``: the run's new batches (the summary's), so that a week without one
    says so (:func:`drift_html`)."""
    from covidct.lake.access import read_json
    from covidct.lake.layout import RunLayout

    run = RunLayout.at(prefix)
    drift = [
        read_json(store, key) for key in sorted(store.list(run.drift_dir)) if key.endswith(".json")
    ]
    gate = read_json(store, run.gate) or {}
    evidence = read_json(store, run.evidence_index) or {}
    models = evidence.get("models") or {}
    subgroup_tables = [
        subgroup_table_html(
            pd.read_csv(io.BytesIO(store.read_bytes(entry["subgroups_key"]))),
            f"{name} v{entry.get('version')}",
        )
        for name, entry in models.items()
        if entry.get("subgroups_key")
    ]
    diagrams = []
    for name, entry in models.items():
        key = entry.get("reliability_key")
        if key and store.exists(key):
            file = f"evidence-{name}-reliability.png"
            (Path(out_dir) / file).write_bytes(store.read_bytes(key))
            caption = f"{name} v{entry.get('version')}: reliability diagram"
            diagrams.append({"src": file, "caption": caption})
    cards = read_json(store, run.model_cards_index) or {}
    links = [
        {"href": run.model_card_from_report(v), "version": v, "uri": card.get("artifact_uri", "-")}
        for v, card in sorted(cards.items())
        if not card.get("error")
    ]
    return render(
        "parts/evidence.html",
        drift=drift_html(drift, None if batches is None else len(batches)),
        subgroups=subgroup_tables,
        rule=subgroup_rule_html(gate.get("subgroups")),
        calibration=calibration_html(models),
        diagrams=render("parts/figures.html", pictures=diagrams),
        serving=serving_html(gate.get("serving_check")),
        cards=links,
    )
