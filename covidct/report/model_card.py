"""The model card and change record of a registered version, generated from what was recorded.

:func:`write_model_card` reads the version's registry tags (lineage, training parameters,
temperature, digest), its DAG run's ``gate.json`` and evidence (:mod:`covidct.pipeline.evidence`),
the
curated dataset version's manifest and the run's Grad-CAM panels, and writes one self-contained
HTML page (PNGs embedded as data URIs) from the template ``model_card.html`` on the run report's
base layout (:mod:`covidct.templating`, autoescaped). Its sections are
:data:`CARD_SECTIONS`: tables and sentences, no raw JSON; rates in percent, AUCs and MCC as
fractions. Nothing in it is typed by hand: a figure that was not recorded is shown as not
recorded. The change record (:func:`change_html`) lists what changed against the previous
version: data, training specification, sequestered metrics with their intervals, decision.

:func:`publish_cards` (called by ``pipeline.gate_and_promote``) writes the card of every version
the run registered to ``runs/<run>/model_cards/v<N>/model_card.html``, logs it to the version's
MLflow run (artifact ``model_card/model_card.html``) and links it from the version (tag
``model_card``). ``covidct model-card VERSION`` writes it again from the same records, to the
same key of the run's folder (:func:`store_model_card`), or to ``--out FILE``.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from covidct import templating
from covidct.config import Settings
from covidct.lake.access import open_lake, read_json
from covidct.lake.layout import LakeLayout, RunLayout
from covidct.report import evidence_html
from covidct.report.card_parts import (
    change_record,
    criteria_rows,
    members_text,
    spec_text,
    temperature_text,
)
from covidct.report.html_report import format_metric, gate_html
from covidct.templating import metric_title, render

logger = logging.getLogger(__name__)

CARD_FILE = RunLayout.MODEL_CARD_FILE
#: Version tag linking the card (an MLflow artifact URI of the version's run).
CARD_TAG = "model_card"
CARD_SECTIONS: tuple[str, ...] = (
    "Intended use and limits",
    "Training data lineage",
    "Training specification",
    "Sequestered performance",
    "Subgroup performance",
    "Calibration",
    "Grad-CAM examples",
    "Promotion gate: criteria and result",
    "Serving check",
    "Change record",
)
#: Outcome kinds of the Grad-CAM examples (slice level, p(COVID) > 0.5).
OUTCOME_KINDS: tuple[str, ...] = ("TP", "FP", "FN", "TN")

#: The card's first section (template ``parts/intended_use.html``).
INTENDED_USE = "parts/intended_use.html"


def _png(data: bytes, caption: str) -> dict[str, str]:
    return {"src": "data:image/png;base64," + base64.b64encode(data).decode(), "caption": caption}


def _kv(rows: list[tuple[str, Any]]) -> Markup:
    return templating.table(["field", "value"], rows, table_class="text")


def _batch_of(manifest: pd.DataFrame) -> pd.Series:
    if "batch_id" in manifest.columns:
        return manifest["batch_id"].astype(str)
    return manifest["path"].astype(str).str.split("/").str[0]


def lineage_html(settings: Settings, store: Any, tags: Mapping[str, str]) -> str:
    """Dataset version, its batches, and patient counts by label, role and subgroup."""
    from covidct.evaluation import subgroups
    from covidct.lake.storage import read_parquet

    version = tags.get("dataset_version", "?")
    key = LakeLayout.dataset_manifest(version)
    if not store.exists(key):
        text = f"Dataset version {version}: manifest not found ({key})."
        return render("parts/paragraph.html", text=text)
    manifest = read_parquet(store, key)
    manifest = manifest.assign(batch=_batch_of(manifest))
    seen_key = tags.get("seen_patients_key", "")
    seen = (
        set(read_parquet(store, seen_key)["patient_key"].astype(str))
        if seen_key and store.exists(seen_key)
        else set()
    )
    patients = manifest.groupby("patient_key").agg(
        label=("label", "first"), batch=("batch", "first")
    )
    patients["role"] = [
        "development" if str(p) in seen else "not used in development" for p in patients.index
    ]
    roster = subgroups.roster_of(settings, store, manifest)
    first = roster.drop_duplicates("patient_id").set_index("patient_id")
    edges = settings.gate.age_band_edges
    patients["sex"] = [first["sex"].get(p, subgroups.UNKNOWN) for p in patients.index]
    patients["age_band"] = [
        subgroups.age_band(float(first["age_years"].get(p, float("nan"))), edges)
        for p in patients.index
    ]
    patients["source"] = [str(p).split("/", 1)[0] for p in patients.index]
    facts = _kv([
        ("dataset version", version),
        ("batches", ", ".join(sorted(patients["batch"].unique()))),
        ("slices", f"{len(manifest):,}"),
        ("patients", f"{len(patients):,}"),
        ("development patients the model saw", tags.get("seen_patients", len(seen))),
        ("sequestration epoch", tags.get("sequester_epoch", "?")),
    ])  # fmt: skip
    tables = []
    for axis in ("role", "batch", "source", "sex", "age_band"):
        counts = patients.groupby([axis, "label"]).size().unstack(fill_value=0)
        rows = [[level, *(int(v) for v in counts.loc[level])] for level in counts.index]
        header = [axis.replace("_", " "), *map(str, counts.columns)]
        tables.append(templating.table(header, rows, table_class="text"))
    return render("parts/lineage.html", facts=facts, tables=tables)


def card_gradcam_html(store: Any, prefix: str, backbone: str) -> str:
    """The Grad-CAM panels the evaluation drew per fold (TP, FN, FP, TN examples) and how many
    slices of each outcome kind the fold's test set had; a kind without a slice is named."""
    from covidct.evaluation.predictions import confusion_cells

    panels = sorted(
        k
        for k in store.list(RunLayout.at(prefix).gradcam_dir)
        if k.split("/")[-1].startswith(f"{backbone}-fold")
    )
    if not panels:
        text = "No Grad-CAM panel was recorded for this model's folds."
        return render("parts/paragraph.html", text=text)
    pictures = []
    for panel in panels:
        name = panel.split("/")[-1].removesuffix(".png")
        predictions = f"{RunLayout.at(prefix).predictions_dir}/{name}.csv"
        if store.exists(predictions):
            frame = pd.read_csv(io.BytesIO(store.read_bytes(predictions)))
            cells = confusion_cells(frame).value_counts()
            counts = {kind: int(cells.get(kind, 0)) for kind in OUTCOME_KINDS}
            missing = [kind for kind, n in counts.items() if n == 0]
            text = ", ".join(f"{k} {n}" for k, n in counts.items())
            note = f"test slices by outcome: {text}" + (
                f"; no example of {', '.join(missing)} (no such slice)" if missing else ""
            )
        else:
            note = "outcome counts not recorded"
        pictures.append(_png(store.read_bytes(panel), f"{name}: Grad-CAM (class COVID); {note}"))
    return render("parts/figures.html", pictures=pictures)


