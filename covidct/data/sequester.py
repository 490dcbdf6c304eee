"""Sequestered patients: set aside once, by a stable rule, for confirming promotions only.

No model is ever scored on a patient it trained, validated or picked a threshold on. The k-fold
protocol of the seed selects a backbone and reproduces the published numbers on the
*development* patients; promotion is confirmed on the *sequestered* ones, which no model of any
run sees before it is scored (docs/metrics.md, "Development and confirmation").

The rule (:class:`SequesterRule`), applied per stratum (label x source):

* each patient key gets a position ``sha256(salt + "\\0" + patient_key)`` in [0, 1), which does
  not depend on the run, its fold seed or the other patients;
* patients are assigned once, in order of arrival (a batch's newcomers in order of position),
  and never move: a newcomer is sequestered while the stratum's sequestered count is below
  ``round(share x patients of the stratum so far)``. The first batch is thus split exactly by
  the share in each stratum, and later batches keep every stratum at the share, so a champion
  trained in an earlier week never saw a patient sequestered since.

The lock (``sequestered/lock.json`` in the lake) records the rule, its digest and an epoch.
A run whose configured rule differs from the lock raises :class:`SequesterRuleChanged`;
changing it is an explicit re-lock (:func:`relock`, ``covidct sequester relock``), which
reassigns every known patient under the new rule, bumps the epoch and appends an audit record
(``sequestered/locks/epoch-<n>.json``). Every registered version records the epoch and rule
digest it was developed under, so the gate can tell when a comparison with an older champion is
no longer clean.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from covidct.lake.layout import LakeLayout
from covidct.lake.storage import read_parquet, write_parquet

PREFIX = LakeLayout.SEQUESTERED
LOCK_KEY = LakeLayout.SEQUESTER_LOCK
ASSIGNMENT_KEY = LakeLayout.SEQUESTER_ASSIGNMENT
SEQUESTERED = "sequestered"
DEVELOPMENT = "development"
DEFAULT_SALT = "covidct-sequester-v1"
#: columns of the assignment table
COLUMNS = ("patient_key", "label", "source", "position", "role", "epoch", "assigned_in")


class SequesterRuleChanged(RuntimeError):
    """The configured rule differs from the lake's lock; re-lock explicitly to change it."""


@dataclass(frozen=True)
class SequesterRule:
    """Share of each (label, source) stratum sequestered, and the salt of the key positions."""

    share: float = 0.2
    salt: str = DEFAULT_SALT

    def __post_init__(self) -> None:
        if not 0.0 < self.share < 1.0:
            raise ValueError(f"sequestered share must be in (0, 1), got {self.share}")

    def to_dict(self) -> dict[str, Any]:
        """The rule as recorded in the lock: share, salt and strata."""
        return {**asdict(self), "strata": ["label", "source"]}

    def digest(self) -> str:
        """First 12 hex digits of the SHA-256 of the rule's canonical JSON."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def key_position(salt: str, patient_key: str) -> float:
    """Position of a patient key in [0, 1): the first 8 bytes of SHA-256(salt NUL key) / 2**64."""
    digest = hashlib.sha256(f"{salt}\0{patient_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def patients_of(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per patient (``patient_key``, ``label``, ``source``) of a slice manifest.

    ``source`` is the first part of ``patient_key`` (``<source>/<patient_id>``) when the
    manifest has no ``source`` column. Raises ValueError naming a patient with two labels.
    """
    frame = manifest[["patient_key", "label"]].astype(str).copy()
    if "source" in manifest.columns:
        frame["source"] = manifest["source"].astype(str).to_numpy()
    else:
        frame["source"] = frame["patient_key"].str.split("/", n=1).str[0]
    labels = frame.groupby("patient_key")["label"].nunique()
    if (labels > 1).any():
        raise ValueError(f"patient {labels.index[labels > 1][0]} has two labels in the manifest")
    return frame.drop_duplicates("patient_key").sort_values("patient_key", ignore_index=True)


