"""The lake's layout: every key of the data lake and of a run folder ``runs/<run>/``, named once.

:class:`LakeLayout` gives the top-level areas (``landing/``, ``quarantine/``, ``curated/``,
``folds/``, ``sequestered/``, ``ledger/``, ``runs/``, ``staging/``) and the keys under them that
belong to no run; :class:`RunLayout` gives the keys of one DAG run's folder. Every module that
reads or writes the lake builds its keys here, so a key is spelled in one place. The table "Lake
layout" of docs/architecture.md documents the same keys; ``tests/lake/test_layout.py`` holds the two
equal. Light on purpose: imports only :mod:`covidct.schema` and :mod:`re`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import ClassVar

from covidct import schema


def run_key_of(dag_run_id: str) -> str:
    """Return a storage-safe key for a DAG run id: each character outside ``[A-Za-z0-9_.-]``
    becomes ``_`` (``manual__2026-01-05T10:00:00+00:00`` -> ``manual__2026-01-05T10_00_00_00_00``).
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", dag_run_id)


class LakeLayout:
    """Keys of the lake outside any run folder. Area names come from :mod:`covidct.schema`.

    ``<hash16>`` is the first :data:`SHORT_HASH` hex digits of a batch's content hash.
    """

    LANDING: ClassVar[str] = schema.LANDING
    QUARANTINE: ClassVar[str] = schema.QUARANTINE
    CURATED: ClassVar[str] = schema.CURATED
    FOLDS: ClassVar[str] = schema.FOLDS
    SEQUESTERED: ClassVar[str] = schema.SEQUESTERED
    LEDGER: ClassVar[str] = schema.LEDGER
    RUNS: ClassVar[str] = schema.RUNS
    STAGING: ClassVar[str] = schema.STAGING

    #: Hex digits of the content hash naming a quarantined version and a landing receipt.
    SHORT_HASH: ClassVar[int] = 16

    CURATED_BATCHES: ClassVar[str] = f"{schema.CURATED}/batches"
    CURATED_MANIFESTS: ClassVar[str] = f"{schema.CURATED}/manifests"
    LEDGER_BATCHES: ClassVar[str] = f"{schema.LEDGER}/batches"
    LEDGER_LANDINGS: ClassVar[str] = f"{schema.LEDGER}/landings"
    LEDGER_PROMOTIONS: ClassVar[str] = f"{schema.LEDGER}/promotions"
    LEDGER_PROMOTION_INTENTS: ClassVar[str] = f"{schema.LEDGER}/promotion-intents"
    SEQUESTER_LOCK: ClassVar[str] = f"{schema.SEQUESTERED}/lock.json"
    SEQUESTER_LOCKS: ClassVar[str] = f"{schema.SEQUESTERED}/locks"
    SEQUESTER_ASSIGNMENT: ClassVar[str] = f"{schema.SEQUESTERED}/assignment.parquet"
    #: ``runs/history/``: one champion record per run.
    RUN_HISTORY: ClassVar[str] = f"{schema.RUNS}/history"
    #: ``runs/LATEST``: the id of the latest summarized DAG run.
    LATEST: ClassVar[str] = f"{schema.RUNS}/LATEST"

    @staticmethod
    def landing_batch(batch_id: str) -> str:
        """``landing/<batch_id>`` (unchecked; :func:`covidct.lake.custody.landing_prefix`
        checks the id)."""
        return f"{schema.LANDING}/{batch_id}"

    @staticmethod
    def staging_batch(batch_id: str) -> str:
        """``staging/landing/<batch_id>``: a batch being landed, never discovered (unchecked)."""
        return f"{schema.STAGING}/{schema.LANDING}/{batch_id}"

    @classmethod
    def quarantine_batch(cls, batch_id: str, content_hash_hex: str) -> str:
        """``quarantine/<batch_id>/<hash16>``: one failed version; ``batch/`` and ``report/``
        below it."""
        return f"{schema.QUARANTINE}/{batch_id}/{content_hash_hex[: cls.SHORT_HASH]}"

    @classmethod
    def quarantined_batch(cls, batch_id: str, content_hash_hex: str) -> str:
        """``quarantine/<batch_id>/<hash16>/batch``: the failed batch, byte-identical."""
        return f"{cls.quarantine_batch(batch_id, content_hash_hex)}/batch"

    @classmethod
    def quarantine_report(cls, batch_id: str, content_hash_hex: str) -> str:
        """``quarantine/<batch_id>/<hash16>/report``: its validation report."""
        return f"{cls.quarantine_batch(batch_id, content_hash_hex)}/report"

    @classmethod
    def quarantine_verdict(cls, batch_id: str, content_hash_hex: str) -> str:
        """``quarantine/<batch_id>/<hash16>/report/verdict.json``."""
        return f"{cls.quarantine_report(batch_id, content_hash_hex)}/verdict.json"

    @classmethod
    def curated_batch(cls, batch_id: str) -> str:
        """``curated/batches/<batch_id>``: an accepted batch."""
        return f"{cls.CURATED_BATCHES}/{batch_id}"

    @classmethod
    def curated_manifest(cls, batch_id: str) -> str:
        """``curated/manifests/<batch_id>.parquet``: an accepted batch's per-slice manifest."""
        return f"{cls.CURATED_MANIFESTS}/{batch_id}.parquet"

    @staticmethod
    def dataset_manifest(version: str) -> str:
        """``curated/<version>/manifest.parquet``: the dataset version's manifest."""
        return f"{schema.CURATED}/{version}/manifest.parquet"

    @staticmethod
    def sequestered_manifest(version: str) -> str:
        """``curated/<version>/sequestered.parquet``: the sequestered patients' slices."""
        return f"{schema.CURATED}/{version}/sequestered.parquet"

    @staticmethod
    def fold_assignment(k: int, seed: int) -> str:
        """``folds/assignment-k<k>-seed<seed>.parquet``: each development patient's split."""
        return f"{schema.FOLDS}/assignment-k{k}-seed{seed}.parquet"

    @staticmethod
    def fold_manifest(version: str, fold: int) -> str:
        """``folds/<version>/fold-<k>.parquet``: a fold manifest with its ``split`` column."""
        return f"{schema.FOLDS}/{version}/fold-{fold}.parquet"

    @classmethod
    def sequester_lock_record(cls, epoch: int) -> str:
        """``sequestered/locks/epoch-<nnnn>.json``: the audit record of one lock."""
        return f"{cls.SEQUESTER_LOCKS}/epoch-{epoch:04d}.json"

    @classmethod
    def ledger_batch(cls, content_hash_hex: str) -> str:
        """``ledger/batches/<content_hash>.jsonl``: the custody records of one batch content."""
        return f"{cls.LEDGER_BATCHES}/{content_hash_hex}.jsonl"

    @classmethod
    def landing_receipts(cls, batch_id: str) -> str:
        """``ledger/landings/<batch_id>/``: the receipts of ``covidct land`` for one id."""
        return f"{cls.LEDGER_LANDINGS}/{batch_id}/"

    @classmethod
    def landing_receipt(cls, batch_id: str, stamp: str, content_hash_hex: str) -> str:
        """``ledger/landings/<batch_id>/<time>-<hash16>.json``: one receipt."""
        digest = content_hash_hex[: cls.SHORT_HASH]
        return f"{cls.landing_receipts(batch_id)}{stamp}-{digest}.json"

    @classmethod
    def promotion_record(cls, stem: str) -> str:
        """``ledger/promotions/<stem>.json`` (stem ``<time>-<action>-<id8>``): an audit record."""
        return f"{cls.LEDGER_PROMOTIONS}/{stem}.json"

    @classmethod
    def promotion_intent(cls, promotion_id: str) -> str:
        """``ledger/promotion-intents/<id>.json``: a promotion in flight."""
        return f"{cls.LEDGER_PROMOTION_INTENTS}/{promotion_id}.json"

    @classmethod
    def run_history(cls, run_key: str) -> str:
        """``runs/history/<run>.json``: the champion and its figures after run ``run_key``."""
        return f"{cls.RUN_HISTORY}/{run_key}.json"