def change_html(client: Any, settings: Settings, version: str, gate: Mapping[str, Any]) -> str:
    """The change record: the gate's decision (its status, whether this version became
    champion, the champion before and after), then what changed against the previous version
    (the champion this version was judged against, else the version registered before it):
    data version, training specification, sequestered metrics with their 95% intervals and
    the gate's verdict, as sentences and a table (:func:`covidct.report.card_parts.change_record`).
    Raises ``mlflow.exceptions.MlflowException`` when the registry cannot be read."""
    return render("parts/change.html", **change_record(client, settings, str(version), gate))


def _words(name: str, gated: Mapping[str, Any]) -> list[str]:
    """The version's sequestered figures in sentences (:mod:`covidct.report.wording`)."""
    from covidct.report import wording

    if not gated:
        return []
    sentences = [
        wording.model_sentence(name, gated),
        wording.severity_sentence(gated),
        wording.pointing_sentence(gated),
    ]
    return [text for text in sentences if text]


def render_card(settings: Settings, version: str) -> str:
    """The model card of registered ``version`` as one HTML document (:data:`CARD_SECTIONS`).

    Raises ValueError naming the version when the registry does not hold it.
    """
    from mlflow.exceptions import MlflowException

    from covidct.promotion import registry

    store = open_lake(settings)
    client = registry.client(settings.mlflow.tracking_uri)
    name = settings.mlflow.model_name
    try:
        model_version = client.get_model_version(name, str(version))
    except MlflowException:
        raise ValueError(f"model {name} has no version {version!r}") from None
    tags = model_version.tags
    dag_run_id = tags.get("dag_run_id", "")
    run = RunLayout.of(dag_run_id)
    gate = read_json(store, run.gate) or {}
    recorded = read_json(store, run.evidence_index) or {}
    backbone = tags.get("backbone", "?")
    models = recorded.get("models") or {}
    mine = {k: v for k, v in models.items() if str(v.get("version")) == str(version)}
    entry: dict[str, Any] = next(iter(mine.values()), {})
    gated: dict[str, Any] = next(
        (m for m in (gate.get("models") or {}).values() if str(m.get("version")) == str(version)),
        {},
    )
    spec = _kv([
        ("registered model", f"{name} version {version}"),
        ("backbone", backbone),
        ("deployable", tags.get("deployable", "-")),
        ("training specification", spec_text(tags.get("train_params"))),
        ("member fold runs", members_text(tags.get("member_runs"))),
        ("patient threshold", tags.get("patient_threshold", "-")),
        ("temperature", temperature_text(tags.get("temperature_fit"), tags.get("temperature"))),
        ("model digest", tags.get("model_digest", "-")),
        ("DAG run", dag_run_id),
        ("MLflow run", model_version.run_id),
    ])  # fmt: skip
    table = None
    if entry.get("subgroups_key") and store.exists(entry["subgroups_key"]):
        table = pd.read_csv(io.BytesIO(store.read_bytes(entry["subgroups_key"])))
    overall = table[table["axis"] == "all"] if table is not None else None
    metrics = gated.get("metrics") or {}
    figures = (
        templating.table(
            ["sequestered metric", "value"],
            [(metric_title(k), format_metric(k, v)) for k, v in metrics.items()],
            table_class="text",
        )
        if metrics
        else None
    )
    reliability = (
        [_png(store.read_bytes(entry["reliability_key"]), "reliability diagram, before and after")]
        if entry.get("reliability_key") and store.exists(entry["reliability_key"])
        else []
    )
    own = str(gate.get("version")) == str(version)
    serving = read_json(store, run.serving(version))
    return (
        str(
            render(
                "model_card.html",
                title=f"Model card: {name} v{version} ({backbone})",
                headings=CARD_SECTIONS,
                lineage=lineage_html(settings, store, tags),
                spec=spec,
                words=_words(backbone, gated),
                figures=figures,
                units=templating.UNITS,
                overall=evidence_html.subgroup_table_html(
                    overall, "all sequestered patients, 95% intervals"
                ),
                subgroups=evidence_html.subgroup_table_html(table),
                calibration=evidence_html.calibration_html(mine),
                reliability=render("parts/figures.html", pictures=reliability),
                gradcam=card_gradcam_html(store, run.prefix, backbone),
                criteria=_kv(criteria_rows(settings, gate, tags)),
                own=own,
                gate=gate_html(gate) if own else "",
                rule=evidence_html.subgroup_rule_html(gate.get("subgroups")) if own else "",
                verdict_tag=tags.get("gate_verdict", "-"),
                serving=evidence_html.serving_html(serving),
                change=change_html(client, settings, str(version), gate),
            )
        )
        + "\n"
    )