def assign(
    patients: pd.DataFrame,
    rule: SequesterRule,
    previous: pd.DataFrame | None = None,
    *,
    epoch: int = 1,
    run: str = "",
) -> pd.DataFrame:
    """Extend ``previous`` (an assignment table) to every patient of ``patients`` (module rule).

    ``patients``: ``patient_key``, ``label``, ``source``. Returns the assignment table
    (:data:`COLUMNS`), sorted by key; rows of ``previous`` are kept unchanged.
    """
    columns = list(COLUMNS)
    known = previous[columns].copy() if previous is not None else pd.DataFrame(columns=columns)
    new = patients[~patients["patient_key"].isin(known["patient_key"])].copy()
    new["position"] = [key_position(rule.salt, key) for key in new["patient_key"]]
    new = new.sort_values(["position", "patient_key"])
    counts = known.groupby(["label", "source"])["role"].agg(
        total="size", sequestered=lambda roles: int((roles == SEQUESTERED).sum())
    )
    totals = counts["total"].to_dict()
    sequestered = counts["sequestered"].to_dict()
    roles = []
    for label, source in zip(new["label"], new["source"], strict=True):
        stratum = (label, source)
        totals[stratum] = totals.get(stratum, 0) + 1
        quota = int(np.floor(rule.share * totals[stratum] + 0.5))
        take = sequestered.get(stratum, 0) < quota
        sequestered[stratum] = sequestered.get(stratum, 0) + int(take)
        roles.append(SEQUESTERED if take else DEVELOPMENT)
    new["role"] = roles
    new["epoch"] = epoch
    new["assigned_in"] = run
    frames = [frame for frame in (known, new[columns]) if len(frame)]
    table = pd.concat(frames, ignore_index=True) if frames else known
    table["epoch"] = table["epoch"].astype("int64")
    table["position"] = table["position"].astype("float64")
    return table.sort_values("patient_key", ignore_index=True)


def read_lock(store: Any) -> dict[str, Any] | None:
    """The lake's lock record (``epoch``, ``rule``, ``rule_digest``, ...), None before the first."""
    return json.loads(store.read_bytes(LOCK_KEY)) if store.exists(LOCK_KEY) else None


def read_assignment(store: Any) -> pd.DataFrame | None:
    """The lake's assignment table (:data:`COLUMNS`), None before the first run."""
    return read_parquet(store, ASSIGNMENT_KEY) if store.exists(ASSIGNMENT_KEY) else None


def _write_lock(
    store: Any, rule: SequesterRule, epoch: int, *, reason: str, by: str, previous: Any
) -> dict[str, Any]:
    lock = {
        "epoch": epoch,
        "rule": rule.to_dict(),
        "rule_digest": rule.digest(),
        "locked_at": datetime.now(UTC).isoformat(),
        "reason": reason,
        "by": by,
        "previous": previous,
    }
    store.write_bytes(LakeLayout.sequester_lock_record(epoch), json.dumps(lock).encode())
    store.write_bytes(LOCK_KEY, json.dumps(lock, indent=2).encode())
    return lock


def update(
    store: Any, manifest: pd.DataFrame, rule: SequesterRule, *, dag_run_id: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Assign the manifest's new patients; return ``(lock, assignment)`` (persisted in the lake).

    The first call locks ``rule`` (epoch 1). Raises :class:`SequesterRuleChanged` when ``rule``
    differs from the lock, naming both and the re-lock command.
    """
    lock = read_lock(store)
    if lock is None:
        lock = _write_lock(
            store, rule, 1, reason="first run", by=dag_run_id, previous=None
        )  # fmt: skip
    elif lock["rule_digest"] != rule.digest():
        raise SequesterRuleChanged(
            f"the sequestration rule {rule.to_dict()} differs from the lake's lock (epoch "
            f"{lock['epoch']}: {lock['rule']}); keep the locked share, or re-lock explicitly "
            f"with `covidct sequester relock --share {rule.share} --reason ...`"
        )
    previous = read_assignment(store)
    table = assign(patients_of(manifest), rule, previous, epoch=lock["epoch"], run=dag_run_id)
    if previous is None or len(table) != len(previous):
        write_parquet(store, ASSIGNMENT_KEY, table)
    return lock, table


def relock(store: Any, rule: SequesterRule, *, reason: str, by: str) -> dict[str, Any]:
    """Re-lock under ``rule``: every known patient is reassigned; the epoch goes up by one.

    Audited: the new lock names the previous one, the reason and who asked. Comparisons with
    champions developed under an earlier epoch are no longer clean (``covidct.pipeline`` scores
    them only on sequestered patients they never saw, and says so). Raises ValueError on an
    empty ``reason``.
    """
    if not reason.strip():
        raise ValueError("a re-lock needs a reason (it is kept in the audit record)")
    old = read_lock(store)
    epoch = 1 if old is None else int(old["epoch"]) + 1
    previous = read_assignment(store)
    if previous is not None:
        patients = previous[["patient_key", "label", "source"]]
        write_parquet(store, ASSIGNMENT_KEY, assign(patients, rule, epoch=epoch, run=by))
    return _write_lock(store, rule, epoch, reason=reason.strip(), by=by, previous=old)


def roles_of(assignment: pd.DataFrame) -> tuple[set[str], set[str]]:
    """``(development, sequestered)`` patient keys of an assignment table."""
    role = assignment.set_index("patient_key")["role"]
    return set(role.index[role == DEVELOPMENT]), set(role.index[role == SEQUESTERED])
