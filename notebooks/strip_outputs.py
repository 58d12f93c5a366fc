"""Strip outputs, execution counts and run metadata from notebooks, so that they are committed clean.

    .venv/bin/python notebooks/strip_outputs.py                 # every notebooks/*.ipynb, in place
    .venv/bin/python notebooks/strip_outputs.py a.ipynb b.ipynb # these
    .venv/bin/python notebooks/strip_outputs.py --check         # change nothing; exit 1 naming any unclean notebook

tests/test_notebooks.py fails while a committed notebook has outputs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
RUN_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")


def is_clean(nb: nbformat.NotebookNode) -> bool:
    """True when no code cell has outputs, an execution count or run metadata."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs") or cell.get("execution_count") is not None or any(k in cell.metadata for k in RUN_METADATA):
            return False
    return True


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Remove outputs, execution counts and run metadata, in place; returns ``nb``."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in RUN_METADATA:
            cell.metadata.pop(key, None)
    nb.metadata.pop("widgets", None)
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook has outputs")
    args = parser.parse_args(argv)
    paths = args.paths or sorted(HERE.glob("*.ipynb"))
    unclean = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if is_clean(nb):
            continue
        unclean.append(path)
        if not args.check:
            nbformat.write(strip(nb), path)
            print(f"stripped {path}")
    if args.check and unclean:
        for path in unclean:
            print(f"{path} has outputs; run: .venv/bin/python notebooks/strip_outputs.py {path}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
