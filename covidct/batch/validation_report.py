"""The validation report of one batch: the HTML summary page beside Great Expectations' data docs,
and the one-paragraph text verdict ``covidct validate`` prints.
"""

from __future__ import annotations

import html
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
    """Return a self-contained HTML page: verdict, failures table, link to the Data Docs."""
    status = "PASSED" if verdict.passed else "FAILED"
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                f.check.value,
                f.table.value,
                f.description,
                f.count,
                "; ".join(f.examples[:20]) + (" ..." if f.count > 20 else ""),
            )
        )
        + "</tr>"
        for f in verdict.failures
    )
    docs = (
        (
            f'<p><a href="{docs_index.relative_to(report_dir).as_posix()}">Great Expectations '
            f"Data Docs (every expectation, observed values)</a></p>"
        )
        if docs_index
        else ""
    )
    excluded = (
        ("<p>Excluded by policy: " + html.escape(", ".join(verdict.excluded_slices)) + "</p>")
        if verdict.excluded_slices
        else ""
    )
    return _PAGE.format(
        batch=html.escape(verdict.batch_id),
        status=status,
        color="#1a7f37" if verdict.passed else "#cf222e",
        n_slices=verdict.n_slices,
        n_patients=verdict.n_patients,
        source=html.escape(verdict.source),
        rows=rows or '<tr><td colspan="5">none</td></tr>',
        docs=docs,
        excluded=excluded,
        policy=html.escape(json.dumps(verdict.policy.to_dict())),
    )


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>covidct validation: {batch}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}}</style>
</head><body>
<h1>Batch {batch}: <span style="color:{color}">{status}</span></h1>
<p>{n_slices} slices, {n_patients} patients with images, source <code>{source}</code>.</p>
<p>Policy: <code>{policy}</code></p>{excluded}{docs}
<h2>Failed checks</h2>
<table><tr><th>check</th><th>table</th><th>what</th><th>count</th><th>files / patients</th></tr>
{rows}</table>
</body></html>
"""


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
