"""The run report and the validation report in headless Chromium at a 1,400 px viewport.

The run report is built as ``tests/report/test_html_report.py`` builds it (leaderboard by
``covidct.pipeline.leaderboard``, gate by ``covidct.promotion.gate``, pictures drawn by
``covidct.evaluation``), with a Grad-CAM panel per fold; the validation report is
``covidct.batch.validation.validate_batch``'s page for the demo's faulty batch. Chromium must load
every picture, the page must not be wider than the viewport (a wide table scrolls inside its
own box), and the four Grad-CAM outcome kinds must each be shown or said to be absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from chromium import VIEWPORT, browser_page, page_facts, requires_chromium
from test_html_report import FOLDS, _gradcam_png, run_inputs  # noqa: F401 - run_inputs: fixture

from covidct.batch.validation import validate_batch
from covidct.demo import make_faulty_batch
from covidct.report import html_report
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
    return html_report.write_run_report(
        tmp_path_factory.mktemp("run") / "report",
        leaderboard=run_inputs["leaderboard"],
        gate=run_inputs["gate"],
        batches=run_inputs["batches"],
        predictions={"vgg16": predictions["vgg16"], "resnet152": resnet},
        gradcam={"vgg16": folds, "resnet152": {0: _gradcam_png(cams / "resnet152-fold0.png")}},
    )


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
        # the 12-column leaderboard scrolls inside its box, which stays within the page
        box = page.locator(".table-box").filter(has=page.locator("tr.candidate")).first
        width = box.evaluate("e => e.getBoundingClientRect().right")
        assert width <= VIEWPORT["width"]
        assert page.locator("tr.candidate th, thead th").count() >= 12
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
