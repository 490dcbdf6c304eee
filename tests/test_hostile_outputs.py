"""Everything we write is safe to open (issue 32 item 3), as properties: hostile strings
(markup, formula starts, Slack mentions, control characters, look-alike and fullwidth forms,
anything hypothesis draws) fed to every CSV writer, alert formatter and to the Data Docs
pages leave no formula-leading text cell, no raw markup and no channel markup.

The page renderers (the run report, the validation summary) are checked as a property in
``tests/report/test_hostile_pages.py``; the model card in its own tests."""

from __future__ import annotations

import csv
import io
import json
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from covidct.batch.checks import Table
from covidct.batch.contract import write_patient_details
from covidct.batch.data_docs import DOCS_CSP, escape_markup, inert_page
from covidct.batch.expectations import ExpectationRunner, layout_expectations
from covidct.promotion.alerts import Alert, AlertKind, JsonlNotifier, Severity, read_alerts
from covidct.safe_csv import FORMULA_PREFIXES, csv_text, write_csv

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
if str(PLUGINS) not in sys.path:  # Airflow puts plugins/ on sys.path; do the same here
    sys.path.insert(0, str(PLUGINS))

import covidct_alerting  # noqa: E402

#: The strings of the trial, then anything hypothesis draws behind a dangerous start.
KNOWN = [
    "<script>document.title='pwned'</script>",
    '"><img src=x onerror="document.title=1">',
    "<img/onerror=alert(1) src=x>",
    "<scr<script></script>ipt>alert(1)</script>",
    "<script>alert(1)",
    "<svg onload=alert(1)>",
    '<meta http-equiv="refresh" content="0;url=https://example.invalid/">',
    "<iframe src=https://example.invalid/></iframe>",
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "<!channel>",
    "<!here|here>",
    "<@U123|boss>",
    "a & b < c > d",
    "\u0430dmin",  # Cyrillic a
    "\uff21\uff22",  # fullwidth AB
    "\u202eevil",  # right-to-left override
    "line\nbreak",
    "Subject: x\r\nBcc: all@example.org",
]
DANGEROUS_START = st.sampled_from(["=", "+", "-", "@", "\t", "\r", "<", '"><', "<!", "&"])
HOSTILE = st.one_of(
    st.sampled_from(KNOWN),
    st.builds(lambda start, rest: start + rest, DANGEROUS_START, st.text(max_size=40)),
    st.text(alphabet=st.sampled_from(list("<>&\"'=+-@!|/ \t\r\nab1") + ["\u2028"]), max_size=30),
)
EXAMPLES = settings(max_examples=80, deadline=None)


