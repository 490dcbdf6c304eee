"""Issue 15: custody against hostile and messy input, each case with its named reason.

Every case uses real files (symbolic links, hard links, FIFOs, TIFFs written with tifffile,
TCIA DICOM copied and edited with pydicom) and asserts, besides the reason, that no byte of the
batch changed and that nothing from outside the batch reached the lake.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import REPO, SHARED_DATA, BatchFactory, ct_slice

from covidct import schema
from covidct.batch.checks import Check
from covidct.batch.dicom import ingest_dicom
from covidct.batch.slices import SliceReadError, read_slice, read_slice_facts
from covidct.batch.validation import validate_batch
from covidct.cli import EXIT_ERROR, EXIT_INVALID, EXIT_OK, main
from covidct.lake.backends import LocalStore
from covidct.lake.curation import known_hashes
from covidct.lake.custody import (
    BatchLedger,
    BatchStatus,
    LedgerEntry,
    local_file_hashes,
    pending_batches,
)
from covidct.lake.landing import LandingConflict, land_batch
from covidct.lake.layout import LakeLayout

LUNG = SHARED_DATA / "tcia" / "lung-pet-ct-dx"
SECRET = b"root:x:0:0:root:/root:/bin/bash\n"


def tree_digest(root: Path) -> dict[str, str]:
    """{relative path: sha256 of the bytes, or 'link -> target', or the file type}, no link
    followed: the state of a folder as the kernel sees it."""
    state: dict[str, str] = {}
    if not root.exists():
        return state
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[rel] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                state[rel] = "dir"
            elif path.is_file():
                state[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                state[rel] = "special"
    return state


def lake_bytes(lake: Path) -> list[bytes]:
    return [p.read_bytes() for p in lake.rglob("*") if p.is_file() and not p.is_symlink()]


# ------------------------------------------------------------------ 1. nothing outside is read


def _outside(batch: Path) -> Path:
    outside = batch.parent / "outside"
    outside.mkdir(exist_ok=True)
    return outside


def _link_to_secret(batch: Path) -> str:
    secret = _outside(batch) / "passwd"
    secret.write_bytes(SECRET)
    (batch / "patient1/SR_2/IM00002.tif").symlink_to(secret)
    return "patient1/SR_2/IM00002.tif"


def _link_to_outside_tiff(batch: Path) -> str:
    tiff = _outside(batch) / "other.tif"
    tifffile.imwrite(tiff, ct_slice(991), photometric="minisblack")
    (batch / "patient1/SR_2/IM00002.tif").symlink_to(tiff)
    return "patient1/SR_2/IM00002.tif"


def _linked_patient_folder(batch: Path) -> str:
    moved = _outside(batch) / "patient1"
    shutil.move(batch / "patient1", moved)
    (batch / "patient1").symlink_to(moved, target_is_directory=True)
    return "patient1"


def _hard_link_to_outside_tiff(batch: Path) -> str:
    tiff = _outside(batch) / "other.tif"
    tifffile.imwrite(tiff, ct_slice(992), photometric="minisblack")
    os.link(tiff, batch / "patient1/SR_2/IM00002.tif")
    return "patient1/SR_2/IM00002.tif"


def _fifo(batch: Path) -> str:
    os.mkfifo(batch / "patient1/SR_2/IM00002.tif")
    return "patient1/SR_2/IM00002.tif"


HOSTILE_ENTRIES: list[tuple[str, Callable[[Path], str], str]] = [
    ("symlink-to-passwd", _link_to_secret, "symbolic link"),
    ("symlink-to-outside-tiff", _link_to_outside_tiff, "symbolic link"),
    ("symlinked-patient-folder", _linked_patient_folder, "symbolic link"),
    ("hard-link-to-outside-tiff", _hard_link_to_outside_tiff, "hard link (2 names"),
    ("fifo", _fifo, "not a regular file (FIFO)"),
]
HOSTILE_IDS = [row[0] for row in HOSTILE_ENTRIES]


def _hostile_batch(batch_factory: BatchFactory, make: Callable[[Path], str]) -> tuple[Path, str]:
    batch = batch_factory.write(patients={"patient1": "Positive", "patient2": "Negative"})
    return batch, make(batch)


@pytest.mark.parametrize(("make", "reason"), [r[1:] for r in HOSTILE_ENTRIES], ids=HOSTILE_IDS)
def test_validation_refuses_what_is_not_a_regular_file(
    batch_factory: BatchFactory, make: Callable[[Path], str], reason: str
) -> None:
    batch, entry = _hostile_batch(batch_factory, make)
    before = tree_digest(batch.parent)
    verdict = validate_batch(batch, progress=False, workers=1)
    assert not verdict.passed
    assert Check.LAYOUT in verdict.failed_checks
    layout = next(r for r in verdict.reasons if r.startswith("[layout]"))
    assert f"{entry} (problem={reason}" in layout
    assert entry not in set(verdict.manifest["path"])  # never read, never summarised
    assert tree_digest(batch.parent) == before


@pytest.mark.parametrize(("make", "reason"), [r[1:] for r in HOSTILE_ENTRIES], ids=HOSTILE_IDS)
def test_land_refuses_the_whole_batch_and_writes_nothing(
    batch_factory: BatchFactory, tmp_path: Path, make: Callable[[Path], str], reason: str
) -> None:
    batch, entry = _hostile_batch(batch_factory, make)
    before = tree_digest(batch.parent)
    lake = tmp_path / "lake"
    with pytest.raises(ValueError, match="nothing landed") as caught:
        land_batch(LocalStore(lake), batch, "week48")
    assert f"{entry} ({reason}" in str(caught.value)
    assert tree_digest(lake) == {} or not lake_bytes(lake)
    assert tree_digest(batch.parent) == before


def test_cli_validate_names_the_symlink(
    batch_factory: BatchFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    batch, entry = _hostile_batch(batch_factory, _link_to_secret)
    assert main(["validate", str(batch)]) == EXIT_INVALID
    out = capsys.readouterr().out
    assert f"{entry} (problem=symbolic link" in out and "root:x:0:0" not in out


def test_cli_land_names_the_symlink_and_copies_no_outside_byte(
    batch_factory: BatchFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    batch, entry = _hostile_batch(batch_factory, _link_to_secret)
    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path / "home"))
    assert main(["land", str(batch), "--batch-id", "x"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and entry in err and "symbolic link" in err
    assert all(SECRET not in data for data in lake_bytes(tmp_path / "home"))


def test_landing_holds_exactly_the_files_read_and_records_them(
    batch_factory: BatchFactory, tmp_path: Path
) -> None:
    batch = batch_factory.write()
    store = LocalStore(tmp_path / "lake")
    receipt = land_batch(store, batch, "week48")
    assert receipt.action == "landed"
    assert receipt.files == local_file_hashes(batch) == store.hash_prefix("landing/week48")
    (key,) = store.list(LakeLayout.landing_receipts("week48"))
    recorded = json.loads(store.read_text(key))
    assert recorded["files"] == receipt.files and recorded["content_hash"] == receipt.content_hash


def test_a_link_placed_in_the_lake_is_neither_listed_nor_read(
    batch_factory: BatchFactory, tmp_path: Path
) -> None:
    batch = batch_factory.write()
    store = LocalStore(tmp_path / "lake")
    land_batch(store, batch, "week48")
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET)
    (tmp_path / "lake/landing/week48/patient1/SR_2/IM00009.tif").symlink_to(secret)
    assert store.hash_prefix("landing/week48") == local_file_hashes(batch)
    with pytest.raises(OSError):
        store.read_bytes("landing/week48/patient1/SR_2/IM00009.tif")


# ---------------------------------------------------------- 2 and 3. one content, one batch


def test_relanding_other_content_is_refused_then_replaced_completely(
    batch_factory: BatchFactory, tmp_path: Path
) -> None:
    batch = batch_factory.write(slices_per_series=2)
    store = LocalStore(tmp_path / "lake")
    first = land_batch(store, batch, "week48")
    (batch / "patient1/SR_2/IM00002.tif").unlink()  # the sender withdraws a slice
    with pytest.raises(LandingConflict, match="landing/week48 already holds other content"):
        land_batch(store, batch, "week48")
    second = land_batch(store, batch, "week48", replace=True)
    assert second.action == "replaced" and second.replaced == first.content_hash
    landed = store.hash_prefix("landing/week48")
    assert "patient1/SR_2/IM00002.tif" not in landed  # no stale file survives
    assert landed == local_file_hashes(batch)
    receipts = [
        json.loads(store.read_text(k)) for k in store.list(f"{LakeLayout.LEDGER_LANDINGS}/")
    ]
    assert {r["content_hash"] for r in receipts} == {first.content_hash, second.content_hash}


def test_same_content_under_a_second_id_is_a_no_op_that_says_so(
    batch_factory: BatchFactory, tmp_path: Path
) -> None:
    batch = batch_factory.write()
    store = LocalStore(tmp_path / "lake")
    first = land_batch(store, batch, "week48")
    again = land_batch(store, batch, "week48")
    assert again.action == "no-op" and "already holds this content" in again.message
    other = land_batch(store, batch, "week48-resent")
    assert other.action == "no-op"
    assert "already pending as landing/week48" in other.message
    assert store.list("landing/week48-resent/") == []
    BatchLedger(store).record(
        LedgerEntry(first.content_hash, "week48", BatchStatus.ACCEPTED, "curated/x", 1, "t")
    )
    late = land_batch(store, batch, "week49")
    assert late.action == "no-op" and "already accepted as batch week48" in late.message


def test_a_batch_changed_behind_land_is_not_pending_until_landed_again(
    batch_factory: BatchFactory, tmp_path: Path
) -> None:
    batch = batch_factory.write()
    store = LocalStore(tmp_path / "lake")
    land_batch(store, batch, "week48")
    assert [p.batch_id for p in pending_batches(store)] == ["week48"]
    extra = (batch / "patient1/SR_2/IM00001.tif").read_bytes()  # e.g. an interrupted --replace
    store.write_bytes("landing/week48/patient1/SR_2/IM00099.tif", extra)
    assert pending_batches(store) == []
    land_batch(store, batch, "week48", replace=True)
    assert [p.batch_id for p in pending_batches(store)] == ["week48"]
    assert store.hash_prefix("landing/week48") == local_file_hashes(batch)


def test_one_run_never_takes_the_same_content_twice(
    batch_factory: BatchFactory, tmp_path: Path
) -> None:
    batch = batch_factory.write()
    store = LocalStore(tmp_path / "lake")
    store.upload_dir(batch, "landing/a")  # e.g. copied straight into the bucket, twice
    store.upload_dir(batch, "landing/b")
    assert pending_batches(store) == []  # no receipt vouches for either (issue 32)
    land_batch(store, batch, "a")  # completes a's landing: its receipt
    (receipt,) = store.list(LakeLayout.landing_receipts("a"))
    store.copy_object(receipt, receipt.replace("/landings/a/", "/landings/b/"))  # a copied ledger
    assert [p.batch_id for p in pending_batches(store)] == ["a"]


@pytest.mark.parametrize(("this", "other"), [("a", "b"), ("b", "a")])
def test_same_pixels_in_two_batches_of_one_run_fail_both(
    batch_factory: BatchFactory, tmp_path: Path, this: str, other: str
) -> None:
    """Two sources, two patients, opposite labels, one slice's pixels: each names the other."""
    batches = {
        "a": batch_factory.write("a", patients={"patient1": "Positive"}, source="site-a"),
        "b": batch_factory.write("b", patients={"patient9": "Negative"}, source="site-b"),
    }
    shutil.copy(batches["a"] / "patient1/SR_3/IM00001.tif", batches["b"] / "patient9/SR_2")
    store = LocalStore(tmp_path / "lake")
    for batch_id, batch in batches.items():
        land_batch(store, batch, batch_id)
    lake_before = tree_digest(tmp_path / "lake")
    verdict = validate_batch(
        batches[this], known_hashes=known_hashes(store, this), progress=False, workers=1
    )
    (reason,) = [r for r in verdict.reasons if r.startswith("[resent_slice]")]
    assert f"earlier_patient=landing/{other}/patient" in reason
    assert tree_digest(tmp_path / "lake") == lake_before


