"""Public names of ``covidct.batch``, one list: read by ``lazy_loader.attach_stub`` at run
time (each imported on first use) and by type checkers."""

from .checks import (
    AIR_P01_MAX_HU as AIR_P01_MAX_HU,
    DEFAULT_EXCLUDABLE as DEFAULT_EXCLUDABLE,
    DESCRIPTIONS as DESCRIPTIONS,
    MAX_EXAMPLES as MAX_EXAMPLES,
    REASON_EXAMPLES as REASON_EXAMPLES,
    SLICE_CHECKS as SLICE_CHECKS,
    THICKNESS_COLUMNS as THICKNESS_COLUMNS,
    VALID_LABELS as VALID_LABELS,
    BatchVerdict as BatchVerdict,
    Check as Check,
    Failure as Failure,
    Table as Table,
    ValidationPolicy as ValidationPolicy,
)
from .contract import (
    AGE_PATTERN as AGE_PATTERN,
    DATE_PATTERN as DATE_PATTERN,
    MAX_BATCH_INFO_BYTES as MAX_BATCH_INFO_BYTES,
    MAX_DETAILS_BYTES as MAX_DETAILS_BYTES,
    MAX_DETAILS_ROWS as MAX_DETAILS_ROWS,
    MAX_JSON_DEPTH as MAX_JSON_DEPTH,
    NAME_PATTERN as NAME_PATTERN,
    SEX_VALUES as SEX_VALUES,
    UNKNOWN_THICKNESS as UNKNOWN_THICKNESS,
    InputLimitError as InputLimitError,
    PatientDetailsError as PatientDetailsError,
    batch_source as batch_source,
    check_name as check_name,
    field_problems as field_problems,
    json_depth as json_depth,
    labels_by_patient as labels_by_patient,
    name_problem as name_problem,
    parse_thickness as parse_thickness,
    read_batch_info as read_batch_info,
    read_patient_details as read_patient_details,
    read_patient_details_text as read_patient_details_text,
    write_batch_info as write_batch_info,
    write_patient_details as write_patient_details,
)
from .data_docs import (
    DOCS_CSP as DOCS_CSP,
    OFFLINE_STYLE as OFFLINE_STYLE,
    escape_markup as escape_markup,
    escape_stored_results as escape_stored_results,
    inert_page as inert_page,
    make_offline as make_offline,
    write_static_index as write_static_index,
)
from .drift import (
    ACQUISITION_FIELDS as ACQUISITION_FIELDS,
    SLICE_STATS as SLICE_STATS,
    DriftMeasure as DriftMeasure,
    DriftReport as DriftReport,
    acquisition_frame as acquisition_frame,
    acquisition_measures as acquisition_measures,
    batch_drift as batch_drift,
    drift_alert as drift_alert,
    format_drift as format_drift,
    slice_stat_measures as slice_stat_measures,
    slice_stat_ranges as slice_stat_ranges,
)
from .expectations import (
    INDEX_COLUMNS as INDEX_COLUMNS,
    ExpectationRunner as ExpectationRunner,
    batch_expectations as batch_expectations,
    layout_expectations as layout_expectations,
    patient_expectations as patient_expectations,
    slice_expectations as slice_expectations,
)
from .fault_reasons import (
    DERIVED as DERIVED,
    one_reason_per_fault as one_reason_per_fault,
)
from .files import (
    HARD_LINK as HARD_LINK,
    SPECIAL as SPECIAL,
    SYMLINK as SYMLINK,
    BatchFiles as BatchFiles,
    FileTooLarge as FileTooLarge,
    entry_problem as entry_problem,
    escaped as escaped,
    read_regular as read_regular,
    scan_batch as scan_batch,
)
from .hu_distribution import (
    N_BINS as N_BINS,
    PatientHistograms as PatientHistograms,
    patient_histograms as patient_histograms,
    permutation_p_value as permutation_p_value,
    readable_slices as readable_slices,
    sample_slices as sample_slices,
    wasserstein_hu as wasserstein_hu,
)
from .lesions import (
    BANDS as BANDS,
    FINDINGS as FINDINGS,
    LESION_KINDS as LESION_KINDS,
    LOOKALIKE_RATES as LOOKALIKE_RATES,
    MAX_LESIONS as MAX_LESIONS,
    MOSMED_COUNTS as MOSMED_COUNTS,
    NORMAL_CT_RATE as NORMAL_CT_RATE,
    draw_slice as draw_slice,
    plan_patient as plan_patient,
)
from .manifest import (
    MANIFEST_COLUMNS as MANIFEST_COLUMNS,
    ROOT_FILES as ROOT_FILES,
    ExecutorKind as ExecutorKind,
    SliceFile as SliceFile,
    batch_table as batch_table,
    build_manifest as build_manifest,
    find_slice_files as find_slice_files,
    manifest_frame as manifest_frame,
    parse_instance as parse_instance,
    patient_table as patient_table,
    read_all_facts as read_all_facts,
)
from .phantom import (
    SIZE as SIZE,
    Anatomy as Anatomy,
    apply_scanner as apply_scanner,
    draw_body as draw_body,
    draw_vessels as draw_vessels,
    ellipse_mask as ellipse_mask,
    lung_centres as lung_centres,
    lung_mask as lung_mask,
    lung_openness as lung_openness,
    lung_radii as lung_radii,
    pixel_grid as pixel_grid,
)
from .roster import (
    ALL_CSV as ALL_CSV,
    FILENAME_PATTERN as FILENAME_PATTERN,
    ROSTER_COLUMNS as ROSTER_COLUMNS,
    RosterError as RosterError,
    default_roster_dir as default_roster_dir,
    load_default_roster as load_default_roster,
    load_roster as load_roster,
    parse_filenames as parse_filenames,
    series_counts as series_counts,
)
from .scanners import (
    SCANNERS as SCANNERS,
    Scanner as Scanner,
    ScannerProfile as ScannerProfile,
    parse_scanner as parse_scanner,
)
from .slices import (
    BORDER_WIDTH as BORDER_WIDTH,
    IDENTIFYING_TAG_NAMES as IDENTIFYING_TAG_NAMES,
    IDENTIFYING_TEXT as IDENTIFYING_TEXT,
    MAX_BITS_PER_SAMPLE as MAX_BITS_PER_SAMPLE,
    MAX_DECODE_RATIO as MAX_DECODE_RATIO,
    MAX_DECODED_BYTES as MAX_DECODED_BYTES,
    MAX_SLICE_FILE_BYTES as MAX_SLICE_FILE_BYTES,
    SLICE_NAME_FORMAT as SLICE_NAME_FORMAT,
    SliceReadError as SliceReadError,
    identifying_tags as identifying_tags,
    pixel_stats as pixel_stats,
    read_slice as read_slice,
    read_slice_facts as read_slice_facts,
    slice_name as slice_name,
    tiff_header_problem as tiff_header_problem,
    write_slice as write_slice,
)
from .synth import (
    FALLBACK_THICKNESS_MM as FALLBACK_THICKNESS_MM,
    MIN_SLICES_PER_SERIES as MIN_SLICES_PER_SERIES,
    NOISE_SD_HU as NOISE_SD_HU,
    SynthPatient as SynthPatient,
    SynthReport as SynthReport,
    SynthSeries as SynthSeries,
    sample_patients as sample_patients,
    write_synthetic_batch as write_synthetic_batch,
)
from .synth_truth import (
    PATIENT_TRUTH_COLUMNS as PATIENT_TRUTH_COLUMNS,
    SLICE_TRUTH_COLUMNS as SLICE_TRUTH_COLUMNS,
    TRUTH_SUFFIX as TRUTH_SUFFIX,
    TruthCollector as TruthCollector,
    default_truth_dir as default_truth_dir,
    read_lesion_mask as read_lesion_mask,
    read_lookalike_mask as read_lookalike_mask,
    read_lung_mask as read_lung_mask,
    read_truth as read_truth,
    write_truth as write_truth,
)
from .tables import (
    batch_validation_table as batch_validation_table,
    details_or_empty as details_or_empty,
    layout_table as layout_table,
    patient_validation_table as patient_validation_table,
    slice_table as slice_table,
)
from .validation import (
    apply_exclusions as apply_exclusions,
    validate_batch as validate_batch,
)
from .validation_report import (
    format_verdict as format_verdict,
    summary_html as summary_html,
    write_report as write_report,
)
