"""Training one backbone on one fold, resumably.

Modules:

* ``spec``: ``TrainingSpec`` (what a run trains with, carried through XCom and the registry's
  ``train_params`` tag), ``RunRequest`` (the DAG's run form, checked), the profile names and
  schedules; free of Keras, so the DAG file and ``covidct check-conf`` import it
* ``profiles``: ``TrainingConfig`` (built from a spec by ``TrainingConfig.from_spec``), the
  named profiles, ``TrainResult``
* ``datasets``: the training table as class indices and the backend's datasets
* ``optimization``: precision, distribution, the training model, batch-norm handling, fused Nadam,
  compile
* ``checkpoints``: per-epoch checkpoints, resume checks, mirror to the lake
* ``tracking``: MLflow metrics, run setup, the logged model and its serving requirements
* ``trainer``: ``train_model`` (session and fit loop) and ``predict_p_covid``
* ``warm``: the compiled training model kept for a backbone's next fold in one process
* ``loaded``: logged models loaded in one process, kept to receive a next file's weights

Each public name of these modules is importable from the package, imported on first use;
the list is ``__init__.pyi`` (``lazy_loader`` stub).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
