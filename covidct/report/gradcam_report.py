"""The Grad-CAM part of the run report: one panel per fold, and which outcome kinds it shows.

Each fold's model explains its own test images (:func:`covidct.pipeline.gradcam_png`), so a
kind (TP, FN, FP, TN) missing from one fold's panel can show in another's; the note under the
panels names, per kind, the folds with an example, and says plainly which kinds have none.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from covidct.evaluation import FOLD, P_COVID, Y_TRUE, validate_predictions
from covidct.evaluation.metrics import (
    DEFAULT_THRESHOLD,
    cells_from_confusion,
    confusion,
    predict_labels,
)
from covidct.report.pictures import Picture, copy_picture, slug
from covidct.templating import render

#: The four outcome kinds of a Grad-CAM panel (:class:`covidct.evaluation.predictions.Cell`
#: values), in the order of :func:`covidct.evaluation.metrics.cells_from_confusion`.
OUTCOMES = ("TP", "FN", "FP", "TN")

#: backbone's Grad-CAM: fold -> PNG, or one PNG for all folds
GradCams: TypeAlias = "Path | Mapping[Any, Path]"


def outcome_counts(predictions: pd.DataFrame) -> dict[str, int]:
    """Images per outcome kind (:data:`OUTCOMES`, p_covid > 0.5) of a predictions table."""
    frame = validate_predictions(predictions)
    matrix = confusion(frame[Y_TRUE], predict_labels(frame[P_COVID].to_numpy(), DEFAULT_THRESHOLD))
    return dict(zip(OUTCOMES, (int(n) for n in cells_from_confusion(matrix)), strict=True))


def gradcam_html(
    out_dir: Path, backbone: str, predictions: pd.DataFrame, gradcam: GradCams
) -> tuple[list[Picture], str]:
    """Copy a backbone's Grad-CAM panels beside the report; return them and a note saying
    which outcome kinds (TP, FN, FP, TN) have an example in which fold and which have none.

    ``gradcam``: fold -> PNG (a panel per fold's model, as ``evaluate`` draws them) or one PNG
    for all of ``predictions``. A panel shows every kind with an image in its fold (the rows of
    :func:`covidct.evaluation.explain.gradcam_figure`). Raises FileNotFoundError for a missing PNG.
    """
    panels = dict(gradcam) if isinstance(gradcam, Mapping) else {None: gradcam}
    frame = validate_predictions(predictions)
    pictures: list[Picture] = []
    shown_in: dict[str, list[str]] = {kind: [] for kind in OUTCOMES}
    for fold, source in sorted(panels.items(), key=lambda item: str(item[0])):
        rows = (
            frame
            if fold is None or FOLD not in frame
            else frame[frame[FOLD].astype(str) == str(fold)]
        )
        counts = outcome_counts(rows) if len(rows) else dict.fromkeys(OUTCOMES, 0)
        kinds = [kind for kind in OUTCOMES if counts[kind]]
        missing = [kind for kind in OUTCOMES if not counts[kind]]
        where = f"fold {fold}" if fold is not None else "all folds"
        for kind in kinds:
            shown_in[kind].append(where)
        suffix = "" if fold is None else f"-fold{slug(str(fold))}"
        name = copy_picture(out_dir, source, f"{slug(backbone)}-gradcam{suffix}.png")
        caption = (
            f"{backbone}: Grad-CAM (class covid), {where}; examples of {', '.join(kinds) or 'none'}"
        )
        caption += f"; no {', '.join(missing)} image in this fold" if missing else ""
        pictures.append(Picture(name, caption))
    shown = [kind for kind in OUTCOMES if shown_in[kind]]
    absent = [kind for kind in OUTCOMES if not shown_in[kind]]
    parts = [f"{kind} ({', '.join(shown_in[kind])})" for kind in shown]
    text = f"Grad-CAM examples of {'; '.join(parts) or 'no outcome kind'}."
    if absent:
        text += f" No example of {', '.join(absent)}: no test image had that outcome."
    return pictures, render("parts/gradcam_note.html", shown=shown, absent=absent, text=text)
