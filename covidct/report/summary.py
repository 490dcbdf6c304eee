"""The run summary: leaderboard, promotion decision, quarantined batches, where artifacts are.

:func:`write_summary` gathers what a DAG run wrote under ``runs/<run_key>/`` into
``summary.json`` and ``summary.txt`` (:func:`format_summary`, as ``covidct report`` prints it)
and writes the run's one HTML page, ``runs/<run_key>/report/report.html`` with its pictures
beside it (:mod:`covidct.report.html_report`).
"""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from covidct.config import Settings
from covidct.lake.layout import LakeLayout, RunLayout
from covidct.schema import HEADLINE_METRICS

logger = logging.getLogger(__name__)

#: Folder of the run's HTML report and its PNGs under ``runs/<run_key>/``.
REPORT_FOLDER = RunLayout.REPORT

#: Headline metrics left out of the text leaderboard to keep it within a terminal's width; they
#: stay in ``leaderboard.csv`` and the HTML report.
_NOT_IN_TEXT_LEADERBOARD = frozenset(
    {"image_normal_precision", "image_balanced_accuracy", "image_pr_auc", "patient_accuracy"}
)
#: Columns of the text leaderboard (:func:`leaderboard_text`), in :data:`HEADLINE_METRICS` order.
LEADERBOARD_COLUMNS: tuple[str, ...] = tuple(
    name for name in HEADLINE_METRICS if name not in _NOT_IN_TEXT_LEADERBOARD
)


def _read_json(store: Any, key: str) -> Any:
    return json.loads(store.read_bytes(key)) if store.exists(key) else None


def collect_summary(settings: Settings, dag_run_id: str) -> dict[str, Any]:
    """Gather one run's outputs from the lake into a JSON-safe dict."""
    from covidct.lake.access import open_lake as lake

    store = lake(settings)
    run = RunLayout.of(dag_run_id)
    verdict_keys = sorted(k for k in store.list(run.validation_dir) if k.endswith(run.VERDICT_FILE))
    verdicts = [json.loads(store.read_bytes(k)) for k in verdict_keys]
    board_key = run.leaderboard
    board = (
        pd.read_csv(io.BytesIO(store.read_bytes(board_key))).to_dict(orient="records")
        if store.exists(board_key)
        else []
    )
    return {
        "dag_run_id": dag_run_id,
        "batches": [
            {
                "batch_id": v.get("batch_id"),
                "passed": v.get("passed"),
                "reasons": v.get("reasons", []),
            }
            for v in verdicts
        ],
        # this run's: a batch quarantined by an earlier run is not news (it stays in the
        # lake's quarantine/ area); the lake's total is counted beside it
        "quarantined": sorted({str(v.get("batch_id")) for v in verdicts if not v.get("passed")}),
        "quarantined_total": len(
            {k.split("/")[1] for k in store.list(LakeLayout.QUARANTINE) if "/" in k}
        ),
        "curation": _read_json(store, run.curation),
        "leaderboard": board,
        "gate": _read_json(store, run.gate),
        "pooled": _read_json(store, run.pooled_metrics),
        "lake": settings.lake.uri,
        "run_prefix": store.uri(run.prefix),
        "mlflow": settings.mlflow.tracking_uri,
        "alerts": str(settings.alerts.jsonl_path),
    }


def _version(value: Any) -> str:
    """A registered version as text: ``v3``, or ``none`` when there is none (never ``None``)."""
    return "none" if value is None or value == "" else f"v{value}"


def _text(value: Any) -> str:
    """``value`` as text, ``none`` for a missing value (never Python's ``None``)."""
    return "none" if value is None else str(value)


def leaderboard_text(board: list[dict[str, Any]]) -> str:
    """Render the leaderboard for a terminal: one row per metric (readable titles,
    :func:`covidct.templating.metric_title`), one column per backbone, mean ± sd over folds in
    the HTML report's units (:data:`covidct.templating.UNITS`; a single fold's value as
    ``value (1 fold)``). Transposed so that it stays under 100 columns for up to three
    backbones, whatever the number of metrics."""
    from covidct.report.html_report import format_cell
    from covidct.templating import UNITS, metric_title

    if not board:
        return "(no model was trained in this run)"
    titles = [metric_title(name) for name in LEADERBOARD_COLUMNS]
    cells = [
        [format_cell(name, row.get(f"{name}_mean"), row.get(f"{name}_sd")) for row in board]
        for name in LEADERBOARD_COLUMNS
    ]
    first = max(len("metric"), *(len(title) for title in titles)) + 2
    width = max(len(str(row["backbone"])) for row in board)
    width = max(width, *(len(cell) for line in cells for cell in line)) + 2
    header = f"{'metric':<{first}}" + "".join(f"{row['backbone']!s:>{width}}" for row in board)
    lines = [header, "-" * len(header)]
    lines.extend(
        f"{title:<{first}}" + "".join(f"{cell:>{width}}" for cell in line)
        for title, line in zip(titles, cells, strict=True)
    )
    lines.append(
        f"({UNITS} Mean ± sd over {board[0].get('folds', '?')} folds; "
        '"(1 fold)": the one fold where the metric is defined.)'
    )
    return "\n".join(lines)


