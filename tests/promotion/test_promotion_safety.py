"""Promotion safety on a real MLflow SQLite registry: races, crashes, retries, the lock.

Every test shares one migrated SQLite registry (migrating a new database costs ~10 s) and uses
its own model name and its own lake folder. Faults are real: threads released together by a
barrier, a subprocess killed with SIGKILL right after the alias moved, a ledger folder that
cannot be written, an MLflow client that fails at the alias write. Meanwhile a poller thread
resolves ``@champion`` with ``get_model_version_by_alias`` every few milliseconds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from covidct.lake.backends import open_store
from covidct.promotion import registry
from covidct.schema import ALIAS_CHAMPION

REPO = Path(__file__).resolve().parents[2]
#: Pause before each alias write of :class:`SlowAliasClient`; all racers read inside it.
PAUSE_S = 0.5


@dataclass(frozen=True)
class Registry:
    """One migrated SQLite registry for the module, and a model source folder."""

    uri: str
    source: str
    run_id: str


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("safety", artifact_location=str(root / "artifacts"))
    run = client.create_run(experiment)
    source = root / "artifacts" / "model"
    source.mkdir(parents=True)
    (source / "MLmodel").write_text("flavors: {}\n")
    return Registry(uri, str(source), run.info.run_id)


@dataclass
class Case:
    """One test's model name, lake store and client on the shared registry."""

    db: Registry
    name: str
    lake_uri: str
    lake_root: Path
    client: Any = None
    store: Any = None

    def __post_init__(self) -> None:
        self.client = MlflowClient(tracking_uri=self.db.uri, registry_uri=self.db.uri)
        self.store = open_store(self.lake_uri)

    def register(self, dag_run_id: str, backbone: str = "resnet50") -> str:
        return registry.register_version(
            self.client, self.name, model_uri=self.db.source, run_id=self.db.run_id,
            dag_run_id=dag_run_id, backbone=backbone, tags={"dataset_version": "d1"},
        )  # fmt: skip

    def promote(self, version: str, expected: str | None, dag_run_id: str, client: Any = None
                ) -> dict[str, Any]:  # fmt: skip
        return registry.promote(
            client or self.client, self.store, self.name, version=version,
            expected_champion=expected, reason=f"{dag_run_id} better", dag_run_id=dag_run_id,
            figures={"patient_balanced_accuracy": 0.9},
        )  # fmt: skip

    def moves(self) -> list[tuple[str, str | None]]:
        return [(r["version"], r["previous_champion"]) for r in registry.read_ledger(self.store)]

    def champion(self) -> str | None:
        return registry.get_champion(self.client, self.name).version


@pytest.fixture
def case(mlflow_db: Registry, tmp_path: Path) -> Case:
    lake = tmp_path / "lake"
    return Case(mlflow_db, f"safety-{uuid.uuid4().hex[:8]}", f"file://{lake}", lake)


@dataclass
class ChampionPoller:
    """Resolves ``@champion`` in a loop from its own client; records what it saw."""

    uri: str
    name: str
    polls: int = 0
    seen: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def await_polls(self, count: int, timeout_s: float = 30.0) -> None:
        target, deadline = self.polls + count, time.monotonic() + timeout_s
        while self.polls < target and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        while not self._stop.is_set():
            try:
                self.seen.add(
                    str(client.get_model_version_by_alias(self.name, ALIAS_CHAMPION).version)
                )
            except Exception as error:  # noqa: BLE001 - any failure to resolve is the finding
                self.failures.append(repr(error))
            self.polls += 1
            time.sleep(0.01)


@pytest.fixture
def poller(case: Case) -> Iterator[ChampionPoller]:
    """A :class:`ChampionPoller` for ``case``; the test starts it once a champion exists."""
    watcher = ChampionPoller(case.db.uri, case.name)
    yield watcher
    watcher.stop()


class SlowAliasClient(MlflowClient):
    """MLflow's client, pausing before each alias write (widens the read-to-write window)."""

    def set_registered_model_alias(self, name: str, alias: str, version: Any) -> None:
        time.sleep(PAUSE_S)
        super().set_registered_model_alias(name, alias, version)


