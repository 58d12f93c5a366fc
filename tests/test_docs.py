"""The documentation: the mkdocs site builds with --strict (every page, link and anchor), and the README stays short
with working links."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MKDOCS_YML = ROOT / "mkdocs.yml"
README_MAX_BYTES = 15 * 1024

# [text](target) or ![alt](target "title"); the target has no spaces.
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def nav_pages(nav: list) -> list[str]:
    """Every Markdown file named in mkdocs.yml's nav, in order."""
    pages: list[str] = []
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                pages.extend(nav_pages(value))
            elif isinstance(value, str) and value.endswith(".md"):
                pages.append(value)
    return pages


def built_page(site: Path, page: str) -> Path:
    """Where mkdocs writes a page with directory URLs: a.md -> a/index.html, b/index.md -> b/index.html."""
    stem = page.removesuffix(".md")
    if stem == "index" or stem.endswith("/index"):
        return site / f"{stem}.html"
    return site / stem / "index.html"


def mkdocs_command() -> list[str]:
    beside = Path(sys.executable).parent / "mkdocs"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "mkdocs"]


def slug(heading: str) -> str:
    """Python-Markdown's toc slug of a heading (inline code marks dropped)."""
    text = unicodedata.normalize("NFKD", heading.replace("`", "")).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def headings(markdown: str) -> set[str]:
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.DOTALL | re.MULTILINE)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)}


def test_site_builds_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("material") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("mkdocs-material is not installed (it is pinned in requirements.lock; pip install -e '.[docs]')")
        pytest.skip("mkdocs-material is not installed (pinned in requirements.lock; pip install -e '.[docs]')")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([*mkdocs_command(), "build", "--strict", "--config-file", str(MKDOCS_YML), "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (site / "index.html").is_file()
    config = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))
    pages = nav_pages(config["nav"])
    assert pages, "mkdocs.yml has no nav"
    missing = [page for page in pages if not built_page(site, page).is_file()]
    assert not missing, f"nav pages not built: {missing}"
    # Every Markdown page under docs/ is in the nav (mkdocs only reports the others at INFO level).
    docs = ROOT / config.get("docs_dir", "docs")
    unlisted = sorted(str(p.relative_to(docs)) for p in docs.rglob("*.md") if str(p.relative_to(docs)) not in pages)
    assert not unlisted, f"docs pages missing from mkdocs.yml's nav: {unlisted}"


def test_readme_is_short() -> None:
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes, over {README_MAX_BYTES}: move detail into docs/"


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(text)
               if not re.match(r"^[a-z][a-z0-9+.-]*:", t, flags=re.IGNORECASE) and not t.startswith("#")]
    assert targets, "README.md has no relative links (expected the screenshot and the docs pages)"
    broken = []
    for target in targets:
        path, _, anchor = target.partition("#")
        file = (README.parent / path).resolve()
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in headings(file.read_text(encoding="utf-8")):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"README.md links that do not resolve: {broken}"