def evidence_lines(candidate: str, comparisons: list[dict[str, Any]]) -> list[str]:
    """One line per gate comparison: the difference and COVID sensitivity, with 95% intervals.

    ``comparisons``: :class:`covidct.promotion.gate.Comparison` records as dicts (``gate.json``);
    figures
    are fractions, shown in percentage points, on ``n_patients`` sequestered patients of which
    ``overlap_patients`` were seen in development (must be 0).
    """
    lines = []
    for item in comparisons:
        metric = str(item["metric"]).replace("_", " ")
        if item.get("sensitivity_difference") is None:  # judged against the champion only
            sensitivity = "COVID sensitivity not judged against it"
        else:
            sensitivity = (
                f"COVID sensitivity {_points(item['sensitivity_difference'])} points (95% CI "
                f"{_points(item['sensitivity_ci_low'])} to "
                f"{_points(item['sensitivity_ci_high'])})"
            )
        lines.append(
            f"  evidence vs {item['comparator']} {item['comparator_name']} on "
            f"{item.get('n_patients', '?')} sequestered patients (overlap "
            f"{item.get('overlap_patients', '?')}): {metric} of {candidate} minus theirs "
            f"{_points(item['difference'])} points (95% CI {_points(item['ci_low'])} to "
            f"{_points(item['ci_high'])}); {sensitivity}"
        )
        if item.get("outcome"):
            gain = item.get("detectable_gain")
            detects = f"; detects {_points(gain)} points with 80% power" if gain is not None else ""
            lines.append(f"    outcome: {item['outcome']}{detects}")
    return lines


def _points(value: Any) -> str:
    """A difference (fraction) in signed percentage points, ``n/a`` when undefined."""
    return "n/a" if value is None else f"{100 * float(value):+.1f}"


def confirmation_lines(gate: dict[str, Any]) -> list[str]:
    """What the decision rests on: sequestered patients, the candidate's figure, the digests."""
    if "sequestered_patients" not in gate:
        return []
    primary = gate.get("candidate_primary") or {}
    lock = gate.get("sequester_lock") or {}
    lines = [
        f"  confirmed on {gate['sequestered_patients']} sequestered patients "
        f"({gate.get('sequestered_covid_patients', '?')} COVID; sequestration epoch "
        f"{lock.get('epoch', '?')}), never trained, validated or thresholded on"
    ]
    if primary.get("value") is not None:
        from covidct.report.wording import interval_text

        metric = str(primary["metric"])
        shown = metric.replace("_", " ").replace("roc auc", "ROC AUC")
        lines.append(f"  {gate['candidate']} {shown} {interval_text(metric, primary)}")
    same = gate.get("evaluated_model_digest") == gate.get("registered_model_digest")
    lines.append(
        f"  model evaluated = model registered: {'yes' if same else 'NO'} (digest "
        f"{_text(gate.get('evaluated_model_digest'))})"
    )
    return lines


def curation_lines(curation: dict[str, Any] | None) -> list[str]:
    """The dataset version's slices: how many train and are scored (selected, open lung) and
    how many are not diagnostic (closed lung; left in the lake, never used). ``curation``: the
    run's ``curation.json`` (:func:`covidct.pipeline.intake.selection_counts`), or None."""
    if not curation:
        return []
    return [
        f"\nSlices of dataset {curation.get('dataset_version')}: {curation['n_slices']} curated, "
        f"{curation['n_selected']} selected (open lung: the only slices that train, pick "
        f"thresholds and are scored), {curation['n_not_diagnostic']} not diagnostic: closed lung "
        "(kept in the lake)"
    ]


