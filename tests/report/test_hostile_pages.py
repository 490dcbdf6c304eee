"""Every page renderer is safe to open (issue 32 item 3), as a property: a hostile string put
where input reaches a page (a batch id, a source, a backbone name, a reason, a subgroup, an
alias detail, a page title) adds no markup. The page made with the hostile string has exactly
the tags and attribute names (as a multiset: a name may sort elsewhere) of the page made
with a plain word in the same place, and no
``<script``.

The hostile strings are those of ``tests/test_hostile_outputs.py`` (the CSV writers, alerts and
Data Docs pages); the renderers are the real ones, templates included (``covidct.templating``).
The model card, which needs a registry, is checked in ``tests/evaluation/test_confirmation.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings

from covidct import pipeline
from covidct.batch.checks import BatchVerdict, ValidationPolicy
from covidct.batch.validation_report import summary_html
from covidct.evaluation import subgroups
from covidct.report import evidence_html, html_report, wording
from tests.test_hostile_outputs import HOSTILE

PLAIN = "plainword"
EXAMPLES = settings(max_examples=60, deadline=None)


class _Markup(HTMLParser):
    """Start tags with their attribute names, in order (values aside: a slug may differ)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, tuple(sorted(name for name, _ in attrs))))


def _markup(page: str) -> list[tuple[str, tuple[str, ...]]]:
    parser = _Markup()
    parser.feed(page)
    parser.close()
    return parser.tags


def _metrics(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    rows = [
        (f"p{patient}", "covid" if patient < 3 else "normal", float(rng.uniform(0.05, 0.95)))
        for patient in range(8)
        for _ in range(3)
    ]
    frame = pd.DataFrame(rows, columns=["patient_id", "y_true", "p_covid"])
    frame = frame.assign(slice_id=[f"s{i}" for i in range(len(frame))], patient_threshold=0.5)
    return pipeline.headline_metrics(frame, None)


METRICS = [_metrics(seed) for seed in range(2)]


def _leaderboard(name: str) -> str:
    evaluations = [
        {"backbone": backbone, "fold": fold, "metrics": METRICS[fold]}
        for backbone in (name, "resnet152")
        for fold in range(2)
    ]
    return str(html_report.leaderboard_html(pipeline.leaderboard(evaluations), name))


def _gate(text: str) -> str:
    gate = {
        "verdict": {"passed": False, "status": "refused", "reasons": [text, "second reason"]},
        "candidate": text,
        "version": text,
        "champion_before": text,
        "champion_after": None,
        "registry_disagreements": [
            {"alias": text, "registry_version": text, "ledger_version": "1", "detail": text}
        ],
        "notes": [text],
    }
    return str(html_report.gate_html(gate))


def _batches(text: str) -> str:
    batches = [{"batch_id": text, "passed": False, "reasons": [text]}]
    return str(html_report.batches_html(batches))


def _validation_page(text: str) -> str:
    verdict = BatchVerdict(
        batch_id=text, passed=False, reasons=(text,), failures=(), excluded_slices=(text,),
        n_slices=3, n_patients=1, source=text, policy=ValidationPolicy(),
    )  # fmt: skip
    return summary_html(verdict, None, Path("."))


def _subgroup_rows() -> pd.DataFrame:
    """A real subgroup table (two sources of 10 patients each), computed once."""
    rows = [
        {"patient_id": f"{source}/p{index}", "y_true": "covid" if index % 2 else "normal",
         "p_covid": 0.8 if index % 2 else 0.3, "slice_id": f"{source}/p{index}/0",
         "patient_threshold": 0.5}
        for source in ("a", "b")
        for index in range(10)
    ]  # fmt: skip
    return subgroups.subgroup_table(pd.DataFrame(rows), n_boot=20, min_patients=5)


SUBGROUPS = _subgroup_rows()


def _subgroups(text: str) -> str:
    table = SUBGROUPS.copy()
    # a name no other subgroup has ("a" is a source of the table): groups stay as they were
    name = text if text not in set(table["subgroup"].astype(str)) else f"{text}!"
    table.loc[table["subgroup"] == table["subgroup"].iloc[-1], "subgroup"] = name
    return str(evidence_html.subgroup_table_html(table, title=text))


def _page(text: str) -> str:
    return str(html_report.render_page(text, [(text, str(_batches(text)))]))


def _models(text: str) -> str:
    gate = {"models": {text: {"metrics": {"image_roc_auc": 0.5}, "version": text}}}
    return str(wording.models_html(gate))


RENDERERS: dict[str, Callable[[str], str]] = {
    "leaderboard": _leaderboard,
    "gate": _gate,
    "batches": _batches,
    "validation page": _validation_page,
    "subgroup table": _subgroups,
    "page and title": _page,
    "model sentences": _models,
}


def _same_markup(render: Callable[[str], str], text: str) -> None:
    hostile, plain = render(text), render(PLAIN)
    assert "<script" not in hostile.lower()
    # as multisets: a name may sort elsewhere in a table (rows move, no tag is added)
    assert Counter(_markup(hostile)) == Counter(_markup(plain)), text


@EXAMPLES
@given(text=HOSTILE.filter(lambda s: s.strip() != ""))
def test_every_renderer_adds_no_markup_for_hostile_input(text: str) -> None:
    for name, render in RENDERERS.items():
        try:
            _same_markup(render, text)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from error


def test_the_check_sees_markup_that_gets_through() -> None:
    """The property can fail: a renderer that joins its input into HTML is caught."""

    def leaky(text: str) -> str:
        return f"<p>{text}</p>"

    try:
        _same_markup(leaky, "<img src=x onerror=alert(1)>")
    except AssertionError:
        return
    raise AssertionError("a leaky renderer passed")