def test_the_dags_validate_step_fails_both_batches_of_one_run(
    batch_factory: BatchFactory, tmp_path: Path
) -> None:
    """The DAG path (``pipeline.validate`` per landed batch, before any is curated)."""
    from covidct import pipeline
    from covidct.config import Settings

    settings = Settings.from_env({"COVIDCT_HOME": str(tmp_path / "home")})
    a = batch_factory.write("a", patients={"patient1": "Positive"}, source="site-a")
    b = batch_factory.write("b", patients={"patient9": "Negative"}, source="site-b")
    shutil.copy(a / "patient1/SR_3/IM00001.tif", b / "patient9/SR_2")
    store = pipeline.lake(settings)
    for batch_id, batch in (("a", a), ("b", b)):
        land_batch(store, batch, batch_id)
    verdicts = {bid: pipeline.validate(settings, bid, "manual__one_run") for bid in ("a", "b")}
    for this, other in (("a", "b"), ("b", "a")):
        assert verdicts[this]["passed"] is False
        (reason,) = [r for r in verdicts[this]["reasons"] if r.startswith("[resent_slice]")]
        assert f"earlier_patient=landing/{other}/patient" in reason


# --------------------------------------------------------------- 4. rescale never guessed


def _lung_without(tmp_path: Path, *tags: str, files: int = 3) -> Path:
    """Copy a few real Lung-PET-CT-Dx slices to ``in/S1/series`` and delete ``tags``."""
    folder = tmp_path / "in" / "S1" / "series"
    folder.mkdir(parents=True)
    for source in sorted((LUNG / "Lung_Dx-A0002" / "B40f-8mm").glob("*.dcm"))[10 : 10 + files]:
        ds = pydicom.dcmread(source)
        for tag in tags:
            delattr(ds, tag)
        ds.save_as(folder / source.name)
    return tmp_path / "in"