def model_lines(gate: dict[str, Any]) -> list[str]:
    """Each confirmed model's figures on the sequestered patients, in words
    (:mod:`covidct.report.wording`): AUC and balanced accuracy with intervals, "no better than
    chance", sensitivity by severity band and the Grad-CAM pointing game where recorded."""
    from covidct.report import wording

    lines = []
    for name, record in (gate.get("models") or {}).items():
        lines.append(f"  {wording.model_sentence(name, record)}")
        extra = [wording.severity_sentence(record), wording.pointing_sentence(record)]
        lines.extend(f"      {text}" for text in extra if text)
    return lines


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`collect_summary`'s dict for a terminal."""
    lines = [f"== covidct run {summary['dag_run_id']} =="]
    lines.append("\nBatches:")
    for batch in summary["batches"] or [{"batch_id": "(none new)", "passed": None, "reasons": []}]:
        state = {True: "accepted", False: "QUARANTINED", None: ""}[batch["passed"]]
        lines.append(f"  {_text(batch['batch_id']):<32} {state}")
        lines.extend(f"      - {reason}" for reason in batch["reasons"][:5])
    lines.extend(curation_lines(summary.get("curation")))
    lines.append("\nLeaderboard:")
    lines.append(leaderboard_text(summary["leaderboard"]))
    gate = summary.get("gate")
    lines.append("\nPromotion:")
    if gate:
        verdict = gate["verdict"]
        decision = "PROMOTED to @champion" if verdict["passed"] else "NOT promoted"
        lines.append(
            f"  candidate {gate['candidate']} (version {_text(gate['version'])}): {decision}"
        )
        lines.extend(
            f"  REGISTRY DISAGREES: @{item.get('alias')}: {item.get('detail')}"
            for item in gate.get("registry_disagreements") or []
        )
        lines.extend(f"  reason: {reason}" for reason in verdict["reasons"])
        lines.extend(confirmation_lines(gate))
        lines.extend(evidence_lines(gate["candidate"], verdict.get("comparisons") or []))
        lines.extend(model_lines(gate))
        lines.append(
            f"  champion: {_version(gate.get('champion_before'))} -> "
            f"{_version(gate.get('champion_after'))}"
        )
    else:
        lines.append("  (no gate in this run)")
    earlier = summary.get("quarantined_total", 0) - len(summary["quarantined"])
    lines.append(
        f"\nQuarantined in this run: {', '.join(summary['quarantined']) or 'none'}"
        + (f" ({earlier} earlier batch(es) still in quarantine)" if earlier > 0 else "")
    )
    lines.append("\nArtifacts:")
    lines.append(f"  run outputs   {summary['run_prefix']}")
    lines.append(f"  data lake     {summary['lake']}")
    lines.append(f"  MLflow        {summary['mlflow']}")
    lines.append(f"  alerts        {summary['alerts']}")
    return "\n".join(lines)


def _keys_of(store: Any, prefix: str, name_start: str) -> list[str]:
    return sorted(k for k in store.list(prefix) if k.split("/")[-1].startswith(name_start))


def write_picture_report(
    settings: Settings, store: Any, prefix: str, summary: dict[str, Any]
) -> Path:
    """Write the run's HTML report with its pictures (``covidct.report.html_report``); return its
    folder.

    Pictures per backbone: confusion matrix, ROC per fold with the mean, PR curve, and the
    Grad-CAM panel of every fold (each fold's model on its own test images, so each outcome
    kind shows wherever a fold has one). A run without a leaderboard (a dry run, no new batch) gets
    the page too, saying no model was trained. Raises ValueError on an invalid predictions table.
    """
    from covidct.report import evidence_html, html_report

    run = RunLayout.at(prefix)
    out_dir = settings.work_dir / "reports" / prefix.replace("/", "_")
    out_dir.mkdir(parents=True, exist_ok=True)
    evidence = evidence_html.run_evidence_html(store, prefix, out_dir, summary["batches"])
    rows = summary["leaderboard"]
    board = (
        pd.DataFrame(rows).set_index("backbone")
        if rows
        else pd.DataFrame(index=pd.Index([], name="backbone"))
    )
    predictions: dict[str, pd.DataFrame] = {}
    gradcam: dict[str, dict[str, Path]] = {}
    for backbone in board.index:
        keys = _keys_of(store, run.predictions_dir, f"{backbone}-fold")
        frames = [pd.read_csv(io.BytesIO(store.read_bytes(k))) for k in keys]
        if frames:
            predictions[str(backbone)] = pd.concat(frames, ignore_index=True)
        for key in _keys_of(store, run.gradcam_dir, f"{backbone}-fold"):
            name = key.split("/")[-1]
            local = out_dir / "_gradcam" / name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(store.read_bytes(key))
            fold = name[len(f"{backbone}-fold") : -len(".png")]
            gradcam.setdefault(str(backbone), {})[fold] = local
    path = html_report.write_run_report(
        out_dir,
        leaderboard=board,
        gate=summary.get("gate"),
        batches=summary["batches"],
        curation=summary.get("curation"),
        predictions=predictions,
        gradcam=gradcam or None,
        title=f"covidct run {summary['dag_run_id']}",
        extra_sections=[("Evidence: drift, subgroups, calibration, serving", evidence)],
    )
    return path.parent


class NoSuchRunError(LookupError):
    """The lake holds no such run, or no run fit to report (``covidct report`` exits 1)."""


