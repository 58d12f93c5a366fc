"""Print a rendered HTML page (report.html, compliance.html) to PDF with headless Chromium.

>>> write_pdf("reports/adult/compliance.html", "reports/adult/compliance.pdf")

Chromium is looked up in ``$FAIRPROMPT_CHROMIUM``, then ``/usr/bin/chromium`` (Debian's package), then
``chromium``, ``chromium-browser`` and ``google-chrome`` on ``PATH``.  The PDF is printed into a temporary
file beside the target and renamed over it only when Chromium succeeded, so a failure never leaves a
half-written PDF.  The page's own ``@media print`` stylesheet decides the layout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from fairprompt.atomic import write_bytes
from fairprompt.errors import FairpromptError

CHROMIUM_ENV = "FAIRPROMPT_CHROMIUM"
DEBIAN_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 120.0


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_chromium() -> str:
    """The Chromium to print with; a :class:`FairpromptError` naming what was searched when there is none."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        found = configured if _executable(configured) else shutil.which(configured)
        if not found:
            raise FairpromptError(f"${CHROMIUM_ENV}={configured!r} is not an executable file; point it at a Chromium "
                                  f"or Chrome binary, or unset it to search {DEBIAN_CHROMIUM} and PATH")
        return found
    if _executable(DEBIAN_CHROMIUM):
        return DEBIAN_CHROMIUM
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise FairpromptError(f"--pdf needs headless Chromium and none was found (searched ${CHROMIUM_ENV}, {DEBIAN_CHROMIUM}, "
                          f"and {', '.join(CHROMIUM_NAMES)} on PATH); install it (apt-get install chromium) or set "
                          f"{CHROMIUM_ENV} to its path")


def _run(command: list[str], *, timeout: float, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run Chromium in its own process group, so that a timeout ends its renderer and helper processes too.
    (``--no-sandbox``: the pages printed are fairprompt's own, with every user string escaped and no scripts.)"""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"


def write_pdf(html_path: str | os.PathLike[str], pdf_path: str | os.PathLike[str], *, chromium: str | None = None,
              timeout: float = TIMEOUT_S) -> Path:
    """Print ``html_path`` to ``pdf_path`` (atomically) with headless Chromium; return the PDF's path.

    ``chromium`` overrides the search of :func:`find_chromium`.  Raises :class:`FairpromptError` (one line)
    when Chromium is missing, fails, times out, or writes no PDF; ``pdf_path`` is then left as it was.
    """
    source = Path(html_path)
    if not source.is_file():
        raise FairpromptError(f"{source} does not exist; render it first (fairprompt report DIR)")
    binary = chromium or find_chromium()
    target = Path(pdf_path)
    with tempfile.TemporaryDirectory(prefix="fairprompt-chromium-") as profile:
        printed = Path(profile) / "printed.pdf"
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                   "--no-pdf-header-footer", "--print-to-pdf-no-header", f"--user-data-dir={profile}",
                   f"--print-to-pdf={printed}", source.resolve().as_uri()]
        try:
            proc = _run(command, timeout=timeout, env={**os.environ, "HOME": profile})
        except subprocess.TimeoutExpired:
            raise FairpromptError(f"{binary} did not finish printing {source} to PDF within {timeout:g} s; "
                                  f"try again, or open the HTML and print it from a browser") from None
        except OSError as exc:
            raise FairpromptError(f"could not run {binary} to print {source} ({exc}); check {CHROMIUM_ENV} "
                                  f"or install Chromium (apt-get install chromium)") from None
        data = printed.read_bytes() if printed.is_file() else b""
    if proc.returncode != 0 or not data.startswith(b"%PDF-"):
        why = f"exit status {proc.returncode}" if proc.returncode != 0 else "no PDF written"
        raise FairpromptError(f"{binary} failed to print {source} to PDF ({why}: {_last_line(proc.stderr)}); "
                              f"{target} was not written")
    return write_bytes(target, data)
