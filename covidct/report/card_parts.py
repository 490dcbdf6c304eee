"""What the model card says in words: registry tags read as sentences (never raw JSON), the gate's
criteria, and the change record against the previous version.

Used by :mod:`covidct.report.model_card`, which renders them with its templates. Rates are shown
in percent, AUCs and MCC as fractions (:data:`covidct.templating.UNITS`); an interval as
``value (95% CI low to high)`` (:func:`covidct.report.wording.interval_text`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from covidct.config import Settings
from covidct.report.html_report import format_difference, format_metric
from covidct.report.wording import interval_text
from covidct.templating import metric_title
from covidct.training.spec import SPEC_TAG, TrainingSpec

#: Registry tags compared by the change record, in order, with their titles.
CHANGE_FIELDS: tuple[tuple[str, str], ...] = (
    ("dataset_version", "data: dataset version"),
    (SPEC_TAG, "training specification"),
    ("backbone", "backbone"),
    ("deployable", "deployable"),
    ("patient_threshold", "patient threshold"),
    ("temperature", "temperature T"),
    ("sequester_epoch", "sequestration epoch"),
    ("seen_patients", "development patients"),
    ("model_digest", "model digest"),
    ("gate_verdict", "gate verdict"),
)
_INTERVAL_METRICS = ("image_roc_auc", "patient_balanced_accuracy")


def _spec(tag: str | None) -> TrainingSpec | None:
    try:
        return TrainingSpec.from_tag(tag, legacy=True)
    except ValueError:
        return None


def spec_text(tag: str | None) -> str:
    """A version's ``train_params`` tag in words (:meth:`TrainingSpec.describe`; tags written
    before the typed spec read as ``TrainingSpec.from_tag(..., legacy=True)`` does); ``-``
    without a tag."""
    if tag is None:
        return "-"
    try:
        return TrainingSpec.from_tag(tag, legacy=True).describe()
    except ValueError as error:
        return f"unreadable: {error}"


def spec_changes(before: str | None, after: str | None) -> list[str]:
    """The fields of two ``train_params`` tags that differ, as ``field a -> b`` (``→``);
    empty when both specs are equal (a legacy tag and its full form are equal) or unreadable."""
    old, new = _spec(before), _spec(after)
    if old is None or new is None:
        return [] if before == after else ["specification unreadable"]
    a, b = old.to_dict(), new.to_dict()
    return [f"{key} {a.get(key)} → {b.get(key)}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)]  # fmt: skip


def members_text(tag: str | None) -> str:
    """The ``member_runs`` tag (a JSON list of MLflow run ids) in words."""
    if not tag:
        return "-"
    try:
        runs = json.loads(tag)
    except json.JSONDecodeError:
        return tag
    if not isinstance(runs, list):
        return str(runs)
    return f"{len(runs)} fold model{'s' if len(runs) != 1 else ''} (MLflow runs {', '.join(runs)})"


def temperature_text(fit_tag: str | None, temperature: str | None) -> str:
    """The ``temperature_fit`` tag (JSON of :class:`covidct.evaluation.calibration.
    TemperatureFit`) as a sentence: the T applied and what it did to the development NLL, or why
    it was refused, or that it hit its search bound; ``not fitted`` without either tag."""
    if not fit_tag:
        return f"T = {temperature}" if temperature else "not fitted"
    try:
        fit = json.loads(fit_tag)
    except json.JSONDecodeError:
        return f"T = {temperature} (fit record unreadable)"
    count = fit.get("n_predictions", "?")
    if fit.get("applied") is False:
        return (
            f"not applied (T = 1): T = {_num(fit.get('fitted'), 3)} fitted on {count} "
            f"development predictions was refused: {fit.get('reason') or 'no reason recorded'}"
        )
    text = (
        f"T = {_num(fit.get('temperature'), 3)}, fitted on {count} development predictions "
        f"(NLL {_num(fit.get('nll_before'))} before, {_num(fit.get('nll_after'))} after)"
    )
    if fit.get("at_bound"):
        text += "; WARNING: T sits at its search bound, so the fit says nothing about T"
    return text


def _num(value: Any, digits: int = 4) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "n/a"


def criteria_rows(
    settings: Settings, gate: Mapping[str, Any], tags: Mapping[str, str]
) -> list[tuple[str, Any]]:
    """The gate's criteria as (field, value) rows: metric, margins (rates in percentage points,
    an AUC margin as a fraction), power, policies and this version's verdict tag."""
    rule = settings.gate
    primary = rule.primary_metric
    gain = gate.get("detectable_gain")
    return [
        ("primary metric", metric_title(primary)),
        ("margin on its difference's 95% lower bound", format_difference(primary, rule.margin)),
        ("COVID sensitivity non-inferiority margin (points)",
         f"from a power analysis for the COVID patients compared, at least "
         f"{format_difference('covid_sensitivity', rule.sensitivity_margin).lstrip('+')}"),
        ("subgroup harm margin (points, Holm)",
         format_difference("covid_sensitivity", rule.subgroup_margin).lstrip("+")),
        ("smallest gain this decision detects with 80% power",
         "-" if gain is None else format_difference(primary, gain)),
        ("champion figures", gate.get("figures_basis") or "-"),
        ("first-run policy", rule.first_run_policy.value),
        ("bootstrap resamples", rule.n_boot),
        ("subgroup rule minimum patients / COVID patients",
         f"{rule.subgroup_min_patients} / {rule.subgroup_min_covid_patients}"),
        ("gate verdict tag of this version", tags.get("gate_verdict", "-")),
    ]  # fmt: skip


