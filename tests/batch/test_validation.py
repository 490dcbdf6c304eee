"""covidct.batch.validation: every fault kind of issue 3 is caught and named, on tiny real
batches."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import BatchFactory, ct_slice, details_row, set_compression_tag, write_details

from covidct.batch.checks import Check, ValidationPolicy
from covidct.batch.validation import validate_batch
from covidct.batch.validation_report import format_verdict

SLICE = "patient1/SR_2/IM00001.tif"


def _overwrite(pixels: np.ndarray, **kwargs: object) -> Callable[[Path], None]:
    def mutate(batch: Path) -> None:
        tifffile.imwrite(batch / SLICE, pixels, **kwargs)

    return mutate


def _truncate(batch: Path) -> None:
    data = (batch / SLICE).read_bytes()
    (batch / SLICE).write_bytes(data[: len(data) // 2])


def _codec(batch: Path) -> None:
    set_compression_tag(batch / SLICE, 34712)


def _details(rows: list[list[str]]) -> Callable[[Path], None]:
    return lambda batch: write_details(batch, rows)


def _copy_slice_to_patient2(batch: Path) -> None:
    shutil.copy(batch / SLICE, batch / "patient2/SR_2/IM00009.tif")


def _hu_signed() -> np.ndarray:
    return (ct_slice(7).astype(np.int32) - 1024).astype(np.int16)


def _hu_wrapped() -> np.ndarray:
    return (ct_slice(7).astype(np.int32) - 1024).astype(np.int16).view(np.uint16)


def _identifying(batch: Path) -> None:
    tifffile.imwrite(batch / SLICE, ct_slice(8), description="PatientName=DOE^JANE", metadata=None)


def _layout_stray_file(batch: Path) -> None:
    (batch / "notes.docx").write_bytes(b"x")


def _empty(batch: Path) -> None:
    for folder in ("patient1", "patient2"):
        shutil.rmtree(batch / folder)


POSITIVE_AND_NEGATIVE = [details_row("patient1", "Positive"), details_row("patient2", "Negative")]

# (fault id, mutation of a good 2-patient batch, expected check, name the failure must show)
FAULTS: list[tuple[str, Callable[[Path], None], Check, str]] = [
    ("not_a_tiff", lambda b: (b / SLICE).write_bytes(b"GIF89a..."), Check.UNREADABLE, SLICE),
    ("truncated", _truncate, Check.UNREADABLE, SLICE),
    (
        "multi_page",
        _overwrite(np.stack([ct_slice(1), ct_slice(2)])),
        Check.MULTI_PAGE,
        SLICE,
    ),
    (
        "rgb",
        _overwrite(np.stack([ct_slice(1)] * 3, axis=-1), photometric="rgb"),
        Check.CHANNELS,
        SLICE,
    ),
    ("uint8", _overwrite((ct_slice(1) // 16).astype(np.uint8)), Check.DTYPE, SLICE),
    ("uint16_8bit", _overwrite(ct_slice(1) // 16), Check.EIGHT_BIT, SLICE),
    ("hu_signed", _overwrite(_hu_signed()), Check.VALUE_RANGE, SLICE),
    ("hu_wrapped", _overwrite(_hu_wrapped()), Check.VALUE_RANGE, SLICE),
    ("size", _overwrite(ct_slice(1, shape=(256, 256))), Check.SHAPE, SLICE),
    ("constant", _overwrite(np.full((512, 512), 1000, np.uint16)), Check.CONSTANT, SLICE),
    ("codec", _codec, Check.UNREADABLE, "JPEG2000"),
    ("inverted", _overwrite(4095 - ct_slice(1)), Check.POLARITY, SLICE),
    ("miniswhite", _overwrite(ct_slice(1), photometric="miniswhite"), Check.PHOTOMETRIC, SLICE),
    (
        "missing_series",
        lambda b: shutil.rmtree(b / "patient1/SR_3"),
        Check.MISSING_SERIES,
        "negin/patient1 (missing_series=SR_3)",
    ),
    (
        "unexpected_series",
        lambda b: shutil.copytree(b / "patient1/SR_3", b / "patient1/SR_5"),
        Check.SERIES_FOLDER,
        "patient1/SR_5/IM00001.tif",
    ),
    (
        "unexpected_series_patient",
        lambda b: shutil.copytree(b / "patient1/SR_3", b / "patient1/SR_5"),
        Check.UNEXPECTED_SERIES,
        "negin/patient1 (unexpected_series=SR_5)",
    ),
    (
        "series_without_thickness",
        _details([details_row("patient1", "Positive", ("5", "", "5")), POSITIVE_AND_NEGATIVE[1]]),
        Check.UNEXPECTED_SERIES,
        "negin/patient1 (unexpected_series=SR_3)",
    ),
    (
        "thickness_not_a_number",
        _details(
            [details_row("patient1", "Positive", ("5", "thin", "5")), POSITIVE_AND_NEGATIVE[1]]
        ),
        Check.LAYOUT,
        "SR_3 Folder thickness(mm) 'thin' is not a thickness in mm, empty or N/A",
    ),
    (
        "wrong_depth",
        lambda b: shutil.move(b / SLICE, b / "patient1/IM00001.tif"),
        Check.SERIES_FOLDER,
        "patient1/IM00001.tif",
    ),
    ("empty", _empty, Check.EMPTY_BATCH, ""),
    ("no_label", _details(POSITIVE_AND_NEGATIVE[1:]), Check.LABEL_MISSING, "negin/patient1"),
    (
        "label_no_images",
        _details([*POSITIVE_AND_NEGATIVE, details_row("patient3", "Negative")]),
        Check.NO_IMAGES,
        "negin/patient3",
    ),
    (
        "label_value",
        _details([details_row("patient1", "positive"), POSITIVE_AND_NEGATIVE[1]]),
        Check.LABEL_VALUE,
        "negin/patient1 (label=positive)",
    ),
    (
        "duplicate_details",
        _details([*POSITIVE_AND_NEGATIVE, details_row("patient1", "Negative")]),
        Check.DUPLICATE_DETAILS,
        "negin/patient1",
    ),
    (
        "same_slice_two_patients",
        _copy_slice_to_patient2,
        Check.DUPLICATE_SLICE,
        "patient2/SR_2/IM00009.tif",
    ),
    ("identifying_tags", _identifying, Check.IDENTIFYING_TAGS, SLICE),
    ("stray_root_file", _layout_stray_file, Check.LAYOUT, "notes.docx"),
    (
        "no_details_file",
        lambda b: (b / "Patient_details.csv").unlink(),
        Check.LAYOUT,
        "Patient_details.csv (problem=Patient_details.csv: missing)",
    ),
    (
        "bad_batch_json",
        lambda b: (b / "batch.json").write_text("{not json"),
        Check.LAYOUT,
        "batch.json",
    ),
    ("empty_patient_folder", lambda b: (b / "patient7").mkdir(), Check.LAYOUT, "patient7/"),
]


@pytest.fixture
def good_batch(batch_factory: BatchFactory) -> Path:
    return batch_factory.write()


def test_good_batch_passes_with_reports(good_batch: Path, tmp_path: Path) -> None:
    verdict = validate_batch(good_batch, report_dir=tmp_path / "report", progress=False)
    assert verdict.passed, verdict.reasons
    assert (verdict.n_slices, verdict.n_patients, verdict.source) == (6, 2, "negin")
    assert verdict.failures == () and verdict.excluded_slices == ()
    saved = json.loads((tmp_path / "report" / "validation.json").read_text())
    assert saved == json.loads(json.dumps(verdict.to_dict()))
    assert (tmp_path / "report" / "data_docs" / "index.html").is_file()
    assert "PASSED" in (tmp_path / "report" / "index.html").read_text()
    assert format_verdict(verdict).startswith("batch batch1: PASSED (6 slices")


@pytest.mark.parametrize(
    ("mutate", "check", "named"), [pytest.param(*row[1:], id=row[0]) for row in FAULTS]
)
def test_fault_kind_is_caught_and_named(
    good_batch: Path, mutate: Callable[[Path], None], check: Check, named: str
) -> None:
    mutate(good_batch)
    verdict = validate_batch(good_batch, progress=False)
    assert not verdict.passed
    failures = [f for f in verdict.failures if f.check == check]
    assert failures, f"{check} not among {verdict.reasons}"
    assert any(named in example for f in failures for example in f.examples), failures
    assert any(check.value in reason for reason in verdict.reasons)


def test_failures_name_files_in_data_docs_and_json(good_batch: Path, tmp_path: Path) -> None:
    _overwrite(ct_slice(1) // 16)(good_batch)
    verdict = validate_batch(good_batch, report_dir=tmp_path / "r", progress=False)
    saved = json.loads((tmp_path / "r" / "validation.json").read_text())
    assert saved["passed"] is False
    assert saved["failures"][0]["check"] == "eight_bit"
    assert saved["failures"][0]["examples"][0].startswith(SLICE)
    docs = tmp_path / "r" / "data_docs"
    pages = [p.read_text() for p in docs.rglob("*.html") if "validations" in p.parts]
    assert any(SLICE in page for page in pages)
    assert "FAILED" in (tmp_path / "r" / "index.html").read_text()
    assert SLICE in format_verdict(verdict)


def test_label_contradiction_with_an_earlier_batch(good_batch: Path) -> None:
    verdict = validate_batch(
        good_batch, known_labels={"negin/patient1": "Negative"}, progress=False
    )
    failure = next(f for f in verdict.failures if f.check == Check.LABEL_CONTRADICTION)
    assert failure.examples == ("negin/patient1 (label_contradiction=Negative -> Positive)",)


def test_slice_resent_from_an_earlier_batch(good_batch: Path) -> None:
    earlier = validate_batch(good_batch, progress=False).manifest
    sha = earlier.set_index("path").loc[SLICE, "sha256"]
    verdict = validate_batch(good_batch, known_hashes={sha: "negin/patient9"}, progress=False)
    failure = next(f for f in verdict.failures if f.check == Check.RESENT_SLICE)
    assert failure.examples == (f"{SLICE} (earlier_patient=negin/patient9)",)


def test_two_sources_with_the_same_patient_id_stay_apart(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write("b2", patients={"patient1": "Negative"}, source="hospitalB")
    known = {"negin/patient1": "Positive"}
    verdict = validate_batch(batch, known_labels=known, progress=False)
    assert verdict.passed, verdict.reasons
    assert set(verdict.manifest["patient_key"]) == {"hospitalB/patient1"}
    clash = validate_batch(batch, known_labels={"hospitalB/patient1": "Positive"}, progress=False)
    assert clash.failed_checks == {Check.LABEL_CONTRADICTION}


def test_compressed_tiff_is_accepted(good_batch: Path) -> None:
    pixels = tifffile.imread(good_batch / SLICE)
    tifffile.imwrite(good_batch / SLICE, pixels, compression="zlib")
    verdict = validate_batch(good_batch, progress=False)
    assert verdict.passed, verdict.reasons
    assert verdict.manifest.set_index("path").loc[SLICE, "compression"] == "ADOBE_DEFLATE"


def test_patient_without_stated_thickness_may_have_any_series(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"}, series=("SR_3",))
    write_details(batch, [details_row("patient1", "Positive", ("", "", ""))])
    assert validate_batch(batch, progress=False).passed


# ------------------------------------------------------------------------------ the policy


def _batch_with_one_constant_slice(
    batch_factory: BatchFactory, bad: Callable[[Path], None]
) -> Path:
    batch = batch_factory.write(patients={"patient1": "Positive"}, slices_per_series=4)
    bad(batch)
    return batch


@pytest.mark.parametrize(
    ("fraction", "bad", "passes", "checks"),
    [
        (0.0, _overwrite(np.full((512, 512), 300, np.uint16)), False, {Check.CONSTANT}),
        (0.1, _overwrite(np.full((512, 512), 300, np.uint16)), True, set()),
        (
            0.05,
            _overwrite(np.full((512, 512), 300, np.uint16)),
            False,
            {Check.CONSTANT, Check.EXCLUSION_LIMIT},
        ),
        (0.1, _identifying, False, {Check.IDENTIFYING_TAGS}),  # never excluded by default
    ],
)
def test_tolerance_policy(
    batch_factory: BatchFactory,
    fraction: float,
    bad: Callable[[Path], None],
    passes: bool,
    checks: set[Check],
) -> None:
    batch = _batch_with_one_constant_slice(batch_factory, bad)  # 12 slices, 1 bad = 8.3%
    verdict = validate_batch(
        batch, policy=ValidationPolicy(max_excluded_fraction=fraction), progress=False
    )
    assert verdict.passed is passes
    assert verdict.failed_checks == checks
    assert verdict.excluded_slices == ((SLICE,) if passes else ())
    assert verdict.manifest["excluded"].sum() == (1 if passes else 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_excluded_fraction": 1.5}, "max_excluded_fraction"),
        ({"max_excluded_fraction": -0.1}, "max_excluded_fraction"),
        ({"excludable": frozenset({"label_value"})}, "only slice checks are excludable"),
        (
            {"excludable": frozenset({"nonsense"})},
            "check: expected one of unreadable, .*; got 'nonsense'",
        ),
    ],
)
def test_policy_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ValidationPolicy(**kwargs)  # type: ignore[arg-type]


def test_missing_batch_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        validate_batch(tmp_path / "nowhere", progress=False)


def test_verdict_equality_ignores_the_manifest(good_batch: Path) -> None:
    first = validate_batch(good_batch, progress=False)
    second = validate_batch(good_batch, progress=False)
    assert first == second and "manifest" not in repr(first)


def test_uint8_slice_gets_one_reason_not_also_eight_bit(batch_factory: BatchFactory) -> None:
    batch = batch_factory.write()
    _overwrite((ct_slice(1) // 16).astype(np.uint8))(batch)  # fails dtype; max <= 255 too
    _overwrite(ct_slice(2) // 16)(batch_factory.write("other"))
    verdict = validate_batch(batch, progress=False)
    checks = [failure.check for failure in verdict.failures]
    assert checks == [Check.DTYPE], verdict.reasons
    assert len(verdict.reasons) == 1 and "not uint16" in verdict.reasons[0]
    # a uint16 slice holding 8-bit data is still named by the derived check
    other = validate_batch(batch_factory.root / "other", progress=False)
    assert [failure.check for failure in other.failures] == [Check.EIGHT_BIT]
