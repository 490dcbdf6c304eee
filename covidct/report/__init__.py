"""What a run produced, for people.

Modules:

* ``summary``: run summary (leaderboard, decision, quarantined batches, artifact locations); writes
  the run's page
* ``html_report``: one HTML page per run with its pictures
* ``evidence_html``: HTML of a run's evidence (drift, calibration, subgroups, serving check)
* ``gradcam_report``: Grad-CAM panels of every fold, outcome kinds shown and absent
* ``model_card``: model card and change record of a registered version (``covidct model-card``)

Each public name of these modules is importable from the package (imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.report.evidence_html import (
        SUBGROUP_COLUMNS,
        calibration_html,
        drift_html,
        escape,
        interval,
        number,
        run_evidence_html,
        serving_html,
        subgroup_rule_html,
        subgroup_table_html,
    )
    from covidct.report.gradcam_report import (
        OUTCOMES,
        GradCams,
        gradcam_html,
        outcome_counts,
    )
    from covidct.report.html_report import (
        BACKBONE_COLUMN,
        MEAN_SUFFIX,
        REPORT_FILE,
        SD_SUFFIX,
        UNITS,
        Picture,
        backbone_pictures,
        batches_html,
        copy_picture,
        fold_confusion_html,
        format_cell,
        format_difference,
        format_metric,
        gate_html,
        leaderboard_html,
        leaderboard_metrics,
        render_page,
        slug,
        table_html,
        write_run_report,
    )
    from covidct.report.model_card import (
        CARD_FILE,
        CARD_SECTIONS,
        CARD_TAG,
        INTENDED_USE,
        OUTCOME_KINDS,
        card_gradcam_html,
        card_key,
        change_html,
        lineage_html,
        publish_cards,
        render_card,
        store_model_card,
        write_model_card,
    )
    from covidct.report.summary import (
        LEADERBOARD_COLUMNS,
        REPORT_FOLDER,
        NoSuchRunError,
        collect_summary,
        confirmation_lines,
        evidence_lines,
        find_run,
        format_summary,
        latest_trained_run,
        leaderboard_text,
        stored_summaries,
        trained_something,
        write_picture_report,
        write_summary,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "BACKBONE_COLUMN": "covidct.report.html_report",
    "CARD_FILE": "covidct.report.model_card",
    "CARD_SECTIONS": "covidct.report.model_card",
    "CARD_TAG": "covidct.report.model_card",
    "GradCams": "covidct.report.gradcam_report",
    "INTENDED_USE": "covidct.report.model_card",
    "LEADERBOARD_COLUMNS": "covidct.report.summary",
    "MEAN_SUFFIX": "covidct.report.html_report",
    "NoSuchRunError": "covidct.report.summary",
    "OUTCOMES": "covidct.report.gradcam_report",
    "OUTCOME_KINDS": "covidct.report.model_card",
    "Picture": "covidct.report.html_report",
    "REPORT_FILE": "covidct.report.html_report",
    "REPORT_FOLDER": "covidct.report.summary",
    "SD_SUFFIX": "covidct.report.html_report",
    "SUBGROUP_COLUMNS": "covidct.report.evidence_html",
    "UNITS": "covidct.report.html_report",
    "backbone_pictures": "covidct.report.html_report",
    "batches_html": "covidct.report.html_report",
    "calibration_html": "covidct.report.evidence_html",
    "card_gradcam_html": "covidct.report.model_card",
    "card_key": "covidct.report.model_card",
    "change_html": "covidct.report.model_card",
    "collect_summary": "covidct.report.summary",
    "confirmation_lines": "covidct.report.summary",
    "copy_picture": "covidct.report.html_report",
    "drift_html": "covidct.report.evidence_html",
    "escape": "covidct.report.evidence_html",
    "evidence_lines": "covidct.report.summary",
    "find_run": "covidct.report.summary",
    "fold_confusion_html": "covidct.report.html_report",
    "format_cell": "covidct.report.html_report",
    "format_difference": "covidct.report.html_report",
    "format_metric": "covidct.report.html_report",
    "format_summary": "covidct.report.summary",
    "gate_html": "covidct.report.html_report",
    "gradcam_html": "covidct.report.gradcam_report",
    "interval": "covidct.report.evidence_html",
    "latest_trained_run": "covidct.report.summary",
    "leaderboard_html": "covidct.report.html_report",
    "leaderboard_metrics": "covidct.report.html_report",
    "leaderboard_text": "covidct.report.summary",
    "lineage_html": "covidct.report.model_card",
    "number": "covidct.report.evidence_html",
    "outcome_counts": "covidct.report.gradcam_report",
    "publish_cards": "covidct.report.model_card",
    "render_card": "covidct.report.model_card",
    "render_page": "covidct.report.html_report",
    "run_evidence_html": "covidct.report.evidence_html",
    "serving_html": "covidct.report.evidence_html",
    "slug": "covidct.report.html_report",
    "store_model_card": "covidct.report.model_card",
    "stored_summaries": "covidct.report.summary",
    "subgroup_rule_html": "covidct.report.evidence_html",
    "subgroup_table_html": "covidct.report.evidence_html",
    "table_html": "covidct.report.html_report",
    "trained_something": "covidct.report.summary",
    "write_model_card": "covidct.report.model_card",
    "write_picture_report": "covidct.report.summary",
    "write_run_report": "covidct.report.html_report",
    "write_summary": "covidct.report.summary",
}

__all__ = [
    "BACKBONE_COLUMN",
    "CARD_FILE",
    "CARD_SECTIONS",
    "CARD_TAG",
    "GradCams",
    "INTENDED_USE",
    "LEADERBOARD_COLUMNS",
    "MEAN_SUFFIX",
    "NoSuchRunError",
    "OUTCOMES",
    "OUTCOME_KINDS",
    "Picture",
    "REPORT_FILE",
    "REPORT_FOLDER",
    "SD_SUFFIX",
    "SUBGROUP_COLUMNS",
    "UNITS",
    "backbone_pictures",
    "batches_html",
    "calibration_html",
    "card_gradcam_html",
    "card_key",
    "change_html",
    "collect_summary",
    "confirmation_lines",
    "copy_picture",
    "drift_html",
    "escape",
    "evidence_lines",
    "find_run",
    "fold_confusion_html",
    "format_cell",
    "format_difference",
    "format_metric",
    "format_summary",
    "gate_html",
    "gradcam_html",
    "interval",
    "latest_trained_run",
    "leaderboard_html",
    "leaderboard_metrics",
    "leaderboard_text",
    "lineage_html",
    "number",
    "outcome_counts",
    "publish_cards",
    "render_card",
    "render_page",
    "run_evidence_html",
    "serving_html",
    "slug",
    "store_model_card",
    "stored_summaries",
    "subgroup_rule_html",
    "subgroup_table_html",
    "table_html",
    "trained_something",
    "write_model_card",
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
