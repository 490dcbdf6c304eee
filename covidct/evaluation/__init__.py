"""From predictions to metrics, intervals, figures and explanations.

Modules:

* ``metrics``: classification metrics, one code path for every number
* ``predictions``: the predictions table: reading, checks, patient-level aggregation, thresholds,
  metric keys
* ``scoring``: metrics per unit and fold, ``evaluate_predictions`` with intervals, the text report
* ``bootstrap``: percentile bootstrap over patients: intervals and paired differences
* ``plots``: confusion matrix, ROC and precision-recall figures
* ``activation_maps``: Grad-CAM maths for every backbone
* ``explain``: Grad-CAM overlays, sampled cases and the Grad-CAM figure
* ``subgroups``: sensitivity, specificity, balanced accuracy with patient-bootstrap intervals by
  sex, age band, series, slice thickness, source
* ``calibration``: ECE, Brier score, reliability diagram, temperature scaling
* ``truth``: scoring against known disease: sensitivity by severity band, Grad-CAM pointing game

Each public name of these modules is importable from the package, imported on first use;
the list is ``__init__.pyi`` (``lazy_loader`` stub).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