@dataclass(frozen=True)
class RunLayout:
    """Keys of one DAG run's folder ``runs/<run_key>/``.

    ``run_key`` is :func:`run_key_of` of the DAG run id (:meth:`of` makes it); ``backbone`` a
    name of ``covidct.schema.BACKBONE_NAMES``; ``fold`` the fold index; ``batch`` a batch id;
    ``model`` a model name of the evidence (a backbone or ``champion``); ``version`` a registered
    model version. Methods return keys; ``*_dir`` properties return folders (no trailing ``/``).
    """

    run_key: str

    VALIDATION: ClassVar[str] = "validation"
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    PREDICTIONS: ClassVar[str] = "predictions"
    GRADCAM: ClassVar[str] = "gradcam"
    DEPLOYABLES: ClassVar[str] = "deployables"
    SEQUESTERED: ClassVar[str] = schema.SEQUESTERED
    DRIFT: ClassVar[str] = "drift"
    EVIDENCE: ClassVar[str] = "evidence"
    MODEL_CARDS: ClassVar[str] = "model_cards"
    REPORT: ClassVar[str] = "report"
    REPORT_FILE: ClassVar[str] = "report.html"
    MODEL_CARD_FILE: ClassVar[str] = "model_card.html"
    VERDICT_FILE: ClassVar[str] = "verdict.json"

    def __post_init__(self) -> None:
        if self.run_key != run_key_of(self.run_key):
            raise ValueError(
                f"run key {self.run_key!r} is not storage-safe: use RunLayout.of(dag_run_id)"
            )

    @classmethod
    def of(cls, dag_run_id: str) -> RunLayout:
        """The layout of DAG run ``dag_run_id`` (its key: :func:`run_key_of`)."""
        return cls(run_key_of(dag_run_id))

    @classmethod
    def at(cls, prefix: str) -> RunLayout:
        """The layout whose :attr:`prefix` is ``prefix`` (``runs/<run_key>``); raises
        ValueError for a key that is not one run folder."""
        area, _, run_key = prefix.rstrip("/").partition("/")
        if area != schema.RUNS or run_key != run_key_of(run_key):
            raise ValueError(f"{prefix!r} is not a run folder runs/<run_key>")
        return cls(run_key)

    @property
    def prefix(self) -> str:
        """``runs/<run_key>``."""
        return f"{schema.RUNS}/{self.run_key}"

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # ---------------------------------------------------------------------- intake
    @property
    def validation_dir(self) -> str:
        """``runs/<run>/validation``."""
        return self._key(self.VALIDATION)

    def validation(self, batch: str) -> str:
        """``runs/<run>/validation/<batch>``: the batch's ``manifest.parquet``, ``verdict.json``."""
        return self._key(self.VALIDATION, batch)

    def validation_manifest(self, batch: str) -> str:
        """``runs/<run>/validation/<batch>/manifest.parquet``."""
        return f"{self.validation(batch)}/manifest.parquet"

    def validation_verdict(self, batch: str) -> str:
        """``runs/<run>/validation/<batch>/verdict.json``."""
        return f"{self.validation(batch)}/{self.VERDICT_FILE}"

    @property
    def drift_dir(self) -> str:
        """``runs/<run>/drift``."""
        return self._key(self.DRIFT)

    def drift(self, batch: str) -> str:
        """``runs/<run>/drift/<batch>.json``: the batch against the curated reference."""
        return self._key(self.DRIFT, f"{batch}.json")

    # ----------------------------------------------------------------- development
    def checkpoints(self, backbone: str, fold: int) -> str:
        """``runs/<run>/checkpoints/<backbone>/fold-<k>``: the lake mirror of a training."""
        return self._key(self.CHECKPOINTS, backbone, f"fold-{fold}")

    @property
    def predictions_dir(self) -> str:
        """``runs/<run>/predictions``."""
        return self._key(self.PREDICTIONS)

    def predictions(self, backbone: str, fold: int | str) -> str:
        """``runs/<run>/predictions/<backbone>-fold<k>.csv``: test predictions of a fold."""
        return self._key(self.PREDICTIONS, f"{backbone}-fold{fold}.csv")

    @property
    def gradcam_dir(self) -> str:
        """``runs/<run>/gradcam``."""
        return self._key(self.GRADCAM)

    def gradcam(self, backbone: str, fold: int | str) -> str:
        """``runs/<run>/gradcam/<backbone>-fold<k>.png``: Grad-CAM overlays of a fold."""
        return self._key(self.GRADCAM, f"{backbone}-fold{fold}.png")

    @property
    def curation(self) -> str:
        """``runs/<run>/curation.json``: the dataset version's slices, selected and not."""
        return self._key("curation.json")

    @property
    def leaderboard(self) -> str:
        """``runs/<run>/leaderboard.csv``: backbone x metric, mean and sd over folds."""
        return self._key("leaderboard.csv")

    @property
    def pooled_metrics(self) -> str:
        """``runs/<run>/pooled_metrics.json``: metrics of predictions pooled over folds."""
        return self._key("pooled_metrics.json")

    # ---------------------------------------------------------------- confirmation
    def deployable(self, backbone: str) -> str:
        """``runs/<run>/deployables/<backbone>``."""
        return self._key(self.DEPLOYABLES, backbone)

    def seen_patients(self, backbone: str) -> str:
        """``runs/<run>/deployables/<backbone>/seen_patients.parquet``."""
        return f"{self.deployable(backbone)}/seen_patients.parquet"

    def sequestered_predictions(self, model: str) -> str:
        """``runs/<run>/sequestered/<model>.csv``: a registered model on the sequestered set."""
        return self._key(self.SEQUESTERED, f"{model}.csv")

    @property
    def evidence_dir(self) -> str:
        """``runs/<run>/evidence``."""
        return self._key(self.EVIDENCE)

    @property
    def evidence_index(self) -> str:
        """``runs/<run>/evidence/evidence.json``: temperatures, calibration, the files below."""
        return self._key(self.EVIDENCE, "evidence.json")

    @property
    def roster(self) -> str:
        """``runs/<run>/evidence/roster.parquet``: the sequestered patients' roster."""
        return self._key(self.EVIDENCE, "roster.parquet")

    def subgroups(self, model: str) -> str:
        """``runs/<run>/evidence/<model>-subgroups.csv``."""
        return self._key(self.EVIDENCE, f"{model}-subgroups.csv")

    def reliability(self, model: str) -> str:
        """``runs/<run>/evidence/<model>-reliability.png``."""
        return self._key(self.EVIDENCE, f"{model}-reliability.png")

    def probe(self, candidate: str) -> str:
        """``runs/<run>/evidence/probe-<candidate>.json``: the serving check's probe set."""
        return self._key(self.EVIDENCE, f"probe-{candidate}.json")

    def serving(self, version: str | int) -> str:
        """``runs/<run>/evidence/serving-v<N>.json``: the serving check of version N."""
        return self._key(self.EVIDENCE, f"serving-v{version}.json")

    # -------------------------------------------------------------------- decision
    @property
    def gate(self) -> str:
        """``runs/<run>/gate.json``: verdict, comparisons, digests, champion before/after."""
        return self._key("gate.json")

    @property
    def history(self) -> str:
        """``runs/history/<run>.json`` (outside the run folder, one per run)."""
        return LakeLayout.run_history(self.run_key)

    @property
    def model_cards_dir(self) -> str:
        """``runs/<run>/model_cards``."""
        return self._key(self.MODEL_CARDS)

    def model_card_dir(self, version: str | int) -> str:
        """``runs/<run>/model_cards/v<N>``."""
        return self._key(self.MODEL_CARDS, f"v{version}")

    def model_card(self, version: str | int) -> str:
        """``runs/<run>/model_cards/v<N>/model_card.html``."""
        return f"{self.model_card_dir(version)}/{self.MODEL_CARD_FILE}"

    def model_card_from_report(self, version: str | int) -> str:
        """The link from the report page to a model card: ``../model_cards/v<N>/model_card.html``
        (:attr:`model_card` relative to :attr:`report_dir`)."""
        return posixpath.relpath(self.model_card(version), self.report_dir)

    @property
    def model_cards_index(self) -> str:
        """``runs/<run>/model_cards/index.json``: version -> card key and MLflow artifact."""
        return self._key(self.MODEL_CARDS, "index.json")

    # ---------------------------------------------------------------------- report
    @property
    def summary_json(self) -> str:
        """``runs/<run>/summary.json``."""
        return self._key("summary.json")

    @property
    def summary_txt(self) -> str:
        """``runs/<run>/summary.txt`` (as ``covidct report`` prints it)."""
        return self._key("summary.txt")

    @property
    def report_dir(self) -> str:
        """``runs/<run>/report``: the run's HTML report and its PNGs."""
        return self._key(self.REPORT)

    @property
    def report_html(self) -> str:
        """``runs/<run>/report/report.html``."""
        return self._key(self.REPORT, self.REPORT_FILE)
