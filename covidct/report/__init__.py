"""What a run produced, for people (pages rendered through :mod:`covidct.templating`).

Modules:

* ``summary``: run summary (leaderboard, decision, quarantined batches, artifact locations); writes
  the run's page
* ``html_report``: one HTML page per run with its pictures
* ``pictures``: a picture record, file-name-safe names, copying a PNG beside the page
* ``evidence_html``: HTML of a run's evidence (drift, calibration, subgroups, serving check)
* ``gradcam_report``: Grad-CAM panels of every fold, outcome kinds shown and absent
* ``model_card``: model card and change record of a registered version (``covidct model-card``)
* ``card_parts``: the model card's sentences: registry tags in words, criteria, change record
* ``wording``: plain words for confirmed models (no better than chance, severity, pointing game)

Each public name of these modules is importable from the package, imported on first use;
the list is ``__init__.pyi`` (``lazy_loader`` stub).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
