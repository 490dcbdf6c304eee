"""One thin function per DAG task; `dags/covidct_retraining.py` calls these.

Modules:

* ``context``: run keys, the lake of the settings, materialising a prefix, sending alerts
* ``intake``: ``discover``, ``validate``, ``quarantine``, ``curate``, ``make_folds``
* ``development``: ``setup_mlflow``, ``train``, ``evaluate``, figures and Grad-CAM
* ``decision``: ``aggregate`` (leaderboard, candidate), ``confirm``, ``gate_and_promote``,
  ``regression_check``
* ``confirmation``: k-fold ensemble deployables: registered, loaded back, scored on sequestered
  patients; the champion's record
* ``gate_evidence``: the gate's evidence for ``covidct.promotion.rule.judge``, the champion's
  figures re-estimated on patients its promotion did not use
* ``evidence``: a run's drift, temperature, calibration, subgroup and serving-check evidence
* ``truth``: known-disease evidence (severity bands, Grad-CAM pointing game) where batches carry
  truth

Each public name of these modules is importable from the package, imported on first use;
the list is ``__init__.pyi`` (``lazy_loader`` stub).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
