"""Render the published site in headless Chromium and report what a reader sees.

Used by the browser test and by ``make site-check`` (which also saves a screenshot for a person
to look at). Chromium comes from Debian (``/usr/bin/chromium``); Playwright only drives it.

    python -m meta.publish.browser site/index.html site-check.png
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass(frozen=True)
class PageView:
    """What the page showed: every image with whether it rendered, and the summary rows."""

    images: tuple[tuple[str, bool], ...]
    summary_rows: int
    summary_text: str
    analyses: int


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def view_site(index: Path, screenshot: Path | None = None) -> PageView:
    """Open ``index`` in headless Chromium; optionally save a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError("Chromium is not installed; run `make browser` (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(Path(index).resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth > 0])")
        rows = page.eval_on_selector_all("table.summary tbody tr", "els => els.length")
        text = page.inner_text("table.summary")
        analyses = page.eval_on_selector_all("article.analysis", "els => els.length")
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return PageView(tuple((src, bool(ok)) for src, ok in images), rows, text, analyses)


if __name__ == "__main__":
    index = Path(sys.argv[1] if len(sys.argv) > 1 else "site/index.html")
    shot = Path(sys.argv[2] if len(sys.argv) > 2 else "site-check.png")
    view = view_site(index, shot)
    broken = [src for src, ok in view.images if not ok]
    print(f"{len(view.images)} images ({len(broken)} not shown), {view.summary_rows} summary rows, "
          f"{view.analyses} analyses; screenshot: {shot}")
    sys.exit(1 if broken or view.summary_rows == 0 else 0)
