"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.lake.custody import (
        CURATED_BATCHES as CURATED_BATCHES,
    )
    from covidct.lake.custody import (
        CURATED_MANIFESTS as CURATED_MANIFESTS,
    )
    from covidct.lake.custody import (
        LEDGER_BATCHES as LEDGER_BATCHES,
    )
    from covidct.lake.custody import (
        LEDGER_LANDINGS as LEDGER_LANDINGS,
    )
    from covidct.lake.custody import (
        SHORT_HASH as SHORT_HASH,
    )
    from covidct.lake.custody import (
        BatchLedger as BatchLedger,
    )
    from covidct.lake.custody import (
        BatchStatus as BatchStatus,
    )
    from covidct.lake.custody import (
        IngestOutcome as IngestOutcome,
    )
    from covidct.lake.custody import (
        LandedBatch as LandedBatch,
    )
    from covidct.lake.custody import (
        LedgerEntry as LedgerEntry,
    )
    from covidct.lake.custody import (
        accept_batch as accept_batch,
    )
    from covidct.lake.custody import (
        accepted_manifests as accepted_manifests,
    )
    from covidct.lake.custody import (
        batch_content_hash as batch_content_hash,
    )
    from covidct.lake.custody import (
        content_hash as content_hash,
    )
    from covidct.lake.custody import (
        curated_prefix as curated_prefix,
    )
    from covidct.lake.custody import (
        discover_new_batches as discover_new_batches,
    )
    from covidct.lake.custody import (
        ingest_batch as ingest_batch,
    )
    from covidct.lake.custody import (
        known_hashes as known_hashes,
    )
    from covidct.lake.custody import (
        known_labels as known_labels,
    )
    from covidct.lake.custody import (
        landed_batches as landed_batches,
    )
    from covidct.lake.custody import (
        landing_prefix as landing_prefix,
    )
    from covidct.lake.custody import (
        latest_receipt_hash as latest_receipt_hash,
    )
    from covidct.lake.custody import (
        local_content_hash as local_content_hash,
    )
    from covidct.lake.custody import (
        local_file_hashes as local_file_hashes,
    )
    from covidct.lake.custody import (
        manifest_key as manifest_key,
    )
    from covidct.lake.custody import (
        pending_batches as pending_batches,
    )
    from covidct.lake.custody import (
        quarantine_batch as quarantine_batch,
    )
    from covidct.lake.custody import (
        quarantine_prefix as quarantine_prefix,
    )
    from covidct.lake.landing import (
        UPLOAD_THREADS as UPLOAD_THREADS,
    )
    from covidct.lake.landing import (
        LandingConflict as LandingConflict,
    )
    from covidct.lake.landing import (
        LandingReceipt as LandingReceipt,
    )
    from covidct.lake.landing import (
        land_batch as land_batch,
    )
    from covidct.lake.landing import (
        receipt_key as receipt_key,
    )
    from covidct.lake.landing import (
        scan_for_landing as scan_for_landing,
    )
    from covidct.lake.storage import (
        TRANSFER_THREADS as TRANSFER_THREADS,
    )
    from covidct.lake.storage import (
        IntegrityError as IntegrityError,
    )
    from covidct.lake.storage import (
        KeyList as KeyList,
    )
    from covidct.lake.storage import (
        LocalStore as LocalStore,
    )
    from covidct.lake.storage import (
        ObjectStore as ObjectStore,
    )
    from covidct.lake.storage import (
        S3Store as S3Store,
    )
    from covidct.lake.storage import (
        StoreScheme as StoreScheme,
    )
    from covidct.lake.storage import (
        atomic_write as atomic_write,
    )
    from covidct.lake.storage import (
        check_key as check_key,
    )
    from covidct.lake.storage import (
        folder as folder,
    )
    from covidct.lake.storage import (
        open_store as open_store,
    )
    from covidct.lake.storage import (
        read_json_lines as read_json_lines,
    )
    from covidct.lake.storage import (
        read_parquet as read_parquet,
    )
    from covidct.lake.storage import (
        s3_client as s3_client,
    )
    from covidct.lake.storage import (
        sha256_hex as sha256_hex,
    )
    from covidct.lake.storage import (
        write_parquet as write_parquet,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "BatchLedger": "covidct.lake.custody",
    "BatchStatus": "covidct.lake.custody",
    "CURATED_BATCHES": "covidct.lake.custody",
    "CURATED_MANIFESTS": "covidct.lake.custody",
    "IngestOutcome": "covidct.lake.custody",
    "IntegrityError": "covidct.lake.storage",
    "KeyList": "covidct.lake.storage",
    "LEDGER_BATCHES": "covidct.lake.custody",
    "LEDGER_LANDINGS": "covidct.lake.custody",
    "LandedBatch": "covidct.lake.custody",
    "LandingConflict": "covidct.lake.landing",
    "LandingReceipt": "covidct.lake.landing",
    "LedgerEntry": "covidct.lake.custody",
    "LocalStore": "covidct.lake.storage",
    "ObjectStore": "covidct.lake.storage",
    "S3Store": "covidct.lake.storage",
    "SHORT_HASH": "covidct.lake.custody",
    "StoreScheme": "covidct.lake.storage",
    "TRANSFER_THREADS": "covidct.lake.storage",
    "UPLOAD_THREADS": "covidct.lake.landing",
    "accept_batch": "covidct.lake.custody",
    "accepted_manifests": "covidct.lake.custody",
    "atomic_write": "covidct.lake.storage",
    "batch_content_hash": "covidct.lake.custody",
    "check_key": "covidct.lake.storage",
    "content_hash": "covidct.lake.custody",
    "curated_prefix": "covidct.lake.custody",
    "discover_new_batches": "covidct.lake.custody",
    "folder": "covidct.lake.storage",
    "ingest_batch": "covidct.lake.custody",
    "known_hashes": "covidct.lake.custody",
    "known_labels": "covidct.lake.custody",
    "land_batch": "covidct.lake.landing",
    "landed_batches": "covidct.lake.custody",
    "landing_prefix": "covidct.lake.custody",
    "latest_receipt_hash": "covidct.lake.custody",
    "local_content_hash": "covidct.lake.custody",
    "local_file_hashes": "covidct.lake.custody",
    "manifest_key": "covidct.lake.custody",
    "open_store": "covidct.lake.storage",
    "pending_batches": "covidct.lake.custody",
    "quarantine_batch": "covidct.lake.custody",
    "quarantine_prefix": "covidct.lake.custody",
    "read_json_lines": "covidct.lake.storage",
    "read_parquet": "covidct.lake.storage",
    "receipt_key": "covidct.lake.landing",
    "s3_client": "covidct.lake.storage",
    "scan_for_landing": "covidct.lake.landing",
    "sha256_hex": "covidct.lake.storage",
    "write_parquet": "covidct.lake.storage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