def _cells(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _formula_free(cell: str) -> bool:
    if not cell.startswith(FORMULA_PREFIXES):
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------ CSV writers


@EXAMPLES
@given(text=HOSTILE, label=HOSTILE)
def test_csv_text_never_starts_a_text_cell_with_a_formula(text: str, label: str) -> None:
    frame = pd.DataFrame({"patient": [text, "ok"], label: [text, label], "n": [-1.5, 2.0]})
    rows = _cells(csv_text(frame, index=False))
    assert all(_formula_free(cell) for row in rows for cell in row), rows
    assert pd.read_csv(io.StringIO(csv_text(frame)))["n"].tolist() == [-1.5, 2.0]


@EXAMPLES
@given(text=HOSTILE)
def test_written_csv_files_never_start_a_text_cell_with_a_formula(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    folder = tmp_path_factory.mktemp("csv")
    index = pd.Index([text, "b"], name=text)
    write_csv(pd.DataFrame({"x": [text, text]}, index=index), folder / "a.csv", index=True)
    rows = _cells((folder / "a.csv").read_text(encoding="utf-8"))
    assert all(_formula_free(cell) for row in rows for cell in row), rows


@EXAMPLES
@given(patient=HOSTILE, sex=HOSTILE)
def test_patient_details_writer_never_starts_a_text_cell_with_a_formula(
    tmp_path_factory: pytest.TempPathFactory, patient: str, sex: str
) -> None:
    row = {"Patient ID": patient, "SEX": sex, "COVID-19 Infection": "Positive"}
    path = tmp_path_factory.mktemp("details") / "Patient_details.csv"
    try:
        write_patient_details(path, [row])
    except ValueError:  # refused (line break, empty id): nothing unsafe written
        return
    rows = _cells(path.read_text(encoding="utf-8"))
    assert all(_formula_free(cell) for row in rows for cell in row), rows


# --------------------------------------------------------------------------- alert formatters


def _alert(text: str) -> Alert:
    return Alert(
        AlertKind.BATCH_QUARANTINED,
        Severity.WARNING,
        f"batch {text} quarantined",
        details={"batch": text, text: 1},
        dag_id=text,
        run_id=text,
    )


@EXAMPLES
@given(text=HOSTILE)
def test_slack_texts_carry_no_channel_markup(text: str) -> None:
    alert = _alert(text)  # no links: every "<" would be the input's
    rendered = [covidct_alerting.slack_text(alert)] + [
        block["text"]["text"] for block in covidct_alerting.slack_blocks(alert)
    ]
    for shown in rendered:
        assert "<" not in shown and ">" not in shown, shown
        bare = shown.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
        assert "&" not in bare, shown


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def _tags(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser.tags


@EXAMPLES
@given(text=HOSTILE)
def test_alert_mail_escapes_everything_and_its_subject_is_one_line(text: str) -> None:
    alert = _alert(text)
    tags = _tags(covidct_alerting.email_html(alert))
    assert {tag for tag, _ in tags} <= {"h3", "p", "ul", "li", "a", "pre"}
    assert all(name == "href" for _, attrs in tags for name, _ in attrs)
    assert len(alert.title.splitlines()) == 1 and alert.title.isprintable(), repr(alert.title)


@EXAMPLES
@given(text=HOSTILE)
def test_the_alert_line_round_trips(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("alerts") / "alerts.jsonl"
    alert = _alert(text)
    JsonlNotifier(path).send(alert)
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["summary"] == alert.summary
    assert read_alerts(path)[0]["details"] == {"batch": text, text: 1}


# -------------------------------------------------------------------------------- Data Docs

PAGE = (
    "<!DOCTYPE html><html><head><title>Data docs</title></head><body>"
    '<button onclick="x()">Clear</button><div class="cell">{}</div>'
    '<script src="https://cdn.example/jquery.js"></script></body></html>'
)


def _assert_inert(page: str) -> None:
    tags = _tags(page)
    names = [tag for tag, _ in tags]
    assert "script" not in names and "link" not in names, names
    assert not [a for _, attrs in tags for a, _ in attrs if a.startswith("on")], tags
    policies = [attrs for tag, attrs in tags if tag == "meta" and "http-equiv" in dict(attrs)]
    assert policies == [[("http-equiv", "Content-Security-Policy"), ("content", DOCS_CSP)]]
    first = next((tag, attrs) for tag, attrs in tags if tag not in ("html", "head"))
    assert first == ("meta", policies[0])  # the policy comes before anything else
    assert "<script" not in page.lower()


@EXAMPLES
@given(text=HOSTILE)
def test_escaped_values_carry_no_markup(text: str) -> None:
    shown = escape_markup({"entry": [text], text: (text,)})
    flat = json.dumps(shown)
    for char in "<>'":
        assert char not in flat
    _assert_inert(inert_page(PAGE.format(shown["entry"][0]), "td {}"))


@EXAMPLES
@given(text=HOSTILE)
def test_a_page_holding_raw_markup_is_made_inert(text: str) -> None:
    """Layer 2 alone (as if layer 1 had missed a field): no script, no event attribute, no
    link or refresh, and the policy comes first."""
    _assert_inert(inert_page(PAGE.format(text), "td {}"))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry=HOSTILE, problem=HOSTILE)
def test_data_docs_of_hostile_values_hold_no_raw_markup(
    tmp_path_factory: pytest.TempPathFactory, entry: str, problem: str
) -> None:
    """Through Great Expectations itself: a layout table whose failing row names the hostile
    strings, rendered into Data Docs."""
    docs = tmp_path_factory.mktemp("docs")
    runner = ExpectationRunner(docs)
    frame = pd.DataFrame(
        {"entry": [entry, "fine"], "problem": [problem, None], "over_limit": [None, None]}
    )
    failures = runner.run(Table.LAYOUT, frame, layout_expectations())
    assert failures and entry in failures[0].names  # our own records keep the raw name
    index = runner.build_docs()
    assert index is not None
    pages = sorted(docs.rglob("*.html"))
    assert len(pages) == 3  # the index, the validation and the suite page
    for page in pages:
        text = page.read_text(encoding="utf-8")
        _assert_inert(text)
        for raw in (entry, problem):
            if raw in KNOWN and "<" in raw:  # distinctive: GE's own markup holds none of them
                assert raw not in text
    assert 'href="validations/covidct_layout/' in index.read_text(encoding="utf-8")
