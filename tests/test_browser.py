"""report.html and compliance.html in a real headless Chromium (Playwright driving the system browser).

A real predictions audit whose group names are hostile markup, with a FairIJ and a FairReprogram entry
(after-audits of the same rows), rendered by `fairprompt report`; each page must load without console or
page errors, fetch nothing from the network, draw every figure with a non-zero box, show the hostile names
as text without running them, and leave a full-page PNG screenshot (also in $FAIRPROMPT_SCREENSHOT_DIR).

Chromium is never downloaded: the test finds it as `fairprompt report --pdf` does ($FAIRPROMPT_CHROMIUM, else
/usr/bin/chromium, else chromium / chromium-browser / google-chrome on PATH). Without one the tests skip
(tests/conftest.py prints a banner), except under CI=true, where they fail: .ci/run installs Debian's chromium.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from fairprompt.cli import cli
from fairprompt.errors import FairpromptError
from fairprompt.metrics import audit
from fairprompt.report.pdf import find_chromium
from fairprompt.results import dumps
from fairprompt.run_folder import MANIFEST_FILE
from report_factories import comparison_rows, fairij_entry, reprogram_entry

pytestmark = pytest.mark.slow  # a real headless Chromium (make check skips it)

SCRIPT = "<script>window.__pwned=1</script>"
ATTRIBUTE = '"><img src=x onerror="window.__pwned=2">'
HOSTILE = (SCRIPT, ATTRIBUTE)
INSTALL = "apt-get install chromium chromium-driver (as root), or set FAIRPROMPT_CHROMIUM=/path/to/chromium"
SCREENSHOT_ENV = "FAIRPROMPT_SCREENSHOT_DIR"


def _chromium() -> tuple[str | None, str]:
    """The Chromium to drive (the lookup of `fairprompt report --pdf`), or None and why there is none."""
    try:
        return find_chromium(), ""
    except FairpromptError as error:
        return None, str(error)


def _missing(reason: str) -> None:
    """Skip, or fail under CI=true (CI installs Chromium, so a missing one there is a broken set-up)."""
    message = f"headless Chromium unavailable: {reason}; install it: {INSTALL}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path, how = _chromium()
    if path is None:
        _missing(how)
    return path


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        _missing(f"Playwright for Python is not installed ({error}); `make install` installs the pinned lock")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                                    "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield chromium
        chromium.close()


def _frame(seed: int = 0, n: int = 480) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["north", "south", SCRIPT, ATTRIBUTE], n, p=[0.35, 0.35, 0.15, 0.15])
    sex = rng.choice(["F", "M"], n)
    outcome = rng.integers(0, 2, n)
    score = np.clip(rng.random(n) * 0.6 + 0.3 * outcome + 0.1 * (group == "north"), 0, 1)
    return pd.DataFrame({"outcome": np.where(outcome == 1, "yes", "no"), "score": score.round(4),
                         "decision": np.where(score > 0.5, "yes", "no"), "group": group, "sex": sex})


def _after(frame: pd.DataFrame, seed: int) -> dict:
    """A real after-audit of the same rows and groups: the predictions a repair might give."""
    rng = np.random.default_rng(seed)
    score = np.clip(frame["score"].to_numpy() + rng.normal(0, 0.08, len(frame)), 0, 1)
    return audit(y_true=(frame["outcome"] == "yes").astype(int).to_numpy(), y_pred=(score > 0.5).astype(int),
                 y_score=score, sensitive=frame[["group", "sex"]], n_boot=20, seed=seed).to_dict()


def _cli(*args: str) -> None:
    result = CliRunner().invoke(cli, ["--quiet", *args], obj={})
    assert result.exit_code == 0, (result.output, result.stderr, result.exception)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `fairprompt audit --predictions` run, then a FairIJ and a FairReprogram entry added and re-rendered."""
    root = tmp_path_factory.mktemp("browser")
    frame = _frame()
    frame.to_csv(root / "predictions.csv", index=False)
    out = root / "audit"
    with pytest.MonkeyPatch.context() as patch:  # relative paths, as a user types them (and as the screenshots show)
        patch.chdir(root)
        _cli("audit", "--predictions", "predictions.csv", "--label", "outcome", "--prediction", "decision",
             "--score", "score", "--positive-label", "yes", "--sensitive", "group,sex", "--reference", "group=north",
             "--n-boot", "20", "--name", "browser_check", "--out", "audit")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert {g["group"] for s in results["audit"]["slices"] if s["name"] == "group" for g in s["groups"]} >= set(HOSTILE)
    mitigations = []
    for seed, entry in ((1, fairij_entry(results)), (2, reprogram_entry(results, kind="border"))):
        entry = copy.deepcopy(entry)
        entry["after"] = _after(frame, seed)
        entry["comparison"] = comparison_rows(results["audit"], entry["after"])
        mitigations.append(entry)
    results["mitigations"] = mitigations
    (out / "results.json").write_text(dumps(results), encoding="utf-8")
    (out / MANIFEST_FILE).unlink()  # a results.json assembled by hand: no run's manifest vouches for it any more
    return out


