"""Headless Chromium for the browser tests: the operating system's package, driven by Playwright.

Playwright's own browser download is not used (the tests must not download anything): the
browser is Debian's ``chromium`` package, which ``infra/ensure-chromium.sh`` installs when
``make test`` runs as root (as CI does). Without it the browser tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

#: Width of the viewport the pages must fit (a laptop screen).
VIEWPORT = {"width": 1400, "height": 1000}


def chromium_path() -> str | None:
    """The system Chromium (``COVIDCT_CHROMIUM`` first), None when not installed."""
    for candidate in (os.environ.get("COVIDCT_CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def skip_reason() -> str:
    """Why the browser tests cannot run here."""
    how = (
        "`make test` installs it when run as root"
        if os.geteuid() != 0
        else "`apt-get install -y chromium` failed or was not run"
    )
    return f"no Chromium installed (Debian package 'chromium'; {how}): browser tests skipped"


requires_chromium = pytest.mark.skipif(chromium_path() is None, reason=skip_reason())


@contextmanager
def browser_page() -> Iterator[Any]:
    """A Playwright page of a headless system Chromium at :data:`VIEWPORT`; closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        pytest.skip(skip_reason())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def page_facts(page: Any) -> dict[str, Any]:
    """What the layout checks need: page width and every image's decoded size and source."""
    return page.evaluate(
        """() => ({
            scrollWidth: document.documentElement.scrollWidth,
            images: [...document.images].map(img => ({
                src: img.getAttribute('src'), complete: img.complete,
                naturalWidth: img.naturalWidth, width: img.getBoundingClientRect().width,
                right: img.getBoundingClientRect().right})),
        })"""
    )


def offline(page: Any) -> list[str]:
    """Route every request of ``page``: ``file:`` and ``data:`` URLs go through, anything else
    is aborted. Returns the list that the URL of every other request is appended to (routed or
    merely seen), so a test asserts it stays empty: the page asked nothing of the network."""
    network: list[str] = []
    local = ("file:", "data:")

    def handle(route: Any) -> None:
        if route.request.url.startswith(local):
            route.continue_()
        else:
            network.append(route.request.url)
            route.abort()

    page.route("**/*", handle)
    page.on("request", lambda r: None if r.url.startswith(local) else network.append(r.url))
    return network
