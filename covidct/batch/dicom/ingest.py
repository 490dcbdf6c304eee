"""Convert DICOM CT series into a Negin-style batch: discovery, series, ordering, writing.

The rules are in the package docstring (:mod:`covidct.batch.dicom`); the pixel maths and the checks
of
one slice are in :mod:`covidct.batch.dicom.slices`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from covidct import schema
from covidct.batch.contract import (
    NAME_PATTERN,
    UNKNOWN_THICKNESS,
    write_batch_info,
    write_patient_details,
)
from covidct.batch.dicom.slices import (
    SizePolicy,
    dataset_to_negin,
    rescale_assumption,
    slice_problems,
)
from covidct.batch.files import entry_problem
from covidct.batch.slices import slice_name, write_slice
from covidct.config import parse_enum

logger = logging.getLogger(__name__)

#: The batch contract's name pattern (a source prefixes patient keys).
_SOURCE_PATTERN = re.compile(NAME_PATTERN)


def parse_label(value: str | schema.Label) -> schema.Label:
    """Return the Label for ``value``; raises ValueError listing Positive/Negative."""
    try:
        return schema.Label(value)
    except ValueError:
        valid = [member.value for member in schema.Label]
        raise ValueError(f"label must be one of {valid}, got {value!r}") from None


@dataclass(frozen=True)
class SeriesAssignment:
    """One DICOM series written as an SR folder of one patient."""

    patient_id: str
    sr_folder: str
    source_folders: tuple[str, ...]
    series_number: int | None
    slices: int
    thickness_mm: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view."""
        return {
            "patient_id": self.patient_id,
            "sr_folder": self.sr_folder,
            "source_folders": list(self.source_folders),
            "series_number": self.series_number,
            "slices": self.slices,
            "thickness_mm": self.thickness_mm,
        }