def _render(report_dir: Path, page: str) -> Path:
    if page == "report":
        _cli("report", str(report_dir))
        return report_dir / "report.html"
    _cli("report", str(report_dir), "--format", "compliance")
    return report_dir / "compliance.html"


FIGURES = """() => [...document.querySelectorAll('svg, img, figure')]
  .filter(el => !(el.parentElement && el.parentElement.closest('svg')))
  .map(el => {
    const box = el.getBoundingClientRect();
    return {tag: el.tagName.toLowerCase(), id: el.id || (el.closest('[id]') || {}).id || '',
            width: box.width, height: box.height,
            decoded: el.tagName.toLowerCase() === 'img' ? (el.complete && el.naturalWidth > 0) : true};
  })"""


class Loaded:
    """A page opened offline, with what went wrong while it loaded."""

    def __init__(self, browser: Any, html: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.network: list[str] = []
        self.errors: list[str] = []
        self.context.route("**/*", self._offline)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: self.errors.append(f"console.{message.type}: {message.text}")
                     if message.type == "error" else None)
        self.page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        self.page.on("dialog", lambda dialog: (self.errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        self.page.on("requestfailed", lambda request: self.errors.append(f"requestfailed: {request.url}"))
        self.page.goto(html.as_uri(), wait_until="load")
        self.page.wait_for_load_state("networkidle")

    def _offline(self, route: Any) -> None:
        """Let the page itself (file:) and inlined data: through; record and block anything else."""
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.network.append(route.request.url)
            route.abort()


@pytest.mark.parametrize("page_name", ["report", "compliance"])
def test_page_in_headless_chromium(page_name: str, chromium_path: str, browser: Any, report_dir: Path, tmp_path: Path,
                                   record_property: Any) -> None:
    html = _render(report_dir, page_name)
    record_property("chromium", f"{chromium_path} {browser.version}")
    loaded = Loaded(browser, html)
    page = loaded.page
    assert loaded.errors == [], loaded.errors
    assert loaded.network == [], f"{page_name}.html fetched {loaded.network} (it must be self-contained)"
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], img[onerror]').length") == 0
    body = page.inner_text("body")
    for name in HOSTILE:
        assert name in body, f"{name!r} is not shown as text in {page_name}.html"
        matches = page.get_by_text(name, exact=False)
        assert any(matches.nth(i).is_visible() for i in range(matches.count())), f"{name!r} is not visible"

    figures = page.evaluate(FIGURES)
    empty = [f for f in figures if not (f["width"] > 0 and f["height"] > 0 and f["decoded"])]
    assert empty == [], f"figures not rendered in {page_name}.html: {empty}"
    if page_name == "report":  # matplotlib SVGs, and the reprogram border trigger as a PNG data URI
        assert {"svg", "img", "figure"} <= {f["tag"] for f in figures}, figures
        sections = ("mitigation-0", "mitigation-1")  # the FairIJ and FairReprogram before/after sections
    else:  # tables only: the before-repair tables and one set after each repair
        sections = ("verdict-table", "before", "after-0", "after-1")
        assert page.locator("#verdict-table thead th").count() == 4  # slice, before, after FairIJ, after FairReprogram
    for anchor in sections:
        assert page.locator(f"#{anchor}").is_visible(), f"#{anchor} is not shown in {page_name}.html"

    shot = tmp_path / f"{page_name}.png"
    page.screenshot(path=str(shot), full_page=True)
    height = page.evaluate("document.documentElement.scrollHeight")
    loaded.context.close()
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.width == 1280 and image.height >= min(height, 900)
        assert len(set(image.convert("L").getextrema())) == 2, "the screenshot is blank"
    if target := os.environ.get(SCREENSHOT_ENV):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(target) / shot.name)


def test_the_checks_catch_an_injection_and_a_broken_figure(browser: Any, tmp_path: Path) -> None:
    """The same checks on a page that does run the hostile names and has an empty figure and a broken image."""
    html = tmp_path / "bad.html"
    html.write_text(f"<!doctype html><title>bad</title><p>{SCRIPT}{ATTRIBUTE}</p><figure></figure>"
                    "<svg width='0' height='0'></svg><img src='data:image/png;base64,AAAA' alt='broken'>"
                    "<script>undefinedFunction()</script><img src='https://example.invalid/x.png'>", encoding="utf-8")
    loaded = Loaded(browser, html)
    assert loaded.page.evaluate("window.__pwned") in (1, 2)
    assert any(e.startswith("pageerror:") and "undefinedFunction" in e for e in loaded.errors), loaded.errors
    assert loaded.network == ["https://example.invalid/x.png"]
    figures = loaded.page.evaluate(FIGURES)
    assert {f["tag"] for f in figures if not (f["width"] > 0 and f["height"] > 0 and f["decoded"])} == {"figure", "svg", "img"}
    loaded.context.close()
