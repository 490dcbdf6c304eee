"""The object store and the custody of batches in it.

Modules:

* ``storage``: the object-store interface: keys, verified copy and move, JSON and Parquet helpers
* ``backends``: a local folder and S3 behind that interface; ``open_store`` picks one from a URI
* ``custody``: content-hash ledger of batches, landing receipts, discovery of new batches
* ``curation``: accepting a validated batch into ``curated/``, quarantining a refused one; known
  labels and slice hashes
* ``landing``: ``covidct land``: upload exactly the files validation will see, with a receipt

Each public name of these modules is importable from the package (imported on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.lake.backends import (
        LocalStore,
        S3Store,
        open_store,
        s3_client,
    )
    from covidct.lake.curation import (
        IngestOutcome,
        accept_batch,
        accepted_manifests,
        ingest_batch,
        known_hashes,
        known_labels,
        quarantine_batch,
        quarantine_prefix,
    )
    from covidct.lake.custody import (
        CURATED_BATCHES,
        CURATED_MANIFESTS,
        LEDGER_BATCHES,
        LEDGER_LANDINGS,
        SHORT_HASH,
        BatchLedger,
        BatchStatus,
        LandedBatch,
        LedgerEntry,
        batch_content_hash,
        content_hash,
        curated_prefix,
        discover_new_batches,
        landed_batches,
        landing_prefix,
        latest_receipt_hash,
        local_content_hash,
        local_file_hashes,
        manifest_key,
        pending_batches,
        receipted_batches,
    )
    from covidct.lake.landing import (
        UPLOAD_THREADS,
        LandingConflict,
        LandingReceipt,
        land_batch,
        receipt_key,
        scan_for_landing,
    )
    from covidct.lake.layout import (
        LakeLayout,
        RunLayout,
        run_key_of,
    )
    from covidct.lake.storage import (
        TRANSFER_THREADS,
        IntegrityError,
        KeyList,
        ObjectStore,
        StoreScheme,
        atomic_write,
        check_key,
        folder,
        fsync_dir,
        make_dirs,
        read_json_lines,
        read_parquet,
        sha256_hex,
        write_parquet,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "fsync_dir": "covidct.lake.storage",
    "make_dirs": "covidct.lake.storage",
    "receipted_batches": "covidct.lake.custody",
    "BatchLedger": "covidct.lake.custody",
    "BatchStatus": "covidct.lake.custody",
    "CURATED_BATCHES": "covidct.lake.custody",
    "CURATED_MANIFESTS": "covidct.lake.custody",
    "IngestOutcome": "covidct.lake.curation",
    "IntegrityError": "covidct.lake.storage",
    "KeyList": "covidct.lake.storage",
    "LEDGER_BATCHES": "covidct.lake.custody",
    "LEDGER_LANDINGS": "covidct.lake.custody",
    "LakeLayout": "covidct.lake.layout",
    "LandedBatch": "covidct.lake.custody",
    "LandingConflict": "covidct.lake.landing",
    "LandingReceipt": "covidct.lake.landing",
    "LedgerEntry": "covidct.lake.custody",
    "LocalStore": "covidct.lake.backends",
    "ObjectStore": "covidct.lake.storage",
    "RunLayout": "covidct.lake.layout",
    "S3Store": "covidct.lake.backends",
    "SHORT_HASH": "covidct.lake.custody",
    "StoreScheme": "covidct.lake.storage",
    "TRANSFER_THREADS": "covidct.lake.storage",
    "UPLOAD_THREADS": "covidct.lake.landing",
    "accept_batch": "covidct.lake.curation",
    "accepted_manifests": "covidct.lake.curation",
    "atomic_write": "covidct.lake.storage",
    "batch_content_hash": "covidct.lake.custody",
    "check_key": "covidct.lake.storage",
    "content_hash": "covidct.lake.custody",
    "curated_prefix": "covidct.lake.custody",
    "discover_new_batches": "covidct.lake.custody",
    "folder": "covidct.lake.storage",
    "ingest_batch": "covidct.lake.curation",
    "known_hashes": "covidct.lake.curation",
    "known_labels": "covidct.lake.curation",
    "land_batch": "covidct.lake.landing",
    "landed_batches": "covidct.lake.custody",
    "landing_prefix": "covidct.lake.custody",
    "latest_receipt_hash": "covidct.lake.custody",
    "local_content_hash": "covidct.lake.custody",
    "local_file_hashes": "covidct.lake.custody",
    "manifest_key": "covidct.lake.custody",
    "open_store": "covidct.lake.backends",
    "pending_batches": "covidct.lake.custody",
    "quarantine_batch": "covidct.lake.curation",
    "quarantine_prefix": "covidct.lake.curation",
    "read_json_lines": "covidct.lake.storage",
    "read_parquet": "covidct.lake.storage",
    "receipt_key": "covidct.lake.landing",
    "run_key_of": "covidct.lake.layout",
    "s3_client": "covidct.lake.backends",
    "scan_for_landing": "covidct.lake.landing",
    "sha256_hex": "covidct.lake.storage",
    "write_parquet": "covidct.lake.storage",
}

__all__ = [
    "fsync_dir",
    "make_dirs",
    "receipted_batches",
    "BatchLedger",
    "BatchStatus",
    "CURATED_BATCHES",
    "CURATED_MANIFESTS",
    "IngestOutcome",
    "IntegrityError",
    "KeyList",
    "LEDGER_BATCHES",
    "LEDGER_LANDINGS",
    "LakeLayout",
    "LandedBatch",
    "LandingConflict",
    "LandingReceipt",
    "LedgerEntry",
    "LocalStore",
    "ObjectStore",
    "RunLayout",
    "S3Store",
    "SHORT_HASH",
    "StoreScheme",
    "TRANSFER_THREADS",
    "UPLOAD_THREADS",
    "accept_batch",
    "accepted_manifests",
    "atomic_write",
    "batch_content_hash",
    "check_key",
    "content_hash",
    "curated_prefix",
    "discover_new_batches",
    "folder",
    "ingest_batch",
    "known_hashes",
    "known_labels",
    "land_batch",
    "landed_batches",
    "landing_prefix",
    "latest_receipt_hash",
    "local_content_hash",
    "local_file_hashes",
    "manifest_key",
    "open_store",
    "pending_batches",
    "quarantine_batch",
    "quarantine_prefix",
    "read_json_lines",
    "read_parquet",
    "receipt_key",
    "run_key_of",
    "s3_client",
    "scan_for_landing",
    "sha256_hex",
    "write_parquet",
]


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