@pytest.mark.parametrize(
    "tags", [("RescaleIntercept",), ("RescaleSlope", "RescaleIntercept")], ids=["intercept", "both"]
)
def test_missing_intercept_is_skipped_with_the_reason(tmp_path: Path, tags: tuple[str]) -> None:
    report = ingest_dicom(_lung_without(tmp_path, *tags), tmp_path / "out", "Negative", "s")
    assert report.slices_written == 0 and len(report.skipped) == 3
    assert all("no RescaleIntercept: HU unknown" in reason for _, reason in report.skipped)


def test_assumed_intercept_is_explicit_and_recorded(tmp_path: Path) -> None:
    dicom = _lung_without(tmp_path, "RescaleIntercept")
    report = ingest_dicom(dicom, tmp_path / "out", "Negative", "s", assume_intercept=-1024)
    assert report.slices_written == 3
    info = json.loads((tmp_path / "out" / schema.BATCH_INFO).read_text())["ingest"]
    assert info["assume_intercept"] == -1024
    assert [a["assumed"] for a in info["assumptions"]] == [
        "RescaleIntercept absent: -1024 assumed (--assume-intercept)"
    ] * 3


def test_validation_names_slices_1024_hu_too_high(tmp_path: Path) -> None:
    """The wrong assumption (intercept 0 for a -1024 file) puts lung above 0 HU: flagged."""
    dicom = _lung_without(tmp_path, "RescaleIntercept")
    ingest_dicom(dicom, tmp_path / "out", "Negative", "s", assume_intercept=0)
    verdict = validate_batch(tmp_path / "out", progress=False, workers=1)
    assert Check.HU_OFFSET in verdict.failed_checks
    (reason,) = [r for r in verdict.reasons if r.startswith("[hu_offset]")]
    assert "3 in slices" in reason and "S1/SR_2/IM00001.tif" in reason


