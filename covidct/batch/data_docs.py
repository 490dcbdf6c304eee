"""Great Expectations Data Docs that are safe to open and render offline (issue 32 item 3).

GE 1.x renders the values of a validation result (unexpected values, the index column naming
the failing rows, observed values, exception messages) into its HTML pages without escaping
them, and its pages load jQuery, Bootstrap, bootstrap-table, Vega and Font Awesome from CDNs;
the index page's table is filled by bootstrap-table from inline data, so offline it is empty.
Batch validation writes these pages beside its report and the lake keeps a copy of them in the
quarantine area, so a folder named ``<img src=x onerror=...>`` or a ``Patient_details.csv`` id
holding a script would run in the browser of whoever opens them.

Two layers, both applied by :meth:`covidct.batch.expectations.ExpectationRunner.build_docs`:

1. **Escaped at the source.** Before GE renders, every string of every stored validation
   result that can carry input (``result``, ``exception_info``, the result's and the suite
   result's ``meta``) is HTML-escaped (:func:`escape_markup`, ``html.escape`` with quotes), so
   markup from the batch shows as text.
2. **Inert and offline pages.** After GE writes them, every page loses all ``<script>``
   elements, all ``<link>`` elements (CDN stylesheets, icons), every ``on...=`` event
   attribute and every remote image or CSS ``url()`` (GE's logo), and gets, first in its
   ``<head>``, a Content-Security-Policy that forbids scripts
   and every network or file load (:data:`DOCS_CSP`) and one inline stylesheet
   (:data:`OFFLINE_STYLE`; GE's pages keep their own inline ``<style>`` blocks). The index page is
   rewritten as a static table of the validation and suite pages, each with its status, so it
   is complete without JavaScript (:func:`write_static_index`).

Sources: GE 1.x ``great_expectations/render/view/templates`` (the CDN references and the
bootstrap-table index); CSP Level 3 (``<meta http-equiv>`` policies apply to what follows).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: The policy every Data Docs page carries: nothing may run or load; inline styles only.
DOCS_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "font-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'"
)
#: The small stylesheet that replaces Bootstrap (tables, headings, status colours).
OFFLINE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #c8c8c8; padding: 0.25rem 0.5rem; text-align: left;
  vertical-align: top; }
th { background: #f0f0f0; }
.show-scrollbars { max-height: 20rem; overflow: auto; }
.text-danger, .failed { color: #b00020; } .text-success, .passed { color: #1b6e20; }
.collapse { display: block; } nav, .navbar { margin-bottom: 1rem; }
"""
#: Elements that leave every page, applied until nothing changes (``<scr<script></script>ipt>``
#: is a script again after one pass): script elements, a script start tag left unclosed,
#: ``<link>`` and ``<meta http-equiv>`` (a refresh navigates) elements.
_ELEMENTS = (
    re.compile(r"<script\b[^>]*>.*?</script\s*>", re.IGNORECASE | re.DOTALL),
    re.compile(r"</?script\b[^>]*>?", re.IGNORECASE),
    re.compile(r"<link\b[^>]*>?", re.IGNORECASE),
    re.compile(r"<meta\b[^>]*http-equiv[^>]*>?", re.IGNORECASE),
)
#: Inside every tag: event attributes (after a blank or ``/``: ``<img/onerror=...>``) and the
#: attributes that load a URL of another host (GE's pages fetch their logo from a web-assets
#: bucket, with the build time in the query).
_ATTRIBUTES = (
    re.compile(r"""[\s/]on[a-z]+\s*=\s*("[^"]*"|'[^']*'|[^\s>]*)""", re.IGNORECASE),
    re.compile(
        r"""[\s/](src|srcset|poster|data|background|action|formaction|xlink:href)\s*=\s*"""
        r"""("\s*(https?:)?//[^"]*"|'\s*(https?:)?//[^']*'|(https?:)?//[^\s>]*)""",
        re.IGNORECASE,
    ),
)
#: In style sheets and style attributes: a CSS ``url()`` of another host.
_REMOTE_URL = re.compile(r"""url\(\s*['"]?\s*(https?:)?//[^)]*\)""", re.IGNORECASE)
_TAG = re.compile(r"<[A-Za-z][^>]*>?")
_STYLE = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.IGNORECASE | re.DOTALL)
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)


