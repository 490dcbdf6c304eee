"""The ``covidct`` command line. Configuration comes from the environment (``covidct.config``).

Without ``COVIDCT_HOME`` (and ``COVIDCT_LAKE_URI``), run from the folder where ``make demo`` ran,
the commands use the demo's ``.demo/`` and say so on stderr (``config.discover_home``).

Exit codes: 0 success (for ``validate``: the batch passed), 1 the batch failed validation (for
``ingest-dicom``: no slice could be written; for ``report``: no such run, or no run that trained
a model), 2 a usage or I/O error or a bad ``COVIDCT_*`` setting (checked before any command
runs; the one-line message names the file, batch, value or variable).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_OK, EXIT_INVALID, EXIT_ERROR = 0, 1, 2


def _settings():  # type: ignore[no-untyped-def]
    from covidct.config import Settings, discover_home

    env, note = discover_home(os.environ, Path.cwd())
    if note:
        print(note, file=sys.stderr)
    return Settings.from_env(env)


def _existing_lake(settings):  # type: ignore[no-untyped-def]
    """Open the lake of a command that reads it; a missing local lake says where it looked."""
    from urllib.parse import urlparse

    from covidct.config import where_home_was_looked_for
    from covidct.pipeline.context import lake

    if settings.lake.uri.startswith("file://"):
        root = Path(urlparse(settings.lake.uri).path)
        if not root.is_dir():
            why = where_home_was_looked_for(os.environ, Path.cwd())
            raise FileNotFoundError(
                f"no data lake at {root} ({why}); run `make demo` in the repository root and "
                "the commands from there, or set COVIDCT_HOME to the stack's home"
            )
    return lake(settings)


def cmd_ingest_dicom(args: argparse.Namespace) -> int:
    from covidct.batch.dicom import format_ingest_summary, ingest_dicom

    report = ingest_dicom(
        args.dicom_dir,
        args.out_dir,
        args.label,
        args.source,
        size_policy=args.size_policy,
        invert_monochrome1=args.invert_monochrome1,
        assume_intercept=args.assume_intercept,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_ingest_summary(report))
    if report.slices_written == 0:
        print(
            f"covidct ingest-dicom: error: no slice written from {args.dicom_dir} "
            f"({len(report.skipped)} files skipped, reasons above)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    return EXIT_OK


def cmd_synth(args: argparse.Namespace) -> int:
    from covidct.batch.synth import write_synthetic_batch

    report = write_synthetic_batch(
        args.out_dir,
        patients=args.patients,
        seed=args.seed,
        source=args.source,
        max_slices_per_patient=args.max_slices,
        scanner=args.scanner,
        truth_dir=args.truth_dir,
    )
    print(report if not hasattr(report, "to_dict") else json.dumps(report.to_dict(), default=str))
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from covidct.batch.checks import Check
    from covidct.batch.validation import validate_batch
    from covidct.batch.validation_report import format_verdict

    if not args.batch_dir.is_dir():
        raise FileNotFoundError(f"batch folder not found: {args.batch_dir}")
    verdict = validate_batch(args.batch_dir, report_dir=args.report, progress=not args.json)
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2, default=str))
    else:
        print(format_verdict(verdict))
    if Check.INPUT_LIMIT in verdict.failed_checks:
        print(
            f"covidct validate: error: batch {verdict.batch_id}: a metadata file is over its "
            "limit and was not read (report written)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return EXIT_OK if verdict.passed else EXIT_INVALID


def cmd_folds(args: argparse.Namespace) -> int:
    from covidct.data.folds_cli import run_folds_command

    print(run_folds_command(args.roster, args.labels, args.k, args.seed, args.out))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from covidct.models.backbones import run_models_command

    shape = tuple(int(part) for part in args.input_shape.split(","))
    if len(shape) != 3:
        raise ValueError(f"--input-shape: expected H,W,C; got {args.input_shape!r}")
    print(run_models_command(shape))  # type: ignore[arg-type]
    return EXIT_OK


def cmd_evaluate_predictions(args: argparse.Namespace) -> int:
    from covidct.evaluation.scoring import run_evaluate_predictions

    print(run_evaluate_predictions(args.predictions, args.json))
    return EXIT_OK


def cmd_land(args: argparse.Namespace) -> int:
    from covidct.lake.landing import land_batch
    from covidct.pipeline.context import lake

    batch_id = args.batch_id if args.batch_id is not None else args.batch_dir.resolve().name
    receipt = land_batch(lake(_settings()), args.batch_dir, batch_id, replace=args.replace)
    print(receipt.message)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    """Print a run's summary: ``--run ID``, or the latest run that trained a model (a dry run
    from the form becomes ``runs/LATEST`` but trains nothing). Exit 1, one line listing the
    runs, for an unknown run or when no run trained a model."""
    from covidct.lake.layout import LakeLayout
    from covidct.report.summary import (
        NoSuchRunError,
        collect_summary,
        find_run,
        format_summary,
        latest_trained_run,
    )

    settings = _settings()
    store = _existing_lake(settings)
    try:
        if args.run is not None:
            run_id = find_run(store, args.run, settings.lake.uri)
        elif not store.exists(LakeLayout.LATEST) and not store.list_dirs(LakeLayout.RUNS):
            raise FileNotFoundError(f"no run recorded yet in {settings.lake.uri}")
        else:
            run_id = latest_trained_run(store, settings.lake.uri)
    except NoSuchRunError as error:
        print(f"covidct report: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    summary = collect_summary(settings, run_id)
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return EXIT_OK


def cmd_registry(args: argparse.Namespace) -> int:
    from covidct.promotion import registry

    settings = _settings()
    store = _existing_lake(settings)
    if args.registry_command == "history":
        records = registry.read_ledger(store)
        if args.json:
            print(json.dumps(records, indent=2, default=str))
            return EXIT_OK
        if not records:
            print(f"(no promotion decision recorded yet in {settings.lake.uri})")
        for record in records:
            if record.get("action") == "baseline":  # the gate's own alias move, no decision
                print(
                    f"{record['at']}  baseline @{record.get('alias')} -> "
                    f"{_version(record.get('version'))}  run {_none(record.get('dag_run_id'))}"
                )
                continue
            print(
                f"{record['at']}  {record['action']:<8} {_version(record.get('version'))} "
                f"(champion before: {_version(record.get('previous_champion'))})  "
                f"run {_none(record.get('dag_run_id'))}"
                f"\n    {_none(record.get('reason'))}"
            )
        return EXIT_OK
    client = registry.client(settings.mlflow.tracking_uri)
    if args.registry_command == "status":
        return _registry_status(client, store, settings.mlflow.model_name, args.json)
    event = registry.rollback(client, store, settings.mlflow.model_name, args.version, args.reason)
    print(
        f"@champion moved back to version {event['version']} "
        f"(was {_version(event['previous_champion'])})"
    )
    return EXIT_OK


def _registry_status(client: object, store: object, model_name: str, as_json: bool) -> int:
    """Print each alias, its version and whether the ledger agrees; exit 1 on a disagreement."""
    from covidct.promotion import audit

    states = audit.alias_status(client, store, model_name)  # type: ignore[arg-type]
    if as_json:
        print(json.dumps([state.to_dict() for state in states], indent=2))
    elif not states:
        print(f"{model_name}: no alias in the registry nor in the ledger yet")
    else:
        print(f"{model_name}: alias, registry version, the version the gate's ledger expects")
        for state in states:
            print(state.line())
    moved = [state for state in states if not state.agrees]
    if moved and not as_json:
        print(
            f"{len(moved)} alias(es) moved outside the gate: `covidct registry rollback VERSION` "
            "puts @champion back through the ledger; an alias no gate decision set can be "
            "deleted in the MLflow UI",
            file=sys.stderr,
        )
    return EXIT_INVALID if moved else EXIT_OK


def _none(value: object) -> str:
    """``value`` as a person reads it: ``none``, never Python's ``None``."""
    return "none" if value is None else str(value)


