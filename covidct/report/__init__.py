"""What a run produced, for people.

Modules:

* ``summary``: run summary (leaderboard, decision, quarantined batches, artifact locations); writes
  the run's page
* ``html_report``: one HTML page per run with its pictures

Each public name of these modules is importable from the package (imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.report.html_report import (
        BACKBONE_COLUMN,
        MEAN_SUFFIX,
        REPORT_FILE,
        SD_SUFFIX,
        Picture,
        backbone_pictures,
        batches_html,
        copy_picture,
        fold_confusion_html,
        format_metric,
        gate_html,
        leaderboard_html,
        leaderboard_metrics,
        render_page,
        slug,
        write_run_report,
    )
    from covidct.report.summary import (
        LEADERBOARD_COLUMNS,
        REPORT_FOLDER,
        collect_summary,
        confirmation_lines,
        evidence_lines,
        format_summary,
        leaderboard_text,
        write_picture_report,
        write_summary,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "BACKBONE_COLUMN": "covidct.report.html_report",
    "LEADERBOARD_COLUMNS": "covidct.report.summary",
    "MEAN_SUFFIX": "covidct.report.html_report",
    "Picture": "covidct.report.html_report",
    "REPORT_FILE": "covidct.report.html_report",
    "REPORT_FOLDER": "covidct.report.summary",
    "SD_SUFFIX": "covidct.report.html_report",
    "backbone_pictures": "covidct.report.html_report",
    "batches_html": "covidct.report.html_report",
    "collect_summary": "covidct.report.summary",
    "confirmation_lines": "covidct.report.summary",
    "copy_picture": "covidct.report.html_report",
    "evidence_lines": "covidct.report.summary",
    "fold_confusion_html": "covidct.report.html_report",
    "format_metric": "covidct.report.html_report",
    "format_summary": "covidct.report.summary",
    "gate_html": "covidct.report.html_report",
    "leaderboard_html": "covidct.report.html_report",
    "leaderboard_metrics": "covidct.report.html_report",
    "leaderboard_text": "covidct.report.summary",
    "render_page": "covidct.report.html_report",
    "slug": "covidct.report.html_report",
    "write_picture_report": "covidct.report.summary",
    "write_run_report": "covidct.report.html_report",
    "write_summary": "covidct.report.summary",
}

__all__ = [
    "BACKBONE_COLUMN",
    "LEADERBOARD_COLUMNS",
    "MEAN_SUFFIX",
    "Picture",
    "REPORT_FILE",
    "REPORT_FOLDER",
    "SD_SUFFIX",
    "backbone_pictures",
    "batches_html",
    "collect_summary",
    "confirmation_lines",
    "copy_picture",
    "evidence_lines",
    "fold_confusion_html",
    "format_metric",
    "format_summary",
    "gate_html",
    "leaderboard_html",
    "leaderboard_metrics",
    "leaderboard_text",
    "render_page",
    "slug",
    "write_picture_report",
    "write_run_report",
    "write_summary",
]


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