def escape_markup(value: Any) -> Any:
    """``value`` with every string inside it (keys and values of mappings, items of lists and
    tuples, nested) HTML-escaped (``&``, ``<``, ``>``, ``"``, ``'``); other values unchanged."""
    if isinstance(value, str):
        return html.escape(value, quote=True)
    if isinstance(value, Mapping):
        return {escape_markup(k): escape_markup(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(escape_markup(item) for item in value)
    return value


def escape_stored_results(store: Any) -> dict[str, bool]:
    """HTML-escape the input-bearing fields of every validation result in GE's
    ``ValidationResultsStore`` ``store`` (layer 1 of the module docstring), in place.

    Returns suite name -> success of each stored suite result (for the static index)."""
    success: dict[str, bool] = {}
    for key in store.list_keys():
        suite_result = store.get(key)
        for result in suite_result.results:
            result.result = escape_markup(dict(result.result or {}))
            if result.exception_info:
                result.exception_info = escape_markup(dict(result.exception_info))
            if result.meta:
                result.meta = escape_markup(dict(result.meta))
        suite_result.meta = escape_markup(dict(suite_result.meta or {}))
        store.set(key, suite_result)
        success[str(suite_result.suite_name)] = bool(suite_result.success)
    return success


def _clean_tag(match: re.Match[str]) -> str:
    tag = match[0]
    for pattern in _ATTRIBUTES:
        tag = pattern.sub("", tag)
    return _REMOTE_URL.sub("none", tag)


def inert_page(text: str, style: str) -> str:
    """The HTML page ``text`` without scripts, ``<link>`` or ``<meta http-equiv>`` elements or
    event attributes, with :data:`DOCS_CSP` and the stylesheet ``style`` first in its head
    (layer 2). Even raw markup in ``text`` (layer 1 missed it) runs nothing: what the patterns
    miss, the policy forbids."""
    before = None
    while before != text:
        before = text
        for pattern in _ELEMENTS:
            text = pattern.sub("", text)
        text = _TAG.sub(_clean_tag, text)
        text = _STYLE.sub(lambda m: m[1] + _REMOTE_URL.sub("none", m[2]) + m[3], text)
    head = (
        f'<meta http-equiv="Content-Security-Policy" content="{DOCS_CSP}">\n'
        f"<style>{style}</style>\n"
    )
    match = _HEAD.search(text)
    if match is None:
        return f"<!DOCTYPE html>\n<html><head>{head}</head><body>{text}</body></html>\n"
    return text[: match.end()] + "\n" + head + text[match.end() :]


def _pages(docs_dir: Path, folder: str) -> list[Path]:
    return sorted((docs_dir / folder).rglob("*.html")) if (docs_dir / folder).is_dir() else []


def _rows(pages: Iterable[Path], docs_dir: Path, success: Mapping[str, bool]) -> str:
    rows = []
    for page in pages:
        relative = page.relative_to(docs_dir)
        suite = relative.parts[1] if relative.parts[0] == "validations" else page.stem
        run = relative.parts[3] if len(relative.parts) > 4 else ""
        passed = success.get(suite)
        status = "" if passed is None else ("passed" if passed else "failed")
        rows.append(
            f'<tr><td><a href="{html.escape(relative.as_posix())}">{html.escape(suite)}</a>'
            f'</td><td>{html.escape(run)}</td><td class="{status}">{status}</td></tr>'
        )
    return "\n".join(rows)


def write_static_index(docs_dir: Path, success: Mapping[str, bool], style: str) -> Path:
    """Write ``docs_dir/index.html``: a script-free table linking every validation page (suite,
    run time, passed/failed from ``success``) and every expectation suite page."""
    head = "<tr><th>Suite</th><th>Run</th><th>Status</th></tr>"
    validations = _rows(_pages(docs_dir, "validations"), docs_dir, success)
    suites = _rows(_pages(docs_dir, "expectations"), docs_dir, {})
    text = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>Data documentation compiled by Great Expectations</title></head><body>\n"
        "<h1>Batch validation: Great Expectations Data Docs</h1>\n"
        f"<h2>Validation results</h2>\n<table>{head}\n{validations}</table>\n"
        f"<h2>Expectation suites</h2>\n<table>{head}\n{suites}</table>\n</body></html>\n"
    )
    index = docs_dir / "index.html"
    index.write_text(inert_page(text, style), encoding="utf-8")
    return index


def make_offline(docs_dir: Path, success: Mapping[str, bool]) -> Path:
    """Make every page under ``docs_dir`` inert and offline (:func:`inert_page`, with
    :data:`OFFLINE_STYLE`) and rewrite its index (:func:`write_static_index`); returns the
    index."""
    style = OFFLINE_STYLE
    for page in _pages(docs_dir, "validations") + _pages(docs_dir, "expectations"):
        page.write_text(inert_page(page.read_text(encoding="utf-8"), style), encoding="utf-8")
    return write_static_index(docs_dir, success, style)