class RegistryDownAtMove(MlflowClient):
    """MLflow's client whose alias write fails, as when the tracking server is unreachable."""

    def set_registered_model_alias(self, name: str, alias: str, version: Any) -> None:
        raise MlflowException("connection refused by the tracking server (injected)")


# ------------------------------------------------------------------------------ races


def _race(case: Case, contenders: int, attempt: Any) -> list[str]:
    """Run ``attempt(i, expected)`` in ``contenders`` threads released together."""
    barrier = threading.Barrier(contenders)
    outcomes: list[str] = [""] * contenders

    def contender(index: int) -> None:
        expected = case.champion()  # every contender read the same champion ...
        barrier.wait()  # ... before any of them moves it
        try:
            attempt(index, expected)
            outcomes[index] = "moved"
        except registry.ChampionMovedError:
            outcomes[index] = "champion moved"

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("contenders", [2, 4])
def test_concurrent_promotions_move_the_alias_once(
    case: Case, poller: ChampionPoller, contenders: int
) -> None:
    v1 = case.register("run-0")
    versions = [case.register(f"run-{i + 1}") for i in range(contenders)]
    case.promote(v1, None, "run-0")
    poller.start()
    clients = [SlowAliasClient(tracking_uri=case.db.uri, registry_uri=case.db.uri)
               for _ in range(contenders)]  # fmt: skip

    def attempt(index: int, expected: str | None) -> None:
        case.promote(versions[index], expected, f"run-{index + 1}", client=clients[index])

    outcomes = _race(case, contenders, attempt)
    assert sorted(outcomes) == ["champion moved"] * (contenders - 1) + ["moved"]
    winner = versions[outcomes.index("moved")]
    assert case.champion() == winner
    assert case.moves() == [(v1, None), (winner, v1)]
    assert registry.PromotionLock(case.client, case.name, "probe").holder() is None
    assert registry.pending_intents(case.store) == {}
    poller.stop()
    assert poller.failures == [] and poller.seen == {v1, winner}


def test_without_the_lock_the_same_race_moves_twice(case: Case) -> None:
    """Control: MLflow alone has no compare-and-set, so the race above is real."""
    v1, v2, v3 = (case.register(f"run-{i}") for i in range(3))
    case.promote(v1, None, "run-0")
    client = SlowAliasClient(tracking_uri=case.db.uri, registry_uri=case.db.uri)

    def unlocked(index: int, expected: str | None) -> None:
        if case.champion() != expected:
            raise registry.ChampionMovedError("moved")
        client.set_registered_model_alias(case.name, ALIAS_CHAMPION, (v2, v3)[index])

    assert _race(case, 2, unlocked) == ["moved", "moved"]


# ----------------------------------------------------------------------------- crashes

KILLED_AFTER_MOVE = """
import json, os, signal, sys
from mlflow import MlflowClient
from covidct.promotion import registry
from covidct.lake.backends import open_store

args = json.loads(sys.argv[1])


class KilledAfterAliasMove(MlflowClient):
    def set_registered_model_alias(self, name, alias, version):
        super().set_registered_model_alias(name, alias, version)
        os.kill(os.getpid(), signal.SIGKILL)  # dies before the ledger write


client = KilledAfterAliasMove(tracking_uri=args["uri"], registry_uri=args["uri"])
version = registry.register_version(
    client, args["name"], model_uri=args["source"], run_id=args["run_id"],
    dag_run_id="run-2", backbone="resnet50", tags={"dataset_version": "d1"},
)
champion = registry.get_champion(client, args["name"]).version
registry.promote(
    client, open_store(args["lake"]), args["name"], version=version,
    expected_champion=champion, reason="run-2 better", dag_run_id="run-2", figures={},
)
sys.exit(3)
"""


def _killed_after_move(case: Case, v1: str, v2: str) -> None:
    args = {"uri": case.db.uri, "name": case.name, "lake": case.lake_uri,
            "source": case.db.source, "run_id": case.db.run_id}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_MOVE, json.dumps(args)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    # the dead process still holds the lock: anybody else waits, then gives up
    with pytest.raises(registry.PromotionLockTimeout, match="dag-run:run-2"):
        registry.PromotionLock(case.client, case.name, "dag-run:other", timeout_s=0.3).acquire()


