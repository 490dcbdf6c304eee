"""Tests of covidct.report.html_report: the per-run HTML page with its leaderboard, gate and
pictures.

The inputs come from the real code path: leaderboard by ``covidct.pipeline.leaderboard`` over
per-fold ``headline_metrics``, the gate verdict by ``covidct.promotion.gate`` with the paired
bootstrap of
``covidct.evaluation``. A headless Chromium screenshot checks the page renders, when Chromium is
installed at /usr/bin/chromium.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape
from matplotlib.figure import Figure
from PIL import Image

from covidct import evaluation, pipeline
from covidct.config import GateSettings
from covidct.promotion import gate
from covidct.report import gradcam_report, html_report

CHROMIUM = Path("/usr/bin/chromium")
BACKBONES = ("resnet152", "vgg16")
FOLDS = 3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fold_predictions(backbone_shift: float, fold: int) -> pd.DataFrame:
    """4 covid and 8 normal patients x 6 slices, scores separated by label plus noise."""
    rng = np.random.default_rng(100 * fold + 7)
    rows = []
    for patient in range(12):
        label = "covid" if patient < 4 else "normal"
        centre = (0.7 if label == "covid" else 0.3) + backbone_shift
        for index in range(6):
            score = float(np.clip(centre + rng.normal(0, 0.2), 0.001, 0.999))
            rows.append((f"fold-{fold}/negin/p{patient}", label, score, f"p{patient}/IM{index}"))
    frame = pd.DataFrame(rows, columns=["patient_id", "y_true", "p_covid", "slice_id"])
    return frame.assign(fold=fold, patient_threshold=0.5)


@pytest.fixture(scope="module")
def run_inputs() -> dict:
    shifts = {"resnet152": 0.0, "vgg16": 0.08}
    predictions, evaluations = {}, []
    for backbone in BACKBONES:
        folds = [_fold_predictions(shifts[backbone], fold) for fold in range(FOLDS)]
        for fold, frame in enumerate(folds):
            metrics = pipeline.headline_metrics(frame, None)
            evaluations.append({"backbone": backbone, "fold": fold, "metrics": metrics})
        predictions[backbone] = pd.concat(folds, ignore_index=True)
    # a rate as the primary metric (the gate's is image ROC AUC since issue 31): the report shows
    # its difference in percentage points
    settings = GateSettings(n_boot=200, primary_metric="patient_balanced_accuracy")

    def bootstrap(a: pd.DataFrame, b: pd.DataFrame, metric: str) -> tuple[float, float, float]:
        return evaluation.paired_bootstrap(a, b, metric, n_boot=200, seed=0).as_tuple()

    comparison = gate.compare(
        "baseline", "resnet152", predictions["vgg16"], predictions["resnet152"],
        settings=settings, paired_bootstrap=bootstrap,
    )  # fmt: skip
    verdict = gate.decide("vgg16", {"baseline": comparison}, has_champion=False, settings=settings)
    gate_record = {
        "verdict": verdict.to_dict(),
        "candidate": "vgg16",
        "version": "4",
        "champion_before": None,
        "champion_after": "4" if verdict.passed else None,
    }
    batches = [
        {"batch_id": "batch-2026-11-23", "passed": True, "reasons": []},
        {
            "batch_id": "batch<b>bad</b>",
            "passed": False,
            "reasons": ["3 slices are not uint16 & 2-D"],
        },
    ]
    return {
        "leaderboard": pipeline.leaderboard(evaluations),
        "gate": gate_record,
        "comparison": comparison,
        "batches": batches,
        "predictions": predictions,
    }


def _gradcam_png(path: Path) -> Path:
    figure = Figure(figsize=(3, 2))
    figure.add_subplot().imshow(np.random.default_rng(0).random((16, 16)), cmap="jet")
    figure.savefig(path, format="png")
    return path


@pytest.fixture(scope="module")
def report(run_inputs, tmp_path_factory) -> Path:
    source = _gradcam_png(tmp_path_factory.mktemp("cams") / "cam.png")
    out_dir = tmp_path_factory.mktemp("run") / "report"
    return html_report.write_run_report(
        out_dir,
        leaderboard=run_inputs["leaderboard"],
        gate=run_inputs["gate"],
        batches=run_inputs["batches"],
        predictions=run_inputs["predictions"],
        gradcam={"vgg16": source},
    )


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values["src"] or "")
        self.urls.extend(v or "" for k, v in attrs if k in ("src", "href"))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _expected_cell(metric: str, mean: float, sd: float) -> str:
    """Hand rule of the docstring: AUCs and MCC as fractions (4 d.p.), rates in percent."""
    fraction = metric.endswith(("roc_auc", "pr_auc", "mcc"))

    def one(value: float) -> str:
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.4f}" if fraction else f"{100 * value:.2f}"

    return f"{one(mean)} ± {one(sd)}"


def test_report_links_only_existing_pngs(report):
    links = _parse(report)
    expected = {f"{b}-{kind}.png" for b in BACKBONES for kind in ("confusion", "roc", "pr")}
    assert set(links.images) == expected | {"vgg16-gradcam.png"}
    for name in links.images:
        png = report.parent / name
        assert png.is_file() and png.read_bytes()[:8] == PNG_MAGIC
        pixels = np.asarray(Image.open(png).convert("RGB"), dtype=float)
        assert pixels.shape[0] > 100 and pixels.std() > 10, name
    assert not [url for url in links.urls if "://" in url or url.startswith("/")]


def test_report_contains_every_leaderboard_number(report, run_inputs):
    text = " ".join(_parse(report).text)
    board = run_inputs["leaderboard"]
    metrics = [c[: -len("_mean")] for c in board.columns if c.endswith("_mean")]
    assert len(metrics) >= 8
    for backbone, row in board.iterrows():
        assert backbone in text
        for metric in metrics:
            cell = _expected_cell(metric, row[f"{metric}_mean"], row[f"{metric}_sd"])
            assert cell in text, (backbone, metric, cell)


def test_report_shows_gate_batches_and_escapes_text(report, run_inputs):
    page = report.read_text(encoding="utf-8")
    comparison = run_inputs["comparison"]
    assert comparison.metric.startswith("patient_balanced")  # a rate: percentage points
    points = [
        f"{100 * v:+.2f}" for v in (comparison.difference, comparison.ci_low, comparison.ci_high)
    ]
    assert f"{points[0]} [{points[1]}, {points[2]}]" in page
    for reason in run_inputs["gate"]["verdict"]["reasons"]:
        assert str(escape(reason)) in page  # the templates' escaping (markupsafe)
    assert "batch&lt;b&gt;bad&lt;/b&gt;" in page and "<b>bad</b>" not in page
    assert "uint16 &amp; 2-D" in page and "QUARANTINED" in page
    assert '<tr class="candidate"><td>vgg16</td>' in page


def test_fold_confusion_rows_sum_to_each_fold(report, run_inputs):
    page = report.read_text(encoding="utf-8")
    for fold, group in run_inputs["predictions"]["vgg16"].groupby("fold"):
        called = group["p_covid"] > 0.5
        covid = group["y_true"] == "covid"
        counts = [(covid & called).sum(), (covid & ~called).sum()]
        counts += [(~covid & called).sum(), (~covid & ~called).sum()]
        assert f"<td>{fold}</td>" + "".join(f"<td>{n}</td>" for n in counts) in page


def test_empty_run_still_writes_a_page(tmp_path):
    path = html_report.write_run_report(
        tmp_path, leaderboard=pd.DataFrame(), gate=None, batches=[], predictions={}
    )
    page = path.read_text(encoding="utf-8")
    for phrase in (
        "No new batch",
        "No model was trained",
        "No promotion gate",
        "No test predictions",
    ):
        assert phrase in page
    assert _parse(path).images == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"gradcam": {"vgg16": Path("/nonexistent/cam.png")}}, FileNotFoundError, "cam.png"),
        (
            {"predictions": {"broken": pd.DataFrame({"patient_id": ["a"], "y_true": ["x"]})}},
            ValueError,
            "broken",
        ),
    ],
)
def test_bad_inputs_raise(run_inputs, tmp_path, kwargs, error, message):
    arguments = {
        "leaderboard": run_inputs["leaderboard"],
        "gate": None,
        "batches": [],
        "predictions": {"vgg16": run_inputs["predictions"]["vgg16"]},
    } | kwargs
    with pytest.raises(error, match=message):
        html_report.write_run_report(tmp_path, **arguments)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("image_covid_sensitivity", 0.956178, "95.62"),
        ("patient_balanced_accuracy", 1.0, "100.00"),
        ("image_roc_auc", 0.97312, "0.9731"),
        ("mcc", -0.5, "-0.5000"),
        ("image_accuracy", float("nan"), "n/a"),
        ("image_covid_precision", None, "n/a"),  # undefined: null in gate.json
        ("folds", 5, "5"),
        ("note", "text", "text"),
    ],
)
def test_format_metric(name, value, expected):
    assert html_report.format_metric(name, value) == expected


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is not installed (apt-get install chromium); HTML checked without it",
)
def test_headless_chromium_screenshot_is_not_blank(report, tmp_path):
    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--user-data-dir={profile}", "--window-size=1280,3000", f"--screenshot={shot}",
        report.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert pixels.shape[:2] == (3000, 1280)
    not_white = (pixels < 245).any(axis=2).mean()
    colourful = (pixels.max(axis=2) - pixels.min(axis=2) > 60).mean()
    assert not_white > 0.05, f"only {not_white:.1%} of the screenshot is not white"
    assert colourful > 0.005, f"only {colourful:.2%} coloured pixels: pictures not shown?"
    shutil.rmtree(profile, ignore_errors=True)


def test_gate_section_shows_the_sequestered_confirmation() -> None:
    gate_record = {
        "candidate": "resnet50", "version": "7", "champion_before": "3", "champion_after": "3",
        "verdict": {"passed": False, "status": "refuse", "reasons": ["why"], "comparisons": []},
        "sequestered_patients": 48, "sequestered_covid_patients": 12,
        "evaluated_model_digest": "abc", "registered_model_digest": "abc",
        "candidate_primary": {"metric": "patient_balanced_accuracy", "value": 0.8125,
                              "ci_low": 0.7, "ci_high": 0.9},
        "models": {
            "resnet50": {"version": "7", "patients": 48, "overlap_patients": 0,
                         "metrics": {"patient_balanced_accuracy": 0.8125}},
            "champion": {"version": "3", "patients": 40, "overlap_patients": 0, "metrics": {}},
        },
    }  # fmt: skip
    page = html_report.gate_html(gate_record)
    assert "Confirmed on <b>48</b> sequestered patients (12 COVID)" in page
    assert "81.25 (95% CI 70.00 to 90.00)" in page  # a rate: percent, as in the leaderboard
    assert "Model evaluated = model registered: yes" in page
    assert "resnet50 v7" in page and "champion v3" in page
    altered = {**gate_record, "registered_model_digest": "abd"}
    assert "Model evaluated = model registered: NO" in html_report.gate_html(altered)


def test_single_fold_cell_is_not_labelled_a_mean(run_inputs):
    board = run_inputs["leaderboard"].copy()
    board.loc["vgg16", "image_roc_auc_sd"] = float("nan")
    board.loc["vgg16", "image_covid_sensitivity_sd"] = float("nan")
    page = html_report.leaderboard_html(board)
    row = page.split("<td>vgg16</td>")[1].split("</tr>")[0]
    auc = board.loc["vgg16", "image_roc_auc_mean"]
    sensitivity = board.loc["vgg16", "image_covid_sensitivity_mean"]
    assert f"{auc:.4f} (1 fold)" in row and f"{100 * sensitivity:.2f} (1 fold)" in row
    assert "± n/a" not in row and html_report.UNITS in page


def test_gradcam_per_fold_names_present_and_absent_outcomes(run_inputs, tmp_path):
    frame = run_inputs["predictions"]["vgg16"].copy()
    # fold 0: every image called COVID (only TP and FP); fold 1: TP, FN, FP, TN
    frame.loc[frame["fold"] == 0, "p_covid"] = 0.9
    cams = {fold: _gradcam_png(tmp_path / f"cam{fold}.png") for fold in (0, 1)}
    (tmp_path / "out").mkdir()
    pictures, note = gradcam_report.gradcam_html(tmp_path / "out", "vgg16", frame, cams)
    assert [p.file for p in pictures] == ["vgg16-gradcam-fold0.png", "vgg16-gradcam-fold1.png"]
    assert "examples of TP, FP; no FN, TN image in this fold" in pictures[0].caption
    assert "examples of TP, FN, FP, TN" in pictures[1].caption
    assert 'data-shown="TP FN FP TN" data-absent=""' in note
    only_fold0 = gradcam_report.gradcam_html(tmp_path / "out", "vgg16", frame, {0: cams[0]})[1]
    assert 'data-absent="FN TN"' in only_fold0 and "No example of FN, TN" in only_fold0


def test_confusion_title_clear_of_the_colour_bar(run_inputs):
    title = "resnet152: confusion matrix, images pooled over folds"
    figure = evaluation.plot_confusion_matrix(run_inputs["predictions"]["vgg16"], title=title)
    renderer = figure.canvas.get_renderer()
    figure.draw_without_rendering()
    heading = figure.get_suptitle() and figure._suptitle.get_window_extent(renderer)
    assert heading, "the title is the figure's, laid out above axes and colour bar"
    for axes in figure.axes:  # the matrix and the colour bar
        box = axes.get_tightbbox(renderer)
        assert box.y1 <= heading.y0 + 1, "a colour bar or axes reaches into the title"
