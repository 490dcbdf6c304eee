"""TODO"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from covidct.batch.checks import (
        AIR_P01_MAX_HU as AIR_P01_MAX_HU,
    )
    from covidct.batch.checks import (
        DEFAULT_EXCLUDABLE as DEFAULT_EXCLUDABLE,
    )
    from covidct.batch.checks import (
        DESCRIPTIONS as DESCRIPTIONS,
    )
    from covidct.batch.checks import (
        MAX_EXAMPLES as MAX_EXAMPLES,
    )
    from covidct.batch.checks import (
        REASON_EXAMPLES as REASON_EXAMPLES,
    )
    from covidct.batch.checks import (
        SLICE_CHECKS as SLICE_CHECKS,
    )
    from covidct.batch.checks import (
        THICKNESS_COLUMNS as THICKNESS_COLUMNS,
    )
    from covidct.batch.checks import (
        VALID_LABELS as VALID_LABELS,
    )
    from covidct.batch.checks import (
        BatchVerdict as BatchVerdict,
    )
    from covidct.batch.checks import (
        Check as Check,
    )
    from covidct.batch.checks import (
        Failure as Failure,
    )
    from covidct.batch.checks import (
        Table as Table,
    )
    from covidct.batch.checks import (
        ValidationPolicy as ValidationPolicy,
    )
    from covidct.batch.contract import (
        UNKNOWN_THICKNESS as UNKNOWN_THICKNESS,
    )
    from covidct.batch.contract import (
        PatientDetailsError as PatientDetailsError,
    )
    from covidct.batch.contract import (
        batch_source as batch_source,
    )
    from covidct.batch.contract import (
        read_batch_info as read_batch_info,
    )
    from covidct.batch.contract import (
        read_patient_details as read_patient_details,
    )
    from covidct.batch.contract import (
        write_batch_info as write_batch_info,
    )
    from covidct.batch.contract import (
        write_patient_details as write_patient_details,
    )
    from covidct.batch.expectations import (
        INDEX_COLUMNS as INDEX_COLUMNS,
    )
    from covidct.batch.expectations import (
        ExpectationRunner as ExpectationRunner,
    )
    from covidct.batch.expectations import (
        batch_expectations as batch_expectations,
    )
    from covidct.batch.expectations import (
        layout_expectations as layout_expectations,
    )
    from covidct.batch.expectations import (
        patient_expectations as patient_expectations,
    )
    from covidct.batch.expectations import (
        slice_expectations as slice_expectations,
    )
    from covidct.batch.files import (
        HARD_LINK as HARD_LINK,
    )
    from covidct.batch.files import (
        SPECIAL as SPECIAL,
    )
    from covidct.batch.files import (
        SYMLINK as SYMLINK,
    )
    from covidct.batch.files import (
        BatchFiles as BatchFiles,
    )
    from covidct.batch.files import (
        check_name as check_name,
    )
    from covidct.batch.files import (
        entry_problem as entry_problem,
    )
    from covidct.batch.files import (
        escaped as escaped,
    )
    from covidct.batch.files import (
        name_problem as name_problem,
    )
    from covidct.batch.files import (
        read_regular as read_regular,
    )
    from covidct.batch.files import (
        scan_batch as scan_batch,
    )
    from covidct.batch.manifest import (
        MANIFEST_COLUMNS as MANIFEST_COLUMNS,
    )
    from covidct.batch.manifest import (
        ROOT_FILES as ROOT_FILES,
    )
    from covidct.batch.manifest import (
        ExecutorKind as ExecutorKind,
    )
    from covidct.batch.manifest import (
        SliceFile as SliceFile,
    )
    from covidct.batch.manifest import (
        batch_table as batch_table,
    )
    from covidct.batch.manifest import (
        build_manifest as build_manifest,
    )
    from covidct.batch.manifest import (
        find_slice_files as find_slice_files,
    )
    from covidct.batch.manifest import (
        labels_by_patient as labels_by_patient,
    )
    from covidct.batch.manifest import (
        manifest_frame as manifest_frame,
    )
    from covidct.batch.manifest import (
        parse_instance as parse_instance,
    )
    from covidct.batch.manifest import (
        patient_table as patient_table,
    )
    from covidct.batch.manifest import (
        read_all_facts as read_all_facts,
    )
    from covidct.batch.roster import (
        ALL_CSV as ALL_CSV,
    )
    from covidct.batch.roster import (
        FILENAME_PATTERN as FILENAME_PATTERN,
    )
    from covidct.batch.roster import (
        ROSTER_COLUMNS as ROSTER_COLUMNS,
    )
    from covidct.batch.roster import (
        RosterError as RosterError,
    )
    from covidct.batch.roster import (
        default_roster_dir as default_roster_dir,
    )
    from covidct.batch.roster import (
        load_default_roster as load_default_roster,
    )
    from covidct.batch.roster import (
        load_roster as load_roster,
    )
    from covidct.batch.roster import (
        parse_filenames as parse_filenames,
    )
    from covidct.batch.roster import (
        series_counts as series_counts,
    )
    from covidct.batch.slices import (
        BORDER_WIDTH as BORDER_WIDTH,
    )
    from covidct.batch.slices import (
        IDENTIFYING_TAG_NAMES as IDENTIFYING_TAG_NAMES,
    )
    from covidct.batch.slices import (
        IDENTIFYING_TEXT as IDENTIFYING_TEXT,
    )
    from covidct.batch.slices import (
        MAX_BITS_PER_SAMPLE as MAX_BITS_PER_SAMPLE,
    )
    from covidct.batch.slices import (
        MAX_DECODE_RATIO as MAX_DECODE_RATIO,
    )
    from covidct.batch.slices import (
        MAX_DECODED_BYTES as MAX_DECODED_BYTES,
    )
    from covidct.batch.slices import (
        MAX_SLICE_FILE_BYTES as MAX_SLICE_FILE_BYTES,
    )
    from covidct.batch.slices import (
        SLICE_NAME_FORMAT as SLICE_NAME_FORMAT,
    )
    from covidct.batch.slices import (
        SliceReadError as SliceReadError,
    )
    from covidct.batch.slices import (
        identifying_tags as identifying_tags,
    )
    from covidct.batch.slices import (
        pixel_stats as pixel_stats,
    )
    from covidct.batch.slices import (
        read_slice as read_slice,
    )
    from covidct.batch.slices import (
        read_slice_facts as read_slice_facts,
    )
    from covidct.batch.slices import (
        slice_name as slice_name,
    )
    from covidct.batch.slices import (
        tiff_header_problem as tiff_header_problem,
    )
    from covidct.batch.slices import (
        write_slice as write_slice,
    )
    from covidct.batch.synth import (
        MIN_SLICES_PER_SERIES as MIN_SLICES_PER_SERIES,
    )
    from covidct.batch.synth import (
        NOISE_SD_HU as NOISE_SD_HU,
    )
    from covidct.batch.synth import (
        SIZE as SIZE,
    )
    from covidct.batch.synth import (
        SynthPatient as SynthPatient,
    )
    from covidct.batch.synth import (
        SynthReport as SynthReport,
    )
    from covidct.batch.synth import (
        SynthSeries as SynthSeries,
    )
    from covidct.batch.synth import (
        sample_patients as sample_patients,
    )
    from covidct.batch.synth import (
        write_synthetic_batch as write_synthetic_batch,
    )
    from covidct.batch.tables import (
        batch_validation_table as batch_validation_table,
    )
    from covidct.batch.tables import (
        layout_table as layout_table,
    )
    from covidct.batch.tables import (
        patient_validation_table as patient_validation_table,
    )
    from covidct.batch.tables import (
        slice_table as slice_table,
    )
    from covidct.batch.validation import (
        apply_exclusions as apply_exclusions,
    )
    from covidct.batch.validation import (
        validate_batch as validate_batch,
    )
    from covidct.batch.validation_report import (
        format_verdict as format_verdict,
    )
    from covidct.batch.validation_report import (
        summary_html as summary_html,
    )
    from covidct.batch.validation_report import (
        write_report as write_report,
    )

#: public name -> the module that defines it (imported on first use, so importing one module of
#: the package does not import the others' dependencies)
_EXPORTS: dict[str, str] = {
    "AIR_P01_MAX_HU": "covidct.batch.checks",
    "ALL_CSV": "covidct.batch.roster",
    "BORDER_WIDTH": "covidct.batch.slices",
    "BatchFiles": "covidct.batch.files",
    "BatchVerdict": "covidct.batch.checks",
    "Check": "covidct.batch.checks",
    "DEFAULT_EXCLUDABLE": "covidct.batch.checks",
    "DESCRIPTIONS": "covidct.batch.checks",
    "ExecutorKind": "covidct.batch.manifest",
    "ExpectationRunner": "covidct.batch.expectations",
    "FILENAME_PATTERN": "covidct.batch.roster",
    "Failure": "covidct.batch.checks",
    "HARD_LINK": "covidct.batch.files",
    "IDENTIFYING_TAG_NAMES": "covidct.batch.slices",
    "IDENTIFYING_TEXT": "covidct.batch.slices",
    "INDEX_COLUMNS": "covidct.batch.expectations",
    "MANIFEST_COLUMNS": "covidct.batch.manifest",
    "MAX_BITS_PER_SAMPLE": "covidct.batch.slices",
    "MAX_DECODED_BYTES": "covidct.batch.slices",
    "MAX_DECODE_RATIO": "covidct.batch.slices",
    "MAX_EXAMPLES": "covidct.batch.checks",
    "MAX_SLICE_FILE_BYTES": "covidct.batch.slices",
    "MIN_SLICES_PER_SERIES": "covidct.batch.synth",
    "NOISE_SD_HU": "covidct.batch.synth",
    "PatientDetailsError": "covidct.batch.contract",
    "REASON_EXAMPLES": "covidct.batch.checks",
    "ROOT_FILES": "covidct.batch.manifest",
    "ROSTER_COLUMNS": "covidct.batch.roster",
    "RosterError": "covidct.batch.roster",
    "SIZE": "covidct.batch.synth",
    "SLICE_CHECKS": "covidct.batch.checks",
    "SLICE_NAME_FORMAT": "covidct.batch.slices",
    "SPECIAL": "covidct.batch.files",
    "SYMLINK": "covidct.batch.files",
    "SliceFile": "covidct.batch.manifest",
    "SliceReadError": "covidct.batch.slices",
    "SynthPatient": "covidct.batch.synth",
    "SynthReport": "covidct.batch.synth",
    "SynthSeries": "covidct.batch.synth",
    "THICKNESS_COLUMNS": "covidct.batch.checks",
    "Table": "covidct.batch.checks",
    "UNKNOWN_THICKNESS": "covidct.batch.contract",
    "VALID_LABELS": "covidct.batch.checks",
    "ValidationPolicy": "covidct.batch.checks",
    "apply_exclusions": "covidct.batch.validation",
    "batch_expectations": "covidct.batch.expectations",
    "batch_source": "covidct.batch.contract",
    "batch_table": "covidct.batch.manifest",
    "batch_validation_table": "covidct.batch.tables",
    "build_manifest": "covidct.batch.manifest",
    "check_name": "covidct.batch.files",
    "default_roster_dir": "covidct.batch.roster",
    "entry_problem": "covidct.batch.files",
    "escaped": "covidct.batch.files",
    "find_slice_files": "covidct.batch.manifest",
    "format_verdict": "covidct.batch.validation_report",
    "identifying_tags": "covidct.batch.slices",
    "labels_by_patient": "covidct.batch.manifest",
    "layout_expectations": "covidct.batch.expectations",
    "layout_table": "covidct.batch.tables",
    "load_default_roster": "covidct.batch.roster",
    "load_roster": "covidct.batch.roster",
    "manifest_frame": "covidct.batch.manifest",
    "name_problem": "covidct.batch.files",
    "parse_filenames": "covidct.batch.roster",
    "parse_instance": "covidct.batch.manifest",
    "patient_expectations": "covidct.batch.expectations",
    "patient_table": "covidct.batch.manifest",
    "patient_validation_table": "covidct.batch.tables",
    "pixel_stats": "covidct.batch.slices",
    "read_all_facts": "covidct.batch.manifest",
    "read_batch_info": "covidct.batch.contract",
    "read_patient_details": "covidct.batch.contract",
    "read_regular": "covidct.batch.files",
    "read_slice": "covidct.batch.slices",
    "read_slice_facts": "covidct.batch.slices",
    "sample_patients": "covidct.batch.synth",
    "scan_batch": "covidct.batch.files",
    "series_counts": "covidct.batch.roster",
    "slice_expectations": "covidct.batch.expectations",
    "slice_name": "covidct.batch.slices",
    "slice_table": "covidct.batch.tables",
    "summary_html": "covidct.batch.validation_report",
    "tiff_header_problem": "covidct.batch.slices",
    "validate_batch": "covidct.batch.validation",
    "write_batch_info": "covidct.batch.contract",
    "write_patient_details": "covidct.batch.contract",
    "write_report": "covidct.batch.validation_report",
    "write_slice": "covidct.batch.slices",
    "write_synthetic_batch": "covidct.batch.synth",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The re-exported name ``name`` (PEP 562), from the module that defines it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
