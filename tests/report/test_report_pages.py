"""The run report and the validation report in headless Chromium at a 1,400 px viewport.

The run report is built as ``tests/report/test_html_report.py`` builds it (leaderboard by
``covidct.pipeline.leaderboard``, gate by ``covidct.promotion.gate``, pictures drawn by
``covidct.evaluation``), with a Grad-CAM panel per fold; the validation report is
``covidct.batch.validation.validate_batch``'s page for the demo's faulty batch. Chromium must load
every picture, the page must not be wider than the viewport, and the four Grad-CAM outcome kinds
must each be shown or said to be absent.

Issue 33: the leaderboard's column of the gate's metric is in view at 1,400 px without scrolling
(it is the first metric), no table of the report needs a horizontal scroll, even with every
``<details>`` open, and no page asks for anything from the network: every request is routed,
only ``file:`` and ``data:`` URLs go through.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chromium import VIEWPORT, browser_page, offline, page_facts, requires_chromium
from test_html_report import FOLDS, _gradcam_png, run_inputs  # noqa: F401 - run_inputs: fixture

from covidct import templating
from covidct.batch.validation import validate_batch
from covidct.demo import make_faulty_batch
from covidct.evaluation import subgroups
from covidct.report import evidence_html, html_report
from covidct.report.gradcam_report import OUTCOMES

pytestmark = requires_chromium


@pytest.fixture(scope="module")
def run_report(run_inputs, tmp_path_factory) -> Path:  # noqa: F811 - the imported fixture
    cams = tmp_path_factory.mktemp("cams")
    folds = {fold: _gradcam_png(cams / f"vgg16-fold{fold}.png") for fold in range(FOLDS)}
    predictions = run_inputs["predictions"]
    # resnet152's fold 0 calls every image COVID: its panel can show TP and FP only
    resnet = predictions["resnet152"].copy()
    resnet.loc[resnet["fold"] == 0, "p_covid"] = 0.95
    # the evidence tables as the run report shows them: subgroups of the pooled predictions
    # (covidct.evaluation.subgroups), calibration records of evidence.json's shape
    table = subgroups.subgroup_table(predictions["vgg16"], n_boot=50, min_patients=5)
    fit = {"temperature": 1.3, "n_predictions": 72, "at_bound": False, "applied": True}
    scored = {"calibration_raw": {"ece": 0.12, "brier": 0.2, "nll": 0.6},
              "calibration_scaled": {"ece": 0.08, "brier": 0.18, "nll": 0.55}}  # fmt: skip
    models = {name: {"version": "4", "temperature": 1.3, "temperature_fit": fit} | scored
              for name in ("vgg16", "resnet152")}  # fmt: skip
    # gate.json's models: each model's sequestered intervals, one no better than chance
    confirmed = {
        name: {"version": version, "patients": 36, "no_better_than_chance": low < 0.5,
               "intervals": {"image_roc_auc": {"value": value, "ci_low": low, "ci_high": high}}}
        for name, version, value, low, high in (("vgg16", "4", 0.8125, 0.7031, 0.9102),
                                                ("resnet152", "5", 0.5312, 0.4219, 0.6406))
    }  # fmt: skip
    evidence = evidence_html.subgroup_table_html(table, "vgg16 v4")
    evidence += evidence_html.calibration_html(models)
    return html_report.write_run_report(
        tmp_path_factory.mktemp("run") / "report",
        leaderboard=run_inputs["leaderboard"],
        gate=run_inputs["gate"] | {"models": confirmed},
        batches=run_inputs["batches"],
        predictions={"vgg16": predictions["vgg16"], "resnet152": resnet},
        gradcam={"vgg16": folds, "resnet152": {0: _gradcam_png(cams / "resnet152-fold0.png")}},
        extra_sections=[("Evidence", evidence)],
    )


@pytest.fixture
def offline_page() -> Iterator[tuple[Any, list[str]]]:
    with browser_page() as page:
        yield page, offline(page)


def _assert_fits_and_loads(facts: dict, page_name: str) -> None:
    assert facts["scrollWidth"] <= VIEWPORT["width"], (
        f"{page_name} is {facts['scrollWidth']} px wide at a {VIEWPORT['width']} px viewport"
    )
    # Great Expectations' Data Docs link their logo from the web (nothing here may download):
    # only the pictures that travel with the report must load
    local = [image for image in facts["images"] if "://" not in (image["src"] or "")]
    broken = [image["src"] for image in local if image["naturalWidth"] == 0]
    assert not broken, f"{page_name}: pictures not loaded: {broken}"
    outside = [image["src"] for image in facts["images"] if image["right"] > VIEWPORT["width"]]
    assert not outside, f"{page_name}: pictures reaching past the viewport: {outside}"


def test_run_report_in_chromium(run_report: Path) -> None:
    with browser_page() as page:
        page.goto(run_report.resolve().as_uri(), wait_until="load")
        facts = page_facts(page)
        _assert_fits_and_loads(facts, "run report")
        pictures = {image["src"] for image in facts["images"]}
        for backbone in ("vgg16", "resnet152"):
            assert {f"{backbone}-{kind}.png" for kind in ("confusion", "roc", "pr")} <= pictures
        assert {f"vgg16-gradcam-fold{fold}.png" for fold in range(FOLDS)} <= pictures
        assert html_report.UNITS in page.locator("body").inner_text()
        notes = page.locator(".gradcam-outcomes")
        assert notes.count() == 2
        for index in range(notes.count()):
            note = notes.nth(index)
            shown = (note.get_attribute("data-shown") or "").split()
            absent = (note.get_attribute("data-absent") or "").split()
            assert sorted(shown + absent) == sorted(OUTCOMES), (shown, absent)
            text = note.inner_text()
            for kind in shown:
                assert f"{kind} (fold" in text, (kind, text)
            if absent:
                assert f"No example of {', '.join(absent)}" in text, text
        resnet = page.locator("#resnet152 .gradcam-outcomes")
        assert resnet.get_attribute("data-absent") == "FN TN"
        caption = page.locator("#resnet152 figcaption").filter(has_text="Grad-CAM").inner_text()
        assert "no FN, TN image in this fold" in caption


def test_validation_report_in_chromium(tmp_path: Path) -> None:
    faults = make_faulty_batch(tmp_path / "faulty-batch")
    verdict = validate_batch(
        tmp_path / "faulty-batch", report_dir=tmp_path / "report", progress=False
    )
    assert not verdict.passed
    with browser_page() as page:
        for name in ("index.html", "data_docs/index.html"):
            path = tmp_path / "report" / name
            assert path.is_file(), name
            page.goto(path.resolve().as_uri(), wait_until="load")
            _assert_fits_and_loads(page_facts(page), f"validation report {name}")
        page.goto((tmp_path / "report" / "index.html").resolve().as_uri(), wait_until="load")
        text = page.locator("body").inner_text()
        assert "FAILED" in text and "uint8" in text
        # one reason per fault: the uint8 slice is not also "uint16 holding 8-bit data"
        assert text.count(faults["uint8 slice"]) == 1 and "holding 8-bit data" not in text


def _table_overflow(page: Any) -> list[dict[str, Any]]:
    """Every table box whose table is wider than the box (a horizontal scroll to read it)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.table-box')]
            .filter(box => box.scrollWidth > box.clientWidth + 1)
            .map(box => ({head: box.querySelector('th')?.textContent,
                          scrollWidth: box.scrollWidth, clientWidth: box.clientWidth}))"""
    )


def test_leaderboard_gate_metric_in_view_at_1400_px(run_report: Path, run_inputs) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    metric = run_inputs["gate"]["verdict"]["comparisons"][0]["metric"]
    with browser_page() as page:
        page.goto(run_report.resolve().as_uri(), wait_until="load")
        board = page.locator("table.leaderboard")
        assert board.get_attribute("data-gate-metric") == metric
        heads = board.locator("thead th")
        assert heads.nth(1).get_attribute("data-metric") == metric  # the first metric shown
        facts = board.evaluate(
            """table => ({
                right: table.querySelector('th.gate-metric').getBoundingClientRect().right,
                         width: table.getBoundingClientRect().width,
                         box: table.parentElement.clientWidth,
                         scroll: table.parentElement.scrollWidth})"""
        )
        print(f"leaderboard at {VIEWPORT['width']} px: {facts}")
        assert facts["right"] <= VIEWPORT["width"] and facts["scroll"] <= facts["box"], facts
        assert page.evaluate("() => window.scrollX") == 0
        assert not _table_overflow(page), _table_overflow(page)
        # every metric is still on the page, in the collapsed tables; opened, they fit too
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        assert page.locator("details.all-metrics table thead th").count() >= 12
        assert not _table_overflow(page), _table_overflow(page)


def test_the_detector_sees_a_network_request(offline_page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page, network = offline_page
    bad = tmp_path / "bad.html"
    bad.write_text('<img src="https://example.invalid/logo.png"><p>x</p>', encoding="utf-8")
    page.goto(bad.resolve().as_uri(), wait_until="load")
    assert any(url.startswith("https://example.invalid/") for url in network), network


def test_no_page_loads_anything_from_the_network(run_report: Path, offline_page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    page, network = offline_page
    make_faulty_batch(tmp_path / "faulty-batch")
    validate_batch(tmp_path / "faulty-batch", report_dir=tmp_path / "report", progress=False)
    for path in (run_report, tmp_path / "report" / "index.html"):
        page.goto(path.resolve().as_uri(), wait_until="load")
        page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        page.wait_for_load_state("load")
        assert page.locator("h1").count() == 1
    assert network == [], network


def test_templates_name_no_remote_resource() -> None:
    """The model card is built from the same base layout and parts (its page needs a real
    registry, exercised in tests/evaluation/test_confirmation.py): no template refers to
    anything outside the page or its folder."""
    folder = Path(templating.__file__).parent / templating.TEMPLATE_FOLDER
    templates = sorted(folder.rglob("*.*"))
    assert len(templates) >= 10
    for path in templates:
        text = path.read_text(encoding="utf-8")
        for needle in ("http:", "https:", "//", "@import", "url("):
            assert needle not in text, (path.name, needle)
