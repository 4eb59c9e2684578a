"""The published site in a real headless browser (Debian's Chromium): the table and every plot show."""

import csv
import json

import pytest

from meta.publish.browser import chromium_path, view_site

from .test_run import project  # noqa: F401  (the module fixture: a copy of the evidence, run once)


def test_site_shows_table_and_every_plot(project, tmp_path):  # noqa: F811
    if chromium_path() is None:
        pytest.fail("Chromium is missing: `make test` installs it (make browser)")
    shot = tmp_path / "site.png"
    view = view_site(project / "site/index.html", shot)
    summary = list(csv.DictReader((project / "analyses/output/summary.csv").open()))
    assert view.summary_rows == len(summary)
    assert view.analyses == len(summary)
    expected = {f"plots/{r['analysis']}-{plot}.png" for r in summary for plot in ("forest", "cumulative", "funnel")
                if not r["analysis"].startswith("dose-")}
    expected |= {f"plots/{r['analysis']}-curve.png" for r in summary if r["analysis"].startswith("dose-")}
    expected |= {f"plots/{r['analysis']}-sequential.png" for r in summary
                 if json.loads((project / "analyses/output" / r["analysis"] / "analysis.json").read_text())["tsa"]}
    assert {src for src, _ in view.images} == expected
    assert all(shown for _, shown in view.images), [src for src, ok in view.images if not ok]
    for r in summary:
        assert r["Outcome"] in view.summary_text
    assert shot.stat().st_size > 10_000
