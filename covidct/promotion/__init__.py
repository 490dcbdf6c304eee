"""Whether a candidate becomes champion, and who is told.

Modules:

* ``gate``: comparisons and a verdict, never an exception
* ``registry``: MLflow aliases, compare-and-set promotion under a lock, audit ledger, rollback
* ``alerts``: metric-regression detection; the alert schema of :mod:`covidct.alerts`, named here too
* ``subgroup_gate``: the gate's subgroup rule: no subgroup smaller than the whole set may be shown
  to lose COVID sensitivity beyond the margin (Holm across subgroups)
* ``rule``: the gate as one pure function, evidence to verdict (``judge``)
* ``stats``: the gate's patient-clustered tests, Holm, detectable gain, selection correction
* ``sensitivity``: COVID-sensitivity evidence from prediction tables, the non-inferiority margin
* ``record``: one registry path for every verdict (``record_verdict``)
* ``deployable``: the k-fold ensemble as one model, its content digest, its registry download
* ``serving``: the serving check: the registered version in a fresh process, probe predictions,
  latency
* ``mlflow_ui``: marks covidct's experiment as model training so the MLflow UI opens on the runs

Each public name of these modules is importable from the package, imported on first use;
the list is ``__init__.pyi`` (``lazy_loader`` stub).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
