"""From curated slices to model inputs: patients in folds or sequestered, slices selected, decoded
and augmented.

Modules:

* ``loading``: 16-bit TIFF slices to float32 model inputs (reading, intensity transform, labels)
* ``pipelines``: ``make_dataset``, the dataset of the backend's pipeline
* ``tfdata``: the ``tf.data`` pipeline (TensorFlow backend); ``host``: the NumPy one (any)
* ``augment``: the seed's Table 5 augmentation in ``keras.ops``, inside the compiled train step
* ``folds``: patient-level folds of the COVID-CTset protocol, incremental, leak-free
* ``fold_manifests``: per-fold manifests, their digest, the protocol table, MLflow dataset records
* ``folds_cli``: ``covidct folds`` on a COVID-CTset roster
* ``selection``: COVID-CTset's open-lung slice selection
* ``sequester``: the stable sequestration rule, its lock and re-lock

Each public name of these modules is importable from the package, imported on first use;
the list is ``__init__.pyi`` (``lazy_loader`` stub).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
