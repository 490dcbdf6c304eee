"""The Jinja2 templates of every HTML page covidct writes, and the one rule for units and titles.

The run report, the model card and a batch's validation page extend one base layout
(``covidct/templates/base.html``: inline CSS, no script, nothing from the network); each
section is a template under ``templates/parts/``. The environment autoescapes every value
(``autoescape=True``), so a renderer hands its data to :func:`render` and never builds HTML
from strings; an HTML fragment travels between templates as :class:`markupsafe.Markup` (what
:func:`render` returns). A missing variable raises (``StrictUndefined``) and a ``None`` shows
as ``none``, never Python's ``None``.

Units (:data:`UNITS`): rates (accuracy, sensitivity, specificity, precision, F1) in percent,
MCC and the AUCs as fractions. Column titles are words (:func:`metric_title`:
``image_covid_sensitivity`` -> "COVID sensitivity (image)").
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

#: Folder of the templates inside the ``covidct`` package (``covidct/templates``).
TEMPLATE_FOLDER = "templates"
#: The one sentence on units, shown under the leaderboard and by ``covidct report``.
UNITS = "Rates in percent; MCC and AUCs as fractions (-1..1 and 0..1)."

_METRIC_WORDS = {
    "accuracy": "accuracy",
    "covid_accuracy": "COVID accuracy",
    "normal_accuracy": "normal accuracy",
    "covid_sensitivity": "COVID sensitivity",
    "normal_sensitivity": "normal sensitivity",
    "covid_specificity": "COVID specificity",
    "normal_specificity": "normal specificity",
    "covid_precision": "COVID precision",
    "normal_precision": "normal precision",
    "covid_f1": "COVID F1",
    "normal_f1": "normal F1",
    "balanced_accuracy": "balanced accuracy",
    "mcc": "MCC",
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC (COVID)",
}


def _finalize(value: Any) -> Any:
    return "none" if value is None else value


@cache
def environment() -> jinja2.Environment:
    """The shared environment: templates of ``covidct``'s :data:`TEMPLATE_FOLDER`,
    autoescaped, ``StrictUndefined``, ``None`` shown as ``none``."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("covidct", TEMPLATE_FOLDER),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, /, **context: Any) -> Markup:
    """Render template ``name`` (relative to :data:`TEMPLATE_FOLDER`) with ``context``.

    Every value is escaped unless it is :class:`~markupsafe.Markup` (a rendered fragment).
    Raises ``jinja2.TemplateNotFound`` for an unknown name and ``jinja2.UndefinedError`` when
    the template uses a variable that ``context`` lacks.
    """
    return Markup(environment().get_template(name).render(**context))


def table(
    header: Sequence[Any],
    rows: Sequence[Sequence[Any]],
    classes: Sequence[str] = (),
    table_class: str = "",
) -> Markup:
    """A table in the pages' style. Cells are text (escaped) or :class:`Markup` (kept);
    ``classes``: a CSS class per row (shorter than ``rows``: the rest have none)."""
    padded = [classes[index] if index < len(classes) else "" for index in range(len(rows))]
    return render(
        "parts/table.html",
        header=list(header),
        rows=[list(row) for row in rows],
        classes=padded,
        table_class=table_class,
    )


def metric_title(name: str) -> str:
    """Readable title of a metric key: ``image_covid_sensitivity`` -> "COVID sensitivity
    (image)", ``patient_balanced_accuracy`` -> "balanced accuracy (patient)", a bare metric
    (image level) without the unit; an unknown key as it is."""
    for unit in ("image", "patient"):
        prefix = f"{unit}_"
        if name.startswith(prefix) and name[len(prefix) :] in _METRIC_WORDS:
            return f"{_METRIC_WORDS[name[len(prefix) :]]} ({unit})"
    return _METRIC_WORDS.get(name, name)


def metric_unit(name: str) -> str:
    """The unit a metric is shown in (:data:`UNITS`): ``"fraction"`` for MCC and the AUCs,
    ``"percent"`` for a rate."""
    fraction = name.endswith(("roc_auc", "pr_auc", "mcc"))
    return "fraction" if fraction else "percent"
