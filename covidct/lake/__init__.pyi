"""Public names of ``covidct.lake``, one list: read by ``lazy_loader.attach_stub`` at run
time (each imported on first use) and by type checkers."""

from .access import (
    materialize as materialize,
    open_lake as open_lake,
    read_json as read_json,
    write_json as write_json,
)
from .backends import (
    LocalStore as LocalStore,
    S3Store as S3Store,
    open_store as open_store,
    s3_client as s3_client,
)
from .curation import (
    IngestOutcome as IngestOutcome,
    accept_batch as accept_batch,
    accepted_manifests as accepted_manifests,
    ingest_batch as ingest_batch,
    known_hashes as known_hashes,
    known_labels as known_labels,
    quarantine_batch as quarantine_batch,
    quarantine_prefix as quarantine_prefix,
)
from .custody import (
    CURATED_BATCHES as CURATED_BATCHES,
    CURATED_MANIFESTS as CURATED_MANIFESTS,
    LEDGER_BATCHES as LEDGER_BATCHES,
    LEDGER_LANDINGS as LEDGER_LANDINGS,
    SHORT_HASH as SHORT_HASH,
    BatchLedger as BatchLedger,
    BatchStatus as BatchStatus,
    LandedBatch as LandedBatch,
    LedgerEntry as LedgerEntry,
    batch_content_hash as batch_content_hash,
    content_hash as content_hash,
    curated_prefix as curated_prefix,
    discover_new_batches as discover_new_batches,
    landed_batches as landed_batches,
    landed_hash as landed_hash,
    landing_prefix as landing_prefix,
    latest_receipt_hash as latest_receipt_hash,
    local_content_hash as local_content_hash,
    local_file_hashes as local_file_hashes,
    manifest_key as manifest_key,
    move_verified as move_verified,
    pending_batches as pending_batches,
    receipted_batches as receipted_batches,
    utc_now as utc_now,
)
from .landing import (
    UPLOAD_THREADS as UPLOAD_THREADS,
    LandingConflict as LandingConflict,
    LandingReceipt as LandingReceipt,
    land_batch as land_batch,
    receipt_key as receipt_key,
    scan_for_landing as scan_for_landing,
)
from .layout import (
    LakeLayout as LakeLayout,
    RunLayout as RunLayout,
    run_key_of as run_key_of,
)
from .storage import (
    PARTIAL_SUFFIX as PARTIAL_SUFFIX,
    TRANSFER_THREADS as TRANSFER_THREADS,
    IntegrityError as IntegrityError,
    KeyList as KeyList,
    ObjectStore as ObjectStore,
    StoreScheme as StoreScheme,
    atomic_write as atomic_write,
    check_key as check_key,
    folder as folder,
    fsync_dir as fsync_dir,
    make_dirs as make_dirs,
    read_json_lines as read_json_lines,
    read_parquet as read_parquet,
    sha256_hex as sha256_hex,
    write_parquet as write_parquet,
)