# ----------------------------------------------------------------- 5. bounded resources


def _write_bomb(path: Path, side: int = 20_000) -> Path:
    """A deflate TIFF of a few hundred KB declaring ``side`` x ``side`` uint16 pixels."""
    tile = np.zeros((1024, 1024), np.uint16)
    per_side = -(-side // 1024)
    count = per_side * per_side
    tifffile.imwrite(
        path,
        (tile for _ in range(count)),
        shape=(side, side),
        dtype=np.uint16,
        tile=(1024, 1024),
        compression="zlib",
        photometric="minisblack",
    )
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_bomb(tmp_path_factory.mktemp("bomb") / "IM00001.tif")


def test_bomb_is_refused_from_its_header_without_decoding(bomb: Path) -> None:
    """Refused from what its header declares: the read allocates no more than a few MB, where
    decoding would allocate its 800 MB (NumPy's and Python's allocations both count in
    ``tracemalloc``)."""
    assert bomb.stat().st_size < 2_000_000
    tracemalloc.start()
    try:
        facts = read_slice_facts(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "declares 20000x20000 uint16 pixels (800,000,000 bytes decoded" in facts["read_error"]
    assert "refused before decoding" in facts["read_error"]
    assert peak < 16_000_000, f"{peak:,} bytes allocated"


def test_bomb_costs_under_half_a_gigabyte(bomb: Path) -> None:
    code = (
        "import sys; from covidct.batch.slices import read_slice_facts; "
        "facts = read_slice_facts(__import__('pathlib').Path(sys.argv[1])); "
        "assert 'refused before decoding' in facts['read_error'], facts; "
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a pytest
        # worker that trained a model would report the worker's peak
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    peak_kib = int(done.stdout.split()[-1])
    assert peak_kib < 500 * 1024


def test_parallel_readers_stay_under_the_stated_ceiling() -> None:
    """Two reader processes, each chunk opening with a bomb, a file at the byte limit and an
    image at the decoded limit: each reader stays under 200 MiB (measured ~130 MiB)."""
    done = subprocess.run(
        [sys.executable, "benchmarks/hostile_memory.py", "--workers", "2", "--slices", "70"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = {row["batch"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert "unreadable" in results["hostile"]["checks"]
    assert results["hostile"]["largest_reader_mib"] < 200
    assert results["hostile"]["self_mib"] < 500


def test_hostile_metadata_is_refused_unread_under_half_a_gigabyte() -> None:
    """Issue 32: a 1,000,000-row Patient_details.csv drove validation past 7.7 GB; a
    100,000-deep batch.json crashed it; a 100 MB one and duplicate keys passed. Each is refused
    (its check named) with the validating process under 500 MiB."""
    done = subprocess.run(
        [sys.executable, "benchmarks/hostile_memory.py", "--metadata", "--slices", "3"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = {row["batch"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert set(results) == {
        "details-1M-rows", "details-rows", "json-deep", "json-100MB", "json-duplicate-keys"
    }  # fmt: skip
    for name, row in results.items():
        assert not row["passed"], name
        expected = "layout" if name == "json-duplicate-keys" else "input_limit"
        assert expected in row["checks"], (name, row["checks"])
        assert row["self_mib"] < 500, (name, row)


def test_validation_names_the_bomb(batch_factory: BatchFactory, bomb: Path) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"})
    shutil.copy(bomb, batch / "patient1/SR_2/IM00001.tif")
    verdict = validate_batch(batch, progress=False, workers=1)
    (reason,) = [r for r in verdict.reasons if r.startswith("[unreadable]")]
    assert "patient1/SR_2/IM00001.tif" in reason and "refused before decoding" in reason


# ------------------------------------------------------------- 6. DICOM trees as they come


def test_tcia_download_layout_converts_in_one_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subject = tmp_path / "tcia" / "Lung_Dx-A0002" / "01-01-2007-NA-Chest-00001"
    for series in ("B70f-8mm", "B40f-8mm"):
        shutil.copytree(LUNG / "Lung_Dx-A0002" / series, subject / f"2.000000-{series}")
    before = tree_digest(tmp_path / "tcia")
    args = ["ingest-dicom", str(tmp_path / "tcia"), str(tmp_path / "out")]
    code = main([*args, "--label", "Negative", "--source", "tcia-lung"])
    assert code == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("wrote 60 slices of 1 patients")
    for sr in ("SR_2", "SR_3"):
        assert len(list((tmp_path / "out" / "Lung_Dx-A0002" / sr).glob("*.tif"))) == 30
    assert tree_digest(tmp_path / "tcia") == before


def test_ingest_that_writes_nothing_fails_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in" / "S1" / "a").mkdir(parents=True)
    (tmp_path / "in" / "S1" / "a" / "notes.txt").write_text("not DICOM")
    code = main(
        ["ingest-dicom", str(tmp_path / "in"), str(tmp_path / "out"), "--label", "Positive"]
        + ["--source", "s"]
    )
    captured = capsys.readouterr()
    assert code == EXIT_INVALID
    assert "skipped 1: not a readable DICOM file" in captured.out
    assert "no slice written" in captured.err


def test_cli_inverts_monochrome1_when_asked(tmp_path: Path) -> None:
    """A real slice stored display-inverted under MONOCHROME1 (air stored high): refused by
    default with the flag named (issue 32: it converted with exit 0, air at about +2800 HU);
    the flag restores the original's Negin values exactly."""
    folder = tmp_path / "in" / "S1" / "series"
    folder.mkdir(parents=True)
    source = sorted((LUNG / "Lung_Dx-A0002" / "B40f-8mm").glob("*.dcm"))[12]
    ds = pydicom.dcmread(source)
    high = 2 ** int(ds.BitsStored) - 1
    original = ds.pixel_array.astype(np.int64)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = (high - original).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(folder / "a.dcm")
    common = ["--label", "Negative", "--source", "s"]
    args = ["ingest-dicom", str(tmp_path / "in"), str(tmp_path / "kept"), *common]
    assert main(args) == EXIT_INVALID  # nothing written: not converted silently
    inverted = tmp_path / "inverted"
    args = ["ingest-dicom", str(tmp_path / "in"), str(inverted), *common, "--invert-monochrome1"]
    assert main(args) == EXIT_OK
    flipped = tifffile.imread(inverted / "S1/SR_2/IM00001.tif").astype(np.int64)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    expected = np.clip(np.rint(original * slope + intercept + 1024), 0, 65535)
    np.testing.assert_array_equal(flipped, expected)


# ----------------------------------------------------------- 7. identifiers at the edge


@pytest.mark.parametrize(
    ("batch_id", "reason"),
    [
        ("a/b", "contains a path separator"),
        (" ", "blank"),
        ("", "blank"),
        ("week48 ", "leading or trailing whitespace"),
        ("..", "a relative folder reference"),
        ("week\t48", "non-printable"),
        (unicodedata.normalize("NFD", "sem\u00e1na"), "not in Unicode NFC form"),
    ],
    ids=["separator", "blank", "empty", "trailing-space", "dotdot", "tab", "nfd"],
)
def test_batch_ids_are_checked_at_the_edge(
    batch_factory: BatchFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    batch_id: str,
    reason: str,
) -> None:
    batch = batch_factory.write()
    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path / "home"))
    assert main(["land", str(batch), "--batch-id", batch_id]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "invalid batch id" in err and reason in err
    assert err.isascii()  # the offending name is shown escaped
    assert not lake_bytes(tmp_path / "home")


def test_patient_folder_in_another_unicode_form_is_named_escaped(
    batch_factory: BatchFactory,
) -> None:
    batch = batch_factory.write(patients={"Jos\u00e9": "Positive"})
    (batch / "Jos\u00e9").rename(batch / unicodedata.normalize("NFD", "Jos\u00e9"))
    verdict = validate_batch(batch, progress=False, workers=1)
    (layout,) = [r for r in verdict.reasons if r.startswith("[layout]")]
    assert "Jose\\u0301/ (problem=patient folder name not in Unicode NFC form" in layout


def test_patient_id_in_another_unicode_form_is_named_escaped(
    batch_factory: BatchFactory,
) -> None:
    batch = batch_factory.write(patients={"Jos\u00e9": "Positive"})
    details = batch / schema.PATIENT_DETAILS
    nfd = unicodedata.normalize("NFD", "Jos\u00e9")
    details.write_text(details.read_text().replace("Jos\u00e9", nfd))
    verdict = validate_batch(batch, progress=False, workers=1)
    (layout,) = [r for r in verdict.reasons if r.startswith("[layout]")]
    assert "Patient ID 'Jose\\u0301' not in Unicode NFC form" in layout


def test_a_patient_id_that_climbs_out_writes_nothing_outside(
    batch_factory: BatchFactory, tmp_path: Path
) -> None:
    batch = batch_factory.write(patients={"patient1": "Positive"})
    details = batch / schema.PATIENT_DETAILS
    details.write_text(details.read_text() + "../../x,F,050Y,20200401,Negative,5,5,5\n")
    before = tree_digest(tmp_path)
    verdict = validate_batch(batch, progress=False, workers=1)
    assert not verdict.passed
    (layout,) = [r for r in verdict.reasons if r.startswith("[layout]")]
    assert "Patient ID '../../x' contains a path separator" in layout
    assert tree_digest(tmp_path) == before


def test_slice_reader_refuses_the_bomb_before_decoding(bomb: Path) -> None:
    with pytest.raises(SliceReadError, match="refused before decoding"):
        read_slice(bomb)


def test_relative_report_path_works(
    batch_factory: BatchFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = batch_factory.write()
    monkeypatch.chdir(tmp_path)
    assert main(["validate", str(batch), "--report", "reports/week48"]) == EXIT_OK
    assert (tmp_path / "reports" / "week48" / "index.html").is_file()
