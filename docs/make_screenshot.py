"""Screenshot the first screen of a report for README (docs/images/report_first_screen.png).

    .venv/bin/python docs/make_screenshot.py reports/adult_income/report.html docs/images/report_first_screen.png

Uses the system's headless Chromium through Playwright, found as ``fairprompt report --pdf`` finds it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

from fairprompt.report.pdf import find_chromium


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1250)
    args = parser.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(find_chromium()), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(args.page.resolve().as_uri())
        args.png.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.png))
        browser.close()
    print(args.png)


if __name__ == "__main__":
    main()