def _ledger_write_fails(case: Case, v1: str, v2: str) -> None:
    ledger = case.lake_root / registry.LEDGER_PREFIX
    ledger.rename(ledger.with_name("promotions.saved"))
    ledger.write_text("not a folder: every write under it fails")  # a real OS error
    try:
        with pytest.raises(OSError):
            case.promote(v2, v1, "run-2")
    finally:
        ledger.unlink()
        ledger.with_name("promotions.saved").rename(ledger)


def _registry_down_at_move(case: Case, v1: str, v2: str) -> None:
    client = RegistryDownAtMove(tracking_uri=case.db.uri, registry_uri=case.db.uri)
    with pytest.raises(MlflowException, match="connection refused"):
        case.promote(v2, v1, "run-2", client=client)


@pytest.mark.parametrize(
    ("fault", "alias_moved"),
    [(_killed_after_move, True), (_ledger_write_fails, True), (_registry_down_at_move, False)],
    ids=["killed-after-alias-move", "ledger-write-fails", "registry-down-at-move"],
)
def test_crash_keeps_champion_resolvable_and_retry_completes(  # type: ignore[no-untyped-def]
    case: Case, poller: ChampionPoller, fault, alias_moved: bool
) -> None:
    v1 = case.register("run-1")
    case.promote(v1, None, "run-1")
    poller.start()  # from now on @champion must resolve at every instant
    v2 = case.register("run-2")
    fault(case, v1, v2)
    poller.await_polls(5)  # resolve it a few times in the crashed state too
    assert case.champion() == (v2 if alias_moved else v1)
    assert case.moves() == [(v1, None)]  # the move is not audited yet ...
    assert len(registry.pending_intents(case.store)) == 1  # ... but its intent is on record

    # the retried task: same DAG run, same version, then resume (or redo) the promotion
    assert case.register("run-2") == v2
    record = registry.resume_promotion(case.client, case.store, case.name, "run-2")
    if alias_moved:
        assert record is not None and record["recovered"] is True
    else:
        assert record is None
        case.promote(v2, v1, "run-2")
    assert case.champion() == v2
    assert case.moves() == [(v1, None), (v2, v1)]
    assert registry.pending_intents(case.store) == {}
    assert case.client.get_model_version(case.name, v1).tags["superseded_by"] == v2
    assert len(case.client.search_model_versions(f"name='{case.name}'")) == 2
    assert registry.PromotionLock(case.client, case.name, "probe").holder() is None
    poller.stop()
    assert poller.failures == [] and poller.seen <= {v1, v2} and poller.polls >= 5


def test_resume_is_a_no_op_for_a_run_that_did_not_promote(case: Case) -> None:
    v1 = case.register("run-1")
    case.promote(v1, None, "run-1")
    assert registry.resume_promotion(case.client, case.store, case.name, "run-2") is None
    assert registry.resume_promotion(case.client, case.store, case.name, "run-1")["version"] == v1
    assert case.moves() == [(v1, None)]


# -------------------------------------------------------------------------------- lock


@pytest.mark.parametrize(
    ("holder", "contender", "stale_after_s", "acquires"),
    [
        ("dag-run:a", "dag-run:b", 3600.0, False),  # busy: wait, then time out
        ("dag-run:a", "dag-run:a", 3600.0, True),  # a retry of the same run takes over
        ("dag-run:a", "dag-run:b", 0.0, True),  # stale: broken
        ("manual:h:1:x", "manual:h:1:x", 3600.0, False),  # manual owners never take over
    ],
)
def test_lock_rules(case: Case, holder: str, contender: str, stale_after_s: float,
                    acquires: bool) -> None:  # fmt: skip
    registry.ensure_registered_model(case.client, case.name)
    first = registry.PromotionLock(case.client, case.name, holder)
    first.acquire()
    second = registry.PromotionLock(case.client, case.name, contender, timeout_s=0.3,
                                    poll_s=0.05, stale_after_s=stale_after_s)  # fmt: skip
    if acquires:
        second.acquire()
        assert second.holder()["token"] == second.token
        first.release()  # the previous holder's late release leaves the new holder alone
        assert second.holder() is not None
        second.release()
        assert second.holder() is None
    else:
        with pytest.raises(registry.PromotionLockTimeout, match=holder):
            second.acquire()
        first.release()
