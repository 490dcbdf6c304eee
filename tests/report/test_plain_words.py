"""Issue 33, item 2: the pages say in plain words what the numbers mean.

Rendered through the real templates (``covidct.templating``): a subgroup where the model
finds none of enough COVID patients is flagged (the table from
``covidct.evaluation.subgroups.subgroup_table``), a calibration whose temperature hit its bound,
was refused or made the NLL worse is flagged, a model whose AUC interval includes 0.5 is "no
better than chance" in the leaderboard, a week without a batch says so, and a missing value
reads ``none``, never Python's ``None``.
"""

from __future__ import annotations

import re

import jinja2
import pandas as pd
import pytest
from test_html_report import run_inputs  # noqa: F401 - the fixture

from covidct import templating
from covidct.evaluation import subgroups
from covidct.report import evidence_html, html_report


def _text(page: str) -> str:
    """The page's visible text, roughly: tags out, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


def _predictions(missed: set[str]) -> pd.DataFrame:
    """Source a: 40 patients (20 COVID); source b: 10 patients (``covid_b`` COVID). p(COVID)
    0.9 for COVID slices but those of the patients in ``missed`` (0.1), 0.1 for normal ones."""
    rows = []
    for index in range(50):
        patient = f"{'a' if index < 40 else 'b'}/p{index:03d}"
        covid = index % 2 == 0
        p = 0.9 if covid and patient not in missed else 0.1
        for instance in range(2):
            rows.append({"patient_id": patient, "y_true": "covid" if covid else "normal",
                         "p_covid": p, "slice_id": f"{patient}/{instance}",
                         "patient_threshold": 0.5})  # fmt: skip
    return pd.DataFrame(rows)


def _row(page: str, name: str) -> str:
    return page.split(f"<td>{name}</td>")[1].split("</tr>")[0]


def test_zero_sensitivity_in_a_subgroup_of_enough_covid_patients_is_flagged() -> None:
    source_b = {f"b/p{i:03d}" for i in range(40, 50, 2)}  # source b's 5 COVID patients
    table = subgroups.subgroup_table(_predictions(source_b), n_boot=50, min_patients=5)
    page = evidence_html.subgroup_table_html(table)
    assert evidence_html.ZERO_SENSITIVITY_MIN_COVID == 5
    row = _row(page, "source=b")
    assert "finds none of its 5 COVID patients" in row, row
    assert "finds none of its" not in _row(page, "source=a") + _row(page, "all patients")
    assert page.count('<tr class="flag">') == 1
    # four of source b's five missed: sensitivity 20%, nothing to flag
    table = subgroups.subgroup_table(_predictions(set(sorted(source_b)[:4])), n_boot=50)
    assert "finds none of its" not in evidence_html.subgroup_table_html(table)


def test_too_few_covid_patients_are_not_flagged() -> None:
    # source b with 4 COVID patients, all missed: below the threshold, shown but not flagged
    frame = _predictions({f"b/p{i:03d}" for i in range(40, 50, 2)})
    frame = frame[frame["patient_id"] != "b/p048"]
    page = evidence_html.subgroup_table_html(subgroups.subgroup_table(frame, n_boot=50))
    assert "0.0 [" in _row(page, "source=b") and "finds none of its" not in page


def _entry(fit: dict | None, raw_nll: float, scaled_nll: float | None) -> dict:
    return {
        "version": "3", "temperature": (fit or {}).get("temperature"), "temperature_fit": fit,
        "calibration_raw": {"ece": 0.1, "brier": 0.2, "nll": raw_nll},
        "calibration_scaled": None if scaled_nll is None
        else {"ece": 0.1, "brier": 0.2, "nll": scaled_nll},
    }  # fmt: skip


def test_calibration_at_its_bound_or_made_worse_is_flagged() -> None:
    fit = {"temperature": 1.4, "n_predictions": 80, "at_bound": False, "applied": True}
    models = {
        # week 1 of the demo, recorded before the guard: T = 20 at its bound, applied
        "vgg16": _entry({**fit, "temperature": 20.0, "at_bound": True}, 0.69, 0.693),
        # week 2: scaling made ResNet152's sequestered NLL worse
        "resnet152": _entry(fit, 0.52, 0.61),
        "resnet50": _entry(fit, 0.52, 0.41),
        "refused": _entry(
            {
                **fit,
                "temperature": 1.0,
                "applied": False,
                "fitted": 20.0,
                "at_bound": True,
                "reason": "T = 20 sits at its search bound",
            },
            0.6,
            0.6,
        ),  # fmt: skip
    }
    page = evidence_html.calibration_html(models)
    text = _text(page)
    assert "vgg16 v3: T = 20.000 hit its search bound and was applied" in text
    assert "resnet152 v3: scaling made calibration worse on the sequestered patients " in text
    assert "(NLL 0.5200 before, 0.6100 after)" in text
    assert "refused v3: not applied (T = 1): T = 20 sits at its search bound." in text
    assert "resnet50 v3:" not in text  # improved: no flag
    assert page.count('<tr class="flag">') == 3
    assert evidence_html.calibration_flags(models["resnet50"]) == []


def test_a_week_without_a_batch_says_so() -> None:
    assert "No new batch arrived this week" in html_report.batches_html([])
    assert "No new batch arrived this week" in evidence_html.drift_html([], arrived=0)
    assert "No new batch arrived" not in evidence_html.drift_html([], arrived=2)
    assert "No batch passed validation" in evidence_html.drift_html([], arrived=2)


def test_missing_values_read_none_not_python_none() -> None:
    gate = {"candidate": "vgg16", "version": None, "champion_before": None,
            "champion_after": None, "verdict": {"passed": False, "status": "refuse",
                                                "reasons": [], "comparisons": []}}  # fmt: skip
    page = html_report.gate_html(gate)
    assert "Champion: none &rarr; none" in page and "None" not in page
    assert "None" not in templating.render("parts/paragraph.html", text=None)


def test_leaderboard_calls_a_chance_level_model_so(run_inputs) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    board = run_inputs["leaderboard"]
    gate = {"candidate": "vgg16", "candidate_primary": {"metric": "image_roc_auc"},
            "models": {"vgg16": {"no_better_than_chance": False},
                       "resnet152": {"no_better_than_chance": True}}}  # fmt: skip
    page = html_report.leaderboard_html(board, "vgg16", gate=gate)
    assert "no better than chance" in _row(page, "resnet152")
    assert "than chance" not in _row(page, "vgg16")
    below = {
        "no_better_than_chance": False,
        "intervals": {"image_roc_auc": {"value": 0.2, "ci_low": 0.1, "ci_high": 0.4}},
    }
    gate["models"]["vgg16"] = below  # fmt: skip
    row = _row(html_report.leaderboard_html(board, "vgg16", gate=gate), "vgg16")
    assert "ROC AUC 0.200 (95% CI 0.100 to 0.400)" in row and "worse than chance" in row
    head = page.split("</thead>")[0]
    titles = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", head)
    assert titles[0] == "backbone" and titles[1].startswith("ROC AUC (image)")  # gate's first
    assert "image_covid_sensitivity" not in _text(page) and "COVID sensitivity (image)" in page


@pytest.mark.parametrize(
    ("key", "title"),
    [
        ("image_covid_sensitivity", "COVID sensitivity (image)"),
        ("patient_balanced_accuracy", "balanced accuracy (patient)"),
        ("image_roc_auc", "ROC AUC (image)"),
        ("mcc", "MCC"),
        ("something_else", "something_else"),
    ],
)
def test_metric_titles(key: str, title: str) -> None:
    assert templating.metric_title(key) == title


def test_templates_refuse_a_missing_variable_and_escape_text() -> None:
    with pytest.raises(jinja2.UndefinedError):
        templating.render("parts/change.html")
    cell = templating.table(["<h>"], [["<script>alert(1)</script>"]])
    assert "<script>" not in cell and "&lt;script&gt;" in cell and "&lt;h&gt;" in cell