def _version_text(version: Any) -> str:
    return f"v{version}" if version else "none"


def _previous_version(client: Any, name: str, version: str) -> str | None:
    """The highest registered version number below ``version``; None when there is none."""
    numbers = [int(v.version) for v in client.search_model_versions(f"name='{name}'")]
    earlier = [n for n in numbers if n < int(version)]
    return str(max(earlier)) if earlier else None


def _gated_record(settings: Settings, tags: Mapping[str, str], version: str) -> dict[str, Any]:
    """``version``'s entry in the ``gate.json`` of the run that registered it (empty if none)."""
    from covidct.lake.access import open_lake, read_json
    from covidct.lake.layout import RunLayout

    if not tags.get("dag_run_id"):
        return {}
    gate = read_json(open_lake(settings), RunLayout.of(tags["dag_run_id"]).gate) or {}
    models = (gate.get("models") or {}).values()
    return next((dict(m) for m in models if str(m.get("version")) == version), {})


def _metric_rows(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    old_metrics, new_metrics = old.get("metrics") or {}, new.get("metrics") or {}
    for metric in dict.fromkeys([*_INTERVAL_METRICS, *new_metrics, *old_metrics]):
        if metric in _INTERVAL_METRICS:
            a = interval_text(metric, (old.get("intervals") or {}).get(metric))
            b = interval_text(metric, (new.get("intervals") or {}).get(metric))
        else:
            a = format_metric(metric, old_metrics.get(metric, "n/a"))
            b = format_metric(metric, new_metrics.get(metric, "n/a"))
        try:
            change = format_difference(
                metric, float(new_metrics[metric]) - float(old_metrics[metric])
            )
        except (KeyError, TypeError, ValueError):
            change = ""
        rows.append([f"sequestered {metric_title(metric)}", a, b, change])
    return rows


def change_record(
    client: Any, settings: Settings, version: str, gate: Mapping[str, Any]
) -> dict[str, Any]:
    """The change record of ``version`` as data for template ``parts/change.html``: the gate's
    decision, the version compared with (the champion it was judged against, else the version
    registered before it), sentences naming what changed (data, training specification,
    sequestered metrics with 95% intervals, gate verdict) and rows (field, previous, this,
    change). Raises ``mlflow.exceptions.MlflowException`` when the registry cannot be read."""
    name = settings.mlflow.model_name
    own = str(gate.get("version")) == version
    champion = gate.get("champion_before") if own else None
    promoted = str(gate.get("champion_after")) == version
    record: dict[str, Any] = {
        "status": (gate.get("verdict") or {}).get("status", "?"),
        "promoted": promoted,
        "before": _version_text(gate.get("champion_before")),
        "after": _version_text(gate.get("champion_after")),
        "label": "", "previous": None, "version": version, "changes": [], "rows": [],
    }  # fmt: skip
    previous = str(champion) if champion else _previous_version(client, name, version)
    if previous is None:
        return record
    label = "previous champion" if champion else "previous version"
    ours = client.get_model_version(name, version).tags
    theirs = client.get_model_version(name, previous).tags
    rows = []
    for field, title in CHANGE_FIELDS:
        a, b = theirs.get(field, "-"), ours.get(field, "-")
        if field == SPEC_TAG:  # compared as specs: a legacy tag and its full form are equal
            changed = bool(spec_changes(theirs.get(field), ours.get(field)))
            a, b = spec_text(theirs.get(field)), spec_text(ours.get(field))
        else:
            changed = a != b
        rows.append([title, a, b, "changed" if changed else ""])
    models = gate.get("models") or {}
    mine: Mapping[str, Any] = next(
        (m for m in models.values() if str(m.get("version")) == version), {}
    )
    if champion:  # scored with this version on the same sequestered patients
        theirs_gated: Mapping[str, Any] = models.get("champion") or {}
        basis = "both scored on this run's sequestered patients"
    else:
        theirs_gated = _gated_record(settings, theirs, previous)
        basis = "each scored on the sequestered patients of the run that registered it"
    metric_rows = _metric_rows(theirs_gated, mine)
    changes = _change_sentences(theirs, ours, metric_rows, basis)
    return record | {"label": label, "previous": previous, "changes": changes,
                     "rows": rows + metric_rows}  # fmt: skip


def _change_sentences(
    theirs: Mapping[str, str], ours: Mapping[str, str], metric_rows: list[list[str]], basis: str
) -> list[str]:
    data_a, data_b = theirs.get("dataset_version", "-"), ours.get("dataset_version", "-")
    sentences = [
        f"Data: dataset version {data_a} → {data_b}."
        if data_a != data_b
        else f"Data: unchanged (dataset version {data_b})."
    ]
    spec = spec_changes(theirs.get(SPEC_TAG), ours.get(SPEC_TAG))
    sentences.append(
        f"Training specification: {', '.join(spec)}."
        if spec
        else "Training specification: unchanged."
    )
    shown = [row for row in metric_rows if row[0].endswith(tuple(
        metric_title(m) for m in _INTERVAL_METRICS))]  # fmt: skip
    if shown:
        sentences.append(
            f"Sequestered metrics ({basis}): "
            + "; ".join(f"{row[0].removeprefix('sequestered ')} {row[1]} → {row[2]}"
                        for row in shown) + "."
        )  # fmt: skip
    verdict_a, verdict_b = theirs.get("gate_verdict", "-"), ours.get("gate_verdict", "-")
    sentences.append(f"Gate verdict: {verdict_a} → {verdict_b}.")
    return sentences