def _version(value: object) -> str:
    """A registered version as ``v3``, or ``none``."""
    return "none" if value is None or value == "" else f"v{value}"


def cmd_sequester(args: argparse.Namespace) -> int:
    import getpass

    from covidct.data import sequester

    store = _existing_lake(_settings())
    if args.sequester_command == "relock":
        rule = sequester.SequesterRule(share=args.share)
        lock = sequester.relock(store, rule, reason=args.reason, by=f"cli:{getpass.getuser()}")
        print(
            f"sequestration re-locked: epoch {lock['epoch']}, share {rule.share:g}; champions "
            "developed under an earlier epoch are compared only on patients they never saw. "
            "Set COVIDCT_SEQUESTERED_SHARE to the new share for the DAG."
        )
        return EXIT_OK
    current = sequester.read_lock(store)
    assignment = sequester.read_assignment(store)
    if current is None or assignment is None:
        print("(no sequestration yet: the first DAG run that builds folds sets it)")
        return EXIT_OK
    counts = assignment.groupby(["source", "label", "role"]).size().unstack(fill_value=0)
    if args.json:
        print(json.dumps({"lock": current, "counts": counts.reset_index().to_dict("records")}))
        return EXIT_OK
    print(f"epoch {current['epoch']}  rule {current['rule']}  (digest {current['rule_digest']})")
    print(f"locked {current['locked_at']} by {current['by']}: {current['reason']}")
    print(counts.to_string())
    return EXIT_OK


