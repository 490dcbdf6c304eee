"""Issue 32: landing is a transaction. A half-landed batch is never discovered (so never
validated or curated), and the next ``covidct land`` of the id completes or cleans it.

The interruptions are real: a ``covidct land`` process killed with SIGKILL while it copies, and
a real file system too small for the batch (tmpfs, mounted when run as root).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO, BatchFactory

from covidct.cli import EXIT_ERROR, main
from covidct.lake.backends import LocalStore, open_store
from covidct.lake.custody import discover_new_batches, latest_receipt_hash, local_file_hashes
from covidct.lake.landing import land_batch
from covidct.lake.layout import LakeLayout
from covidct.lake.storage import ObjectStore, atomic_write

BACKENDS = ["local", pytest.param("s3", marks=pytest.mark.s3)]
#: Files of the batch killed mid-copy: enough that staging takes seconds, small to write.
KILLED_FILES = 6_000


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store((tmp_path / "lake").as_uri())
    return request.getfixturevalue("s3_store")


def files_under(root: Path) -> list[str]:
    """Every file under ``root`` (partial files and dot files included), relative, sorted."""
    return sorted(
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _dirs, names in os.walk(root)
        for name in names
    )


def many_files(root: Path, count: int, tag: bytes = b"") -> Path:
    """A batch of ``count`` small distinct files (landing does not judge their content)."""
    folder = root / "p1" / "SR_2"
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"IM{index:05d}.tif").write_bytes(tag + index.to_bytes(4, "big") * 128)
    (root / "Patient_details.csv").write_text("Patient ID\np1\n")
    return root


def _land_process(batch: Path, home: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "COVIDCT_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("COVIDCT_LAKE_URI", None)
    command = [sys.executable, "-m", "covidct.cli", "land", str(batch), "--batch-id", "big"]
    return subprocess.Popen([*command, *extra], env=env, stderr=subprocess.DEVNULL)


def kill_mid_copy(process: subprocess.Popen[bytes], *folders: Path) -> None:
    """SIGKILL ``process`` as soon as new files exist in one of ``folders`` (the staging area,
    or landing itself where a land copies straight there); fail if it finished first."""
    deadline = time.monotonic() + 120
    before = {folder: set(files_under(folder)) if folder.is_dir() else set() for folder in folders}
    while not any(
        folder.is_dir() and set(files_under(folder)) - before[folder] for folder in folders
    ):
        assert process.poll() is None, "land finished before it could be killed mid-copy"
        assert time.monotonic() < deadline, "land staged nothing within 120 s"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.parametrize("first", [True, False], ids=["first-land", "replace"])
def test_a_killed_land_leaves_nothing_discoverable_and_the_next_completes(
    tmp_path: Path, first: bool
) -> None:
    home, lake = tmp_path / "home", tmp_path / "home" / "lake"
    store = LocalStore(lake)
    old = many_files(tmp_path / "old", 3, b"old")
    if not first:
        land_batch(store, old, "big")
    batch = many_files(tmp_path / "batch", KILLED_FILES)
    staging = lake.joinpath(*LakeLayout.staging_batch("big").split("/"))
    replace = [] if first else ["--replace"]
    kill_mid_copy(_land_process(batch, home, *replace), staging, lake / "landing" / "big")
    if first:
        assert discover_new_batches(store) == []  # half-landed: invisible
    else:  # the receipted old content is untouched until the new one is complete
        assert discover_new_batches(store) == ["big"]
        assert store.hash_prefix("landing/big") == local_file_hashes(old)
    again = _land_process(batch, home, *replace)
    assert again.wait(timeout=600) == 0
    assert discover_new_batches(store) == ["big"]
    assert store.hash_prefix("landing/big") == local_file_hashes(batch)
    leftovers = [f for f in files_under(lake) if "partial" in f or "covidct-replaced" in f]
    assert leftovers == [] and not (lake / "staging").exists()


def test_a_land_that_dies_before_its_receipt_is_invisible_then_completed(
    store: ObjectStore, batch_factory: BatchFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receipt is the last step (local and S3): without it nothing is discovered."""
    batch = batch_factory.write()
    real_write_text = store.write_text

    def die_on_receipt(key: str, text: str) -> None:
        if key.startswith(LakeLayout.LEDGER_LANDINGS):
            raise OSError("killed before the receipt")
        real_write_text(key, text)

    monkeypatch.setattr(store, "write_text", die_on_receipt)
    with pytest.raises(OSError, match="killed before the receipt"):
        land_batch(store, batch, "week48")
    assert store.hash_prefix("landing/week48") == local_file_hashes(batch)  # published ...
    assert discover_new_batches(store) == []  # ... but not vouched for
    monkeypatch.undo()
    receipt = land_batch(store, batch, "week48")
    assert "completed an unfinished landing" in receipt.message
    assert discover_new_batches(store) == ["week48"]
    assert latest_receipt_hash(store, "week48") == receipt.content_hash
    assert store.list(LakeLayout.STAGING + "/") == []


def test_partial_files_of_a_killed_writer_are_removed(
    batch_factory: BatchFactory, tmp_path: Path
) -> None:
    """What the old ``land`` left when killed: some files and ``.covidct-partial`` files in
    ``landing/<id>`` and no receipt; ``--replace`` is not needed and nothing is left."""
    store = LocalStore(tmp_path / "lake")
    batch = batch_factory.write()
    landing = tmp_path / "lake" / "landing" / "week48" / "patient1" / "SR_2"
    landing.mkdir(parents=True)
    (landing / "IM00001.tif").write_bytes((batch / "patient1/SR_2/IM00001.tif").read_bytes())
    for index in range(7):
        (landing / f".IM0000{index}.tif.{uuid.uuid4().hex}.covidct-partial").write_bytes(b"x")
    assert discover_new_batches(store) == []
    assert land_batch(store, batch, "week48").action == "replaced"
    assert [f for f in files_under(tmp_path / "lake") if "partial" in f] == []
    assert store.hash_prefix("landing/week48") == local_file_hashes(batch)
    assert discover_new_batches(store) == ["week48"]


def test_atomic_write_syncs_the_file_and_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write(tmp_path / "receipt.json", b"{}")
    assert any(path.endswith(".covidct-partial") for path in synced)  # the file, before rename
    assert str(tmp_path) in synced  # the folder, after it


@pytest.fixture
def small_fs(tmp_path: Path) -> Path:
    """An 8 MiB tmpfs mounted at ``tmp_path/small`` (skips unless it can be mounted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()[:120]}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_file_system_lands_nothing(
    small_fs: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch = tmp_path / "batch" / "p1" / "SR_2"
    batch.mkdir(parents=True)
    for index in range(12):  # 12 MiB into 8 MiB
        (batch / f"IM{index:05d}.tif").write_bytes(os.urandom(1 << 20))
    monkeypatch.setenv("COVIDCT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COVIDCT_LAKE_URI", (small_fs / "lake").as_uri())
    assert main(["land", str(tmp_path / "batch"), "--batch-id", "big"]) == EXIT_ERROR
    (line,) = capsys.readouterr().err.splitlines()
    assert "batch big: nothing landed" in line and "No space left on device" in line
    assert discover_new_batches(LocalStore(small_fs / "lake")) == []
    assert files_under(small_fs) == []  # nothing staged, partial or landed is left
