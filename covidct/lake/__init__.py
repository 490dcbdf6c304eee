"""The object store and the custody of batches in it.

Modules:

* ``storage``: the object-store interface: keys, verified copy and move, JSON and Parquet helpers
* ``backends``: a local folder and S3 behind that interface; ``open_store`` picks one from a URI
* ``custody``: content-hash ledger of batches, landing receipts, discovery of new batches
* ``curation``: accepting a validated batch into ``curated/``, quarantining a refused one; known
  labels and slice hashes
* ``landing``: ``covidct land``: upload exactly the files validation will see, with a receipt
* ``access``: the lake of the settings, a local folder of a prefix, JSON documents at a key

Each public name of these modules is importable from the package, imported on first use;
the list is ``__init__.pyi`` (``lazy_loader`` stub).
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
