"""The Data Docs pages of a hostile batch, opened in a real headless Chromium (issue 32 item
3): no script runs (title unchanged, no dialog), no request leaves the page, the hostile
values show as text and the index lists every validation without a network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chromium import browser_page, requires_chromium
from conftest import BatchFactory

from covidct import schema
from covidct.batch.validation import validate_batch

pytestmark = requires_chromium

TITLE = "Data documentation compiled by Great Expectations"
FOLDER = "<img src=x onerror=alert(document.domain)>"
PATIENT = "\"><script>document.title='pwned';alert(1)</script>"
SEX = "<img src=https://example.invalid/beacon.png>"
SOURCE = "<svg onload=\"document.title='pwned'\">"


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Validate a batch whose patient folder, Patient_details.csv id and SEX, and batch.json
    source hold markup; return its Data Docs folder."""
    factory = BatchFactory(tmp_path_factory.mktemp("hostile"))
    batch = factory.write(patients={"patient1": "Positive", "patient2": "Negative"})
    (batch / "patient2").rename(batch / FOLDER)
    details = batch / schema.PATIENT_DETAILS
    text = details.read_text().replace("patient2,F", f'"{PATIENT.replace(chr(34), 2 * chr(34))}",F')
    details.write_text(text.replace("patient1,F", f"patient1,{SEX}"))
    (batch / schema.BATCH_INFO).write_text(json.dumps({"source": SOURCE}))
    report = tmp_path_factory.mktemp("report")
    verdict = validate_batch(batch, report_dir=report, progress=False)
    assert not verdict.passed
    return report / "data_docs"


def _open(page: Any, path: Path) -> dict[str, Any]:
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_timeout(300)  # time for an onerror/onload handler to fire
    return {
        "title": page.title(),
        "text": page.locator("body").inner_text(),
        "others": [url for url in requests if url != path.resolve().as_uri()],
        "dialogs": dialogs,
        "links": page.locator("a[href^='validations/']").count(),
    }


def test_the_pages_hold_the_hostile_values(docs: Path) -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in docs.rglob("*.html"))
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;" in text  # the CSV id, escaped
    assert "&lt;img src=https://example.invalid/beacon.png&gt;" in text  # SEX, escaped


def test_no_script_runs_and_nothing_is_fetched_in_chromium(docs: Path) -> None:
    pages = sorted(docs.rglob("*.html"))
    assert len(pages) == 9  # the index, four validations, four suites
    shown = []
    for path in pages:
        with browser_page() as page:
            facts = _open(page, path)
        assert facts["dialogs"] == [], (path, facts["dialogs"])
        assert facts["others"] == [], (path, facts["others"])
        assert facts["title"] == TITLE, (path, facts["title"])
        shown.append(facts["text"])
    everything = "\n".join(shown)
    assert "<script>document.title='pwned';alert(1)</script>" in everything  # as text
    assert SEX in everything


def test_the_index_lists_every_validation_offline(docs: Path) -> None:
    with browser_page() as page:
        facts = _open(page, docs / "index.html")
    assert facts["links"] == 4 and facts["others"] == []
    for suite in ("covidct_slices", "covidct_patients", "covidct_batch", "covidct_layout"):
        assert suite in facts["text"]
    assert "failed" in facts["text"]