@dataclass(frozen=True)
class IngestReport:
    """What :func:`ingest_dicom` wrote and skipped.

    ``written``: slices written per patient id (0 for a subject with nothing usable; such a
    patient gets no folder and no ``Patient_details.csv`` row). ``skipped``: (file, reason) pairs,
    files relative to the DICOM folder, POSIX separators. ``files``: (source file, output file)
    pairs, the output relative to the batch folder. ``assumptions``: (file, assumption) of every
    written slice converted with an assumed rescale tag (``assume_intercept``, slope 1). Treat
    the dict as read-only.
    """

    source: str
    label: str
    size_policy: str
    written: dict[str, int] = field(default_factory=dict)
    series: tuple[SeriesAssignment, ...] = ()
    files: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    assume_intercept: float | None = None
    assumptions: tuple[tuple[str, str], ...] = ()

    @property
    def slices_written(self) -> int:
        """Total slices written."""
        return sum(self.written.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON view (the ``ingest`` section of ``batch.json``)."""
        return {
            "source": self.source,
            "label": self.label,
            "size_policy": self.size_policy,
            "patients": len([n for n in self.written.values() if n > 0]),
            "slices_written": self.slices_written,
            "skipped_count": len(self.skipped),
            "written": dict(sorted(self.written.items())),
            "series": [assignment.to_dict() for assignment in self.series],
            "files": [{"source": src, "output": out} for src, out in self.files],
            "skipped": [{"file": name, "reason": reason} for name, reason in self.skipped],
            "assume_intercept": self.assume_intercept,
            "assumptions": [{"file": name, "assumed": text} for name, text in self.assumptions],
        }


@dataclass(frozen=True)
class _Options:
    size_policy: SizePolicy
    invert_monochrome1: bool
    assume_intercept: float | None


@dataclass(frozen=True)
class _Slice:
    """Header facts of one readable, acceptable DICOM slice."""

    path: Path
    rel: str
    series_folder: str
    series_key: str
    series_number: int | None
    z: float | None
    instance: int | None
    thickness: float | None


# --------------------------------------------------------------------------- discovery


def _layout_problem(rel: Path) -> str | None:
    """Why a file (relative to the DICOM folder) is not a candidate slice, or None."""
    if any(part.startswith(".") for part in rel.parts):
        return "hidden file" if rel.name.startswith(".") else "inside a hidden folder"
    if len(rel.parts) < 2:
        return "not inside a subject folder: expected <subject>/[<folders>/]<file>"
    return None


def _file_problem(path: Path) -> str | None:
    """A symbolic link or special file is never read (a hard link is: it names no other place)."""
    problem = entry_problem(path.lstat())
    return None if problem is None or problem.startswith("hard link") else problem


def _discover(dicom_dir: Path) -> tuple[dict[str, list[Path]], list[tuple[str, str]]]:
    """Subject -> candidate files (sorted); every other file as (file, reason).

    Every non-hidden folder directly under ``dicom_dir`` is a subject, even an empty one.
    Symbolic links to folders are not followed (os.walk default) and are reported.
    """
    subjects: dict[str, list[Path]] = {
        p.name: [] for p in dicom_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    }
    skipped: list[tuple[str, str]] = []
    for root, dirs, files in os.walk(dicom_dir):
        dirs.sort()
        for name in [d for d in dirs if Path(root, d).is_symlink()]:
            skipped.append((Path(root, name).relative_to(dicom_dir).as_posix(), "symbolic link"))
        for name in sorted(files):
            rel = (Path(root) / name).relative_to(dicom_dir)
            problem = _layout_problem(rel) or _file_problem(dicom_dir / rel)
            if problem:
                skipped.append((rel.as_posix(), problem))
            else:
                subjects.setdefault(rel.parts[0], []).append(dicom_dir / rel)
    return dict(sorted(subjects.items())), skipped


def _optional_float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _optional_int(value: object) -> int | None:
    number = _optional_float(value)
    return int(number) if number is not None else None


def _read_header(path: Path, options: _Options) -> tuple[Dataset | None, str | None]:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=False, defer_size=1024)
    except (InvalidDicomError, OSError, EOFError, ValueError) as error:
        return None, f"not a readable DICOM file ({type(error).__name__}: {error})"
    problems = slice_problems(ds, options.size_policy, options.assume_intercept)
    return (None, "; ".join(problems)) if problems else (ds, None)


def _slice_facts(ds: Dataset, path: Path, rel: str) -> _Slice:
    position = ds.get("ImagePositionPatient")
    folder = "/".join(Path(rel).parts[1:-1]) or "."
    return _Slice(
        path=path,
        rel=rel,
        series_folder=folder,
        series_key=str(ds.get("SeriesInstanceUID") or f"folder:{folder}"),
        series_number=_optional_int(ds.get("SeriesNumber")),
        z=_optional_float(position[2]) if position is not None and len(position) == 3 else None,
        instance=_optional_int(ds.get("InstanceNumber")),
        thickness=_optional_float(ds.get("SliceThickness")),
    )


def _subject_slices(
    dicom_dir: Path, files: list[Path], options: _Options, progress: _Progress
) -> dict[str, list[_Slice]]:
    """Read the headers of one subject; acceptable slices grouped by series key."""
    series: dict[str, list[_Slice]] = {}
    seen: dict[str, str] = {}
    for path in files:
        rel = path.relative_to(dicom_dir).as_posix()
        ds, problem = _read_header(path, options)
        if ds is None:
            progress.skipped.append((rel, problem or "unreadable"))
            continue
        sop = str(ds.get("SOPInstanceUID") or "")
        if sop and sop in seen:
            progress.skipped.append((rel, f"duplicate SOPInstanceUID of {seen[sop]}"))
            continue
        seen[sop] = rel
        assumption = rescale_assumption(ds, options.assume_intercept)
        if assumption:
            progress.assumptions.append((rel, assumption))
        facts = _slice_facts(ds, path, rel)
        series.setdefault(facts.series_key, []).append(facts)
    return series


def _order_slices(slices: Sequence[_Slice]) -> list[_Slice]:
    """Head-to-feet order of one series (rule 4 of the module docstring)."""
    big = float("inf")
    if all(item.z is not None for item in slices):
        return sorted(
            slices,
            key=lambda s: (-(s.z or 0.0), s.instance if s.instance is not None else big, s.rel),
        )
    return sorted(slices, key=lambda s: (s.instance if s.instance is not None else big, s.rel))


def _series_sort_key(slices: Sequence[_Slice]) -> tuple[float, str, str]:
    first = min(slices, key=lambda s: s.rel)
    number = first.series_number
    return (float(number) if number is not None else float("inf"), first.series_folder, first.rel)


# --------------------------------------------------------------------------- writing


def _convert_series(
    slices: Sequence[_Slice], options: _Options, skipped: list[tuple[str, str]]
) -> list[tuple[_Slice, np.ndarray]]:
    converted: list[tuple[_Slice, np.ndarray]] = []
    for item in _order_slices(slices):
        try:
            ds = pydicom.dcmread(item.path)
            array = dataset_to_negin(
                ds,
                size_policy=options.size_policy,
                invert_monochrome1=options.invert_monochrome1,
                assume_intercept=options.assume_intercept,
            )
        except Exception as error:  # decoder failures come as many types; keep going, report it
            skipped.append(
                (item.rel, f"pixel data not converted ({type(error).__name__}: {error})")
            )
            continue
        converted.append((item, array))
    return converted


def _most_common_thickness(slices: Sequence[_Slice]) -> float | None:
    values = [item.thickness for item in slices if item.thickness is not None]
    if not values:
        return None
    return Counter(round(value, 4) for value in values).most_common(1)[0][0]


def _write_series(
    batch_dir: Path, patient_id: str, sr_folder: str, converted: list[tuple[_Slice, np.ndarray]]
) -> tuple[SeriesAssignment, list[tuple[str, str]]]:
    mapping: list[tuple[str, str]] = []
    for index, (item, array) in enumerate(converted, start=1):
        output = Path(patient_id) / sr_folder / slice_name(index)
        write_slice(batch_dir / output, array)
        mapping.append((item.rel, output.as_posix()))
    slices = [item for item, _ in converted]
    assignment = SeriesAssignment(
        patient_id=patient_id,
        sr_folder=sr_folder,
        source_folders=tuple(sorted({item.series_folder for item in slices})),
        series_number=slices[0].series_number,
        slices=len(slices),
        thickness_mm=_most_common_thickness(slices),
    )
    return assignment, mapping


@dataclass
class _Progress:
    written: dict[str, int] = field(default_factory=dict)
    series: list[SeriesAssignment] = field(default_factory=list)
    files: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    assumptions: list[tuple[str, str]] = field(default_factory=list)


def _ingest_subject(
    batch_dir: Path,
    patient_id: str,
    series: dict[str, list[_Slice]],
    options: _Options,
    progress: _Progress,
) -> None:
    free = list(schema.SERIES)
    progress.written[patient_id] = 0
    for slices in sorted(series.values(), key=_series_sort_key):
        converted = _convert_series(slices, options, progress.skipped)
        if not converted:
            continue
        if not free:
            first = converted[0][0]
            reason = (
                f"extra axial series (SeriesNumber {first.series_number}, folder "
                f"{first.series_folder}): only {', '.join(schema.SERIES)} exist"
            )
            progress.skipped.extend((item.rel, reason) for item, _ in converted)
            continue
        assignment, mapping = _write_series(batch_dir, patient_id, free.pop(0), converted)
        progress.series.append(assignment)
        progress.files.extend(mapping)
        progress.written[patient_id] += assignment.slices


def _details_rows(
    series: Sequence[SeriesAssignment], label: schema.Label
) -> list[dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for assignment in series:
        row = rows.setdefault(
            assignment.patient_id,
            {schema.PATIENT_COLUMN: assignment.patient_id, schema.LABEL_COLUMN: label.value},
        )
        thickness = assignment.thickness_mm
        row[f"{assignment.sr_folder} Folder thickness(mm)"] = (
            UNKNOWN_THICKNESS if thickness is None else thickness
        )
    return [rows[patient] for patient in sorted(rows)]


def _check_arguments(dicom_dir: Path, out_dir: Path, source: str) -> None:
    if not dicom_dir.is_dir():
        raise FileNotFoundError(f"DICOM folder {dicom_dir} does not exist")
    if not _SOURCE_PATTERN.fullmatch(source):
        raise ValueError(
            f"source must be a name matching {NAME_PATTERN} (it prefixes patient keys), got "
            f"{ascii(source)}"
        )
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"output folder {out_dir} exists and is not an empty folder")
    if out_dir.resolve().is_relative_to(dicom_dir.resolve()):
        raise ValueError(
            f"output folder {out_dir} must not lie inside the DICOM folder {dicom_dir}"
        )


def ingest_dicom(
    dicom_dir: str | Path,
    out_dir: str | Path,
    label: str | schema.Label,
    source: str,
    *,
    size_policy: str | SizePolicy = "skip",
    invert_monochrome1: bool = False,
    assume_intercept: float | None = None,
) -> IngestReport:
    """Convert ``dicom_dir/<subject>/<series folder>/*`` into a Negin-style batch in ``out_dir``.

    Every subject is one patient (id = subject folder name) with ``label`` (Positive/Negative);
    ``source`` goes to ``batch.json`` and namespaces the patient keys. See the module docstring
    for the rules; ``assume_intercept``: the RescaleIntercept of slices that lack one (rule 5;
    None skips them). The batch is built in a sibling ``.<name>.partial`` folder and renamed
    into place at the end, so ``out_dir`` never holds half a batch.

    Returns an IngestReport. Raises FileNotFoundError (no ``dicom_dir``), FileExistsError
    (``out_dir`` exists and is not empty), ValueError (unknown label or size policy, a source that
    cannot prefix a key, ``out_dir`` inside ``dicom_dir``).
    """
    dicom_dir, out_dir = Path(dicom_dir), Path(out_dir)
    label = parse_label(label)
    policy = parse_enum(SizePolicy, str(size_policy), "size_policy")
    _check_arguments(dicom_dir, out_dir, source)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    subjects, discovery_skips = _discover(dicom_dir)
    progress = _Progress(skipped=discovery_skips)
    options = _Options(policy, invert_monochrome1, assume_intercept)
    for patient_id, files in subjects.items():
        series = _subject_slices(dicom_dir, files, options, progress)
        _ingest_subject(staging, patient_id, series, options, progress)
    written = {src for src, _ in progress.files}
    report = IngestReport(
        source=source,
        label=label.value,
        size_policy=policy.value,
        written=progress.written,
        series=tuple(progress.series),
        files=tuple(progress.files),
        skipped=tuple(sorted(progress.skipped)),
        assume_intercept=assume_intercept,
        assumptions=tuple(sorted(a for a in progress.assumptions if a[0] in written)),
    )
    write_patient_details(staging / schema.PATIENT_DETAILS, _details_rows(report.series, label))
    write_batch_info(staging, {"source": source, "ingest": report.to_dict()})
    staging.replace(out_dir)
    logger.info(
        "ingested %s: %d slices of %d patients, %d files skipped",
        dicom_dir,
        report.slices_written,
        len(report.written),
        len(report.skipped),
    )
    return report


def format_ingest_summary(report: IngestReport, examples: int = 3) -> str:
    """Return a few lines for people: slices written per patient, skipped files per reason."""
    lines = [
        f"wrote {report.slices_written} slices of "
        f"{len([n for n in report.written.values() if n])} patients "
        f"(source {report.source}, label {report.label}); skipped {len(report.skipped)} files"
    ]
    lines += [f"  {patient}: {count} slices" for patient, count in sorted(report.written.items())]
    by_reason: dict[str, list[str]] = {}
    for name, reason in report.skipped:
        by_reason.setdefault(reason, []).append(name)
    for reason, names in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        more = f" and {len(names) - examples} more" if len(names) > examples else ""
        lines.append(f"  skipped {len(names)}: {reason} (e.g. {', '.join(names[:examples])}{more})")
    if report.assumptions:
        lines.append(f"  {len(report.assumptions)} slices converted with an assumed rescale tag")
    return "\n".join(lines)
