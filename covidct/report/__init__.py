"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.report.html_report import (
        BACKBONE_COLUMN as BACKBONE_COLUMN,
    )
    from covidct.report.html_report import (
        MEAN_SUFFIX as MEAN_SUFFIX,
    )
    from covidct.report.html_report import (
        REPORT_FILE as REPORT_FILE,
    )
    from covidct.report.html_report import (
        SD_SUFFIX as SD_SUFFIX,
    )
    from covidct.report.html_report import (
        Picture as Picture,
    )
    from covidct.report.html_report import (
        backbone_pictures as backbone_pictures,
    )
    from covidct.report.html_report import (
        batches_html as batches_html,
    )
    from covidct.report.html_report import (
        copy_picture as copy_picture,
    )
    from covidct.report.html_report import (
        fold_confusion_html as fold_confusion_html,
    )
    from covidct.report.html_report import (
        format_metric as format_metric,
    )
    from covidct.report.html_report import (
        gate_html as gate_html,
    )
    from covidct.report.html_report import (
        leaderboard_html as leaderboard_html,
    )
    from covidct.report.html_report import (
        leaderboard_metrics as leaderboard_metrics,
    )
    from covidct.report.html_report import (
        render_page as render_page,
    )
    from covidct.report.html_report import (
        slug as slug,
    )
    from covidct.report.html_report import (
        write_run_report as write_run_report,
    )
    from covidct.report.summary import (
        LEADERBOARD_COLUMNS as LEADERBOARD_COLUMNS,
    )
    from covidct.report.summary import (
        REPORT_FOLDER as REPORT_FOLDER,
    )
    from covidct.report.summary import (
        collect_summary as collect_summary,
    )
    from covidct.report.summary import (
        confirmation_lines as confirmation_lines,
    )
    from covidct.report.summary import (
        evidence_lines as evidence_lines,
    )
    from covidct.report.summary import (
        format_summary as format_summary,
    )
    from covidct.report.summary import (
        leaderboard_text as leaderboard_text,
    )
    from covidct.report.summary import (
        write_picture_report as write_picture_report,
    )
    from covidct.report.summary import (
        write_summary as write_summary,
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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
