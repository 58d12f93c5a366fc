"""Shared pytest hooks: say loudly at the end of a run whether the browser tests ran (tests/test_browser.py)."""

from __future__ import annotations

from typing import Any

BROWSER_TESTS = "tests/test_browser.py"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A banner when the headless-Chromium tests were skipped, one line saying where they ran otherwise."""
    def mine(key: str) -> list[Any]:
        return [r for r in terminalreporter.stats.get(key, [])
                if BROWSER_TESTS in getattr(r, "nodeid", "") and getattr(r, "when", "call") in ("setup", "call")]

    skipped, passed = mine("skipped"), mine("passed")
    if skipped:
        reasons = sorted({str(r.longrepr[2] if isinstance(r.longrepr, tuple) else r.longrepr).removeprefix("Skipped: ") for r in skipped})
        terminalreporter.write_sep("!", f"SKIPPED: {len(skipped)} browser tests ({BROWSER_TESTS})", red=True, bold=True)
        for reason in reasons:
            terminalreporter.write_line(f"SKIPPED browser tests: {reason}", red=True, bold=True)
        terminalreporter.write_line("report.html and compliance.html were NOT checked in a real browser. To run them, "
                                    "install Chromium: apt-get install chromium chromium-driver (as root), "
                                    "or set FAIRPROMPT_CHROMIUM=/path/to/chromium", red=True, bold=True)
        terminalreporter.write_sep("!", red=True, bold=True)
    elif passed:
        where = sorted({value for r in passed for key, value in r.user_properties if key == "chromium"})
        terminalreporter.write_line(f"browser tests: {len(passed)} passed in headless Chromium ({', '.join(where) or '?'})",
                                    green=True)