def cmd_model_card(args: argparse.Namespace) -> int:
    """Write the card into its run's folder in the lake (``runs/<run>/model_cards/v<N>/``, where
    the pipeline publishes it), or to ``--out FILE``; print where."""
    from covidct.report.model_card import store_model_card, write_model_card

    settings = _settings()
    if args.out is not None:
        written = str(write_model_card(settings, args.version, args.out))
    else:
        _existing_lake(settings)
        written = _local_path(store_model_card(settings, args.version))
    print(f"model card written to {written}")
    return EXIT_OK


def _local_path(uri: str) -> str:
    """A ``file://`` URI as its path (what a person opens); any other URI as is."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def cmd_check_conf(args: argparse.Namespace) -> int:
    """Check a DAG run configuration (JSON) as the DAG's first task will; print what it trains.

    Imports only the Keras-free ``covidct.training.spec`` and ``covidct.config``, so a bad
    ``DEMO_CONF`` fails in about a second, before any setup.
    """
    from covidct.config import default_profile
    from covidct.training.spec import check_conf

    text = sys.stdin.read() if args.conf == "-" else args.conf
    request = check_conf(text, default_profile=default_profile(os.environ))
    plan = request.plan()
    print(
        f"run configuration OK: backbones {', '.join(plan['backbones']) or '(dry run)'}; "
        f"{request.folds} folds; {request.training.describe()}"
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every ``covidct`` command."""
    from covidct.batch.scanners import Scanner  # light: an enum and a dataclass

    parser = argparse.ArgumentParser(prog="covidct", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest-dicom", help="convert DICOM series into a Negin-style batch")
    p.add_argument("dicom_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--label", required=True, choices=["Positive", "Negative"])
    p.add_argument("--source", required=True, help="source name that namespaces patient ids")
    p.add_argument("--size-policy", default="skip", choices=["skip", "resample"])
    p.add_argument(
        "--invert-monochrome1",
        action="store_true",
        help="mirror MONOCHROME1 stored values before the rescale (display-inverted sources)",
    )
    p.add_argument(
        "--assume-intercept",
        type=float,
        default=None,
        metavar="HU",
        help="RescaleIntercept of slices without one (e.g. -1024); recorded in batch.json. "
        "Without it such slices are skipped",
    )
    p.add_argument("--json", action="store_true", help="print the full ingest record")
    p.set_defaults(func=cmd_ingest_dicom)

    p = sub.add_parser("synth", help="write a synthetic Negin-style batch")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--patients", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", default="synth", help="batch.json source (namespaces patients)")
    p.add_argument("--max-slices", type=int, default=None, help="cap slices per patient")
    p.add_argument(
        "--scanner",
        default=Scanner.NEGIN.value,
        choices=[member.value for member in Scanner],
        help="scanner profile: noise, kernel and slice thickness (covidct.batch.synth.SCANNERS)",
    )
    p.add_argument(
        "--truth-dir",
        type=Path,
        default=None,
        help="folder for the truth files (default: OUT_DIR.truth beside the batch)",
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("validate", help="validate a batch (exit 0 pass, 1 fail, 2 error)")
    p.add_argument("batch_dir", type=Path)
    p.add_argument("--report", type=Path, default=None, help="folder for the HTML/JSON report")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("folds", help="patient-level folds of a roster (COVID-CTset protocol)")
    p.add_argument("--roster", type=Path, required=True, help="all.csv (filename,class)")
    p.add_argument("--labels", type=Path, required=True, help="Patient_details.csv")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_folds)

    p = sub.add_parser("models", help="list registry backbones with parameter counts")
    p.add_argument("--input-shape", default="512,512,1")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("evaluate-predictions", help="every metric of a predictions CSV")
    p.add_argument("predictions", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate_predictions)

    p = sub.add_parser("land", help="put a local batch into the data lake's landing area")
    p.add_argument("batch_dir", type=Path)
    p.add_argument("--batch-id", default=None, help="default: the folder's name")
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace other content still pending under this batch id (recorded in the ledger)",
    )
    p.set_defaults(func=cmd_land)

    p = sub.add_parser(
        "report", help="print a DAG run's summary (default: the latest run that trained a model)"
    )
    p.add_argument("--run", default=None, help="DAG run id (exit 1 when the lake has no such run)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("registry", help="alias status, champion history and rollback")
    rsub = p.add_subparsers(dest="registry_command", required=True)
    h = rsub.add_parser("history", help="print the promotion audit ledger")
    h.add_argument("--json", action="store_true")
    st = rsub.add_parser(
        "status", help="each alias, its version, and whether the gate's ledger agrees (1: not)"
    )
    st.add_argument("--json", action="store_true")
    r = rsub.add_parser("rollback", help="move @champion back to VERSION (audited)")
    r.add_argument("version")
    r.add_argument("--reason", default="manual rollback")
    p.set_defaults(func=cmd_registry)

    p = sub.add_parser("sequester", help="the sequestered patients' lock: show or re-lock")
    qsub = p.add_subparsers(dest="sequester_command", required=True)
    q = qsub.add_parser("show", help="the lock and the patients per source, label and role")
    q.add_argument("--json", action="store_true")
    q = qsub.add_parser("relock", help="change the share (audited; reassigns every patient)")
    q.add_argument("--share", type=float, required=True, help="fraction in (0, 1), e.g. 0.2")
    q.add_argument("--reason", required=True, help="kept in the audit record")
    p.set_defaults(func=cmd_sequester)

    p = sub.add_parser(
        "check-conf", help="check a DAG run configuration (JSON) before starting a run"
    )
    p.add_argument("conf", help='JSON object, e.g. \'{"profile": "cpu-smoke"}\'; "-": stdin')
    p.set_defaults(func=cmd_check_conf)

    p = sub.add_parser("model-card", help="write the model card of a registered VERSION (HTML)")
    p.add_argument("version")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="file (default: runs/<run>/model_cards/vN/model_card.html in the lake)",
    )
    p.set_defaults(func=cmd_model_card)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``covidct`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], int] = args.func
    from covidct.config import SettingError, Settings

    try:  # every COVIDCT_* setting checked before any command does any work
        Settings.from_env(os.environ)
    except SettingError as error:
        print(f"covidct {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    try:
        return func(args)
    except (ValueError, OSError, KeyError) as error:
        print(f"covidct {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
