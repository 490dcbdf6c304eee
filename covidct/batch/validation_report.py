"""The validation report of one batch: the HTML summary page beside Great Expectations' data docs,
and the one-paragraph text verdict ``covidct validate`` prints.
"""

from __future__ import annotations

import json
from pathlib import Path

from covidct.batch.checks import (
    REASON_EXAMPLES,
    BatchVerdict,
)

# ------------------------------------------------------------------------------- reporting


def write_report(verdict: BatchVerdict, report_dir: Path, docs_index: Path | None) -> BatchVerdict:
    """Write ``validation.json`` and ``index.html`` into ``report_dir``; return the verdict
    with ``report_paths`` set (including the Data Docs index when built)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = [report_dir / "validation.json", report_dir / "index.html"]
    if docs_index is not None:
        paths.append(docs_index)
    verdict = _replace_paths(verdict, tuple(str(p) for p in paths))
    paths[0].write_text(json.dumps(verdict.to_dict(), indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(summary_html(verdict, docs_index, report_dir), encoding="utf-8")
    return verdict


def _replace_paths(verdict: BatchVerdict, paths: tuple[str, ...]) -> BatchVerdict:
    from dataclasses import replace

    return replace(verdict, report_paths=paths)


def summary_html(verdict: BatchVerdict, docs_index: Path | None, report_dir: Path) -> str:
    """Return a self-contained HTML page (template ``validation.html`` on the reports' base
    layout, :mod:`covidct.templating`, autoescaped): verdict, the policy as a table,
    failures table, link to the Data Docs."""
    from covidct.templating import render, table

    failures = [
        [f.check.value, f.table.value, f.description, f.count,
         "; ".join(f.examples[:20]) + (" ..." if f.count > 20 else "")]
        for f in verdict.failures
    ]  # fmt: skip
    policy = verdict.policy.to_dict()
    policy_rows = [
        ("largest excludable share of slices", f"{100 * policy['max_excluded_fraction']:.1f}%"),
        ("checks whose failing slices may be excluded", ", ".join(policy["excludable"]) or "none"),
        ("largest stored value", policy["max_stored_value"]),
        ("smallest maximum value (8-bit data below it)", policy["min_max_value"]),
        ("slice shape (pixels)", " x ".join(str(n) for n in policy["slice_shape"])),
    ]
    header = ["check", "table", "what", "count", "files / patients"]
    return str(
        render(
            "validation.html",
            title=f"covidct validation: {verdict.batch_id}",
            verdict=verdict,
            docs=docs_index.relative_to(report_dir).as_posix() if docs_index else None,
            policy=table(["policy", "value"], policy_rows, table_class="text"),
            failures=table(header, failures, table_class="text") if failures else None,
        )
    )


def format_verdict(verdict: BatchVerdict) -> str:
    """Return the verdict as plain text for a terminal (one reason per line)."""
    status = "PASSED" if verdict.passed else "FAILED"
    lines = [
        f"batch {verdict.batch_id}: {status} ({verdict.n_slices} slices, "
        f"{verdict.n_patients} patients, source {verdict.source})"
    ]
    lines += [f"  - {reason}" for reason in verdict.reasons]
    if verdict.excluded_slices:
        lines.append(
            f"  excluded by policy: {len(verdict.excluded_slices)} slices "
            f"({', '.join(verdict.excluded_slices[:REASON_EXAMPLES])}"
            f"{' ...' if len(verdict.excluded_slices) > REASON_EXAMPLES else ''})"
        )
    lines += [f"  report: {path}" for path in verdict.report_paths]
    return "\n".join(lines)