#: Runs listed by name in a :class:`NoSuchRunError` message (the latest ones).
_RUNS_LISTED = 12
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?")
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def stored_summaries(store: Any) -> dict[str, dict[str, Any] | None]:
    """Every run folder ``runs/<run_key>/`` of the lake (``runs/history`` is none): run key ->
    its ``summary.json`` (None while the run is not summarized)."""
    history = LakeLayout.RUN_HISTORY.rpartition("/")[2]
    keys = [key for key in store.list_dirs(LakeLayout.RUNS) if key != history]
    return {key: _read_json(store, RunLayout(key).summary_json) for key in keys}


def _time_of(summary: dict[str, Any] | None) -> datetime:
    """When a run was summarized (``summarized_at``), else the time in its DAG run id
    (``manual__2026-01-04T00:00:00+00:00``), else the earliest time."""
    summary = summary or {}
    for text in (summary.get("summarized_at"), summary.get("dag_run_id")):
        match = _ISO_TIME.search(str(text or ""))
        if match:
            try:
                when = datetime.fromisoformat(match.group(0).replace("Z", "+00:00"))
            except ValueError:
                continue
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    return _EARLIEST


def trained_something(summary: dict[str, Any] | None) -> bool:
    """Whether a stored summary is of a run that trained a model: not a dry run (``dry_run``
    when recorded) and a leaderboard with at least one backbone (a dry run, or a run with no
    new batch, trains nothing and has none)."""
    if not summary:
        return False
    return not summary.get("dry_run") and bool(summary.get("leaderboard"))


def _runs_text(summaries: dict[str, dict[str, Any] | None]) -> str:
    if not summaries:
        return "no run is recorded"
    latest_first = sorted(summaries, key=lambda k: (_time_of(summaries[k]), k), reverse=True)
    named = []
    for key in latest_first[:_RUNS_LISTED]:
        summary = summaries[key]
        what = (
            "not summarized" if summary is None
            else "" if trained_something(summary)
            else "trained nothing"
        )  # fmt: skip
        name = str((summary or {}).get("dag_run_id") or key)
        named.append(f"{name} ({what})" if what else name)
    more = len(latest_first) - _RUNS_LISTED
    return f"runs, latest first: {', '.join(named)}" + (f" and {more} more" if more > 0 else "")


def find_run(store: Any, run: str, lake_uri: str) -> str:
    """The DAG run id of run ``run`` (a DAG run id or its run key) as its summary records it.

    Raises :class:`NoSuchRunError`, one line naming the run and listing the runs that exist,
    when the lake has no folder ``runs/<run_key>/``.
    """
    summaries = stored_summaries(store)
    key = RunLayout.of(run).run_key
    if key not in summaries:
        raise NoSuchRunError(f"no run {run!r} in {lake_uri}; {_runs_text(summaries)}")
    return str((summaries[key] or {}).get("dag_run_id") or run)


def latest_trained_run(store: Any, lake_uri: str) -> str:
    """The DAG run id of the latest summarized run that trained a model
    (:func:`trained_something`; latest by ``summarized_at``, else by the time in the run id).

    A dry run triggered from the form becomes ``runs/LATEST`` but trains nothing; it is skipped.
    Raises :class:`NoSuchRunError` (one line, listing the runs) when no run qualifies.
    """
    summaries = stored_summaries(store)
    trained = [key for key, summary in summaries.items() if trained_something(summary)]
    if not trained:
        raise NoSuchRunError(
            f"no run in {lake_uri} has trained a model yet (a dry run trains none); "
            f"{_runs_text(summaries)}; `covidct report --run ID` shows any of them"
        )
    key = max(trained, key=lambda k: (_time_of(summaries[k]), k))
    return str((summaries[key] or {}).get("dag_run_id") or key)


def write_summary(settings: Settings, dag_run_id: str) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.txt`` and the HTML report under ``runs/<run_key>/``.

    The report is ``report/report.html`` with its PNGs beside it (:func:`write_picture_report`);
    ``summary.json`` records when (``summarized_at``, UTC); ``runs/LATEST`` then names this run
    (a dry run too: ``covidct report`` chooses with :func:`latest_trained_run`). Returns the
    URIs ``{"summary", "report"}``. Raises ValueError on an invalid predictions table; storage
    errors propagate.
    """
    from covidct.lake.access import open_lake as lake

    store = lake(settings)
    summary = collect_summary(settings, dag_run_id)
    summary["summarized_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    run = RunLayout.of(dag_run_id)
    store.write_bytes(run.summary_json, json.dumps(summary, indent=2, default=str).encode())
    store.write_bytes(run.summary_txt, format_summary(summary).encode())
    local = write_picture_report(settings, store, run.prefix, summary)
    store.upload_dir(local, run.report_dir)
    store.write_bytes(LakeLayout.LATEST, dag_run_id.encode())
    logger.info("%s", format_summary(summary))
    return {"summary": store.uri(run.summary_json), "report": store.uri(run.report_html)}
