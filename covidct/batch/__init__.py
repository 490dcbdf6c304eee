"""A Negin-style batch: its files and their one reader, the manifest of facts, validation,
synthetic and DICOM-made batches.

Modules:

* ``contract``: ``Patient_details.csv`` and ``batch.json``: their one reader and writer
* ``slices``: TIFF slices: the one module that opens them (contract reads, header and
  decompression-bomb checks, per-file facts) and their writer
* ``files``: a batch folder's regular files, refusing links and special files
* ``manifest``: per-slice manifest of a batch (path facts joined with slice facts, read in
  parallel)
* ``checks``: validation's vocabulary: tables, checks, policy, failures and the batch verdict
* ``tables``: the slice, patient, batch and layout tables validation judges
* ``expectations``: Great Expectations suites over those tables
* ``validation``: ``validate_batch``: manifest, tables, suites, cross-batch checks and exclusions,
  one verdict
* ``validation_report``: the HTML summary page and the text verdict of a validation
* ``fault_reasons``: one reason per fault: a derived check does not repeat a slice its primary check
  failed
* ``drift``: a validated batch against the curated reference: HU distribution, slice statistics,
  acquisition metadata
* ``hu_distribution``: seeded HU samples of slices, the Wasserstein distance and its patient
  permutation test
* ``roster``: the real COVID-CTset roster joined to its patients
* ``synth``: synthetic Negin-style batches shaped like the real roster, with literature-shaped
  COVID-19 lesions, look-alikes and scanners; ``phantom`` (anatomy), ``lesions`` (3-D lesions and
  look-alikes), ``scanners`` (scanner profiles) and ``synth_truth`` (truth beside the batch)
* ``dicom/``: DICOM CT series to a Negin-style batch: rules (``__init__``), discovery and writing
  (``ingest``), per-slice checks and HU maths (``slices``)

Each public name of these modules is importable from the package, imported on first use;
the list is ``__init__.pyi`` (``lazy_loader`` stub).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