def write_model_card(settings: Settings, version: str, out: Path) -> Path:
    """Write :func:`render_card` of ``version`` to ``out`` (parents created); return it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_card(settings, version), encoding="utf-8")
    return out


def card_key(settings: Settings, version: str) -> str:
    """The lake key of ``version``'s card in the folder of the DAG run that registered it (tag
    ``dag_run_id``): ``runs/<run>/model_cards/v<N>/model_card.html``, where :func:`publish_cards`
    puts it. Raises ValueError naming the version when the registry does not hold it or it
    records no DAG run."""
    from mlflow.exceptions import MlflowException

    from covidct.promotion import registry

    client = registry.client(settings.mlflow.tracking_uri)
    name = settings.mlflow.model_name
    try:
        tags = client.get_model_version(name, str(version)).tags
    except MlflowException:
        raise ValueError(f"model {name} has no version {version!r}") from None
    dag_run_id = tags.get("dag_run_id")
    if not dag_run_id:
        raise ValueError(
            f"model {name} version {version} records no DAG run (tag dag_run_id), so its run "
            "folder is unknown; give --out FILE"
        )
    return RunLayout.of(dag_run_id).model_card(version)


def store_model_card(settings: Settings, version: str) -> str:
    """Write :func:`render_card` of ``version`` to its run's folder in the lake
    (:func:`card_key`, replacing the card the run published); return the URI written."""

    key = card_key(settings, version)
    store = open_lake(settings)
    store.write_bytes(key, render_card(settings, version).encode("utf-8"))
    return str(store.uri(key))


def publish_cards(
    settings: Settings, gated: Mapping[str, Any], dag_run_id: str
) -> dict[str, dict[str, str]]:
    """Write, store and log the card of every version the run registered (the gate's models
    but the champion); write ``runs/<run>/model_cards/index.json``. Returns version ->
    ``{"key", "artifact_uri"}`` (or ``{"error"}``: a card that cannot be written is logged and
    reported, it never undoes a promotion)."""
    from covidct.promotion import registry

    started = time.perf_counter()
    store = open_lake(settings)
    client = registry.client(settings.mlflow.tracking_uri)
    run = RunLayout.of(dag_run_id)
    index: dict[str, dict[str, str]] = {}
    versions = {
        str(m["version"]) for n, m in (gated.get("models") or {}).items() if n != "champion"
    }
    for version in sorted(versions, key=int):
        local = settings.work_dir / "model_cards" / f"v{version}" / CARD_FILE
        try:
            write_model_card(settings, version, local)
            key = run.model_card(version)
            store.write_bytes(key, local.read_bytes())
            run_id = client.get_model_version(settings.mlflow.model_name, version).run_id
            client.log_artifact(run_id, str(local), "model_card")
            uri = f"runs:/{run_id}/model_card/{CARD_FILE}"
            client.set_model_version_tag(settings.mlflow.model_name, version, CARD_TAG, uri)
            index[version] = {"key": key, "artifact_uri": uri}
        except Exception as error:  # noqa: BLE001 - a card never undoes a promotion
            logger.exception("model card of version %s not written", version)
            index[version] = {"error": f"{type(error).__name__}: {error}"}
    store.write_bytes(run.model_cards_index, json.dumps(index, indent=2).encode())
    logger.info("%d model cards in %.1f s", len(index), time.perf_counter() - started)
    return index
