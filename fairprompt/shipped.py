"""The task prompts shipped with fairprompt, and how ``make artifacts`` rebuilds and checks them.

The embedded specs in ``audits/`` that tune a task prompt ship the trained
prompt (a few KB of safetensors + JSON) in ``fairprompt/artifacts/task_prompts/KEY``,
where KEY is the same cache key a fresh run computes (see
:mod:`fairprompt.models.adapt`), so ``make demo`` and the tests start from the
deployed model instead of spending minutes of CPU on training.  Each shipped
prompt carries ``shipped.json``: the spec it came from and its test metrics.

``python -m fairprompt.shipped build`` retrains every such prompt from its
seed (ignoring all caches) and replaces the shipped copy;
``python -m fairprompt.shipped check`` retrains into a scratch cache and
confirms that the regenerated prompt reproduces the shipped one's test
accuracy, AUC and demographic parity difference (to ``--tolerance``, default
0.005; on the machine that built them they agree exactly).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from fairprompt.atomic import write_text
from fairprompt.models.adapt import SHIPPED

SHIPPED_FILE = "shipped.json"
COMPARED = ("test_accuracy", "test_auc", "demographic_parity_difference")


def prompt_specs(audits: Path) -> list[Path]:
    """The specs in ``audits`` whose model tunes a task prompt, one per prompt: a spec that tunes the same prompt
    as an earlier one (same task-prompt key, e.g. the audit with a mitigation added) is left out."""
    from fairprompt.spec import load_spec
    from fairprompt.tasks import load_task

    found, keys = [], set()
    for path in sorted(audits.glob("*.yaml")):
        spec = load_spec(path)
        if spec.model is not None and spec.model.kind == "frozen_text" and spec.model.task_prompt != "none":
            key = load_task(spec).task_prompt_key()
            if key not in keys:
                keys.add(key)
                found.append(path)
    return found


def _metrics(results: dict[str, Any]) -> dict[str, float | None]:
    model = results["model"]
    dp = None
    first = results["data"]["sensitive"][0]
    for sl in results["audit"]["slices"]:
        if sl["name"] == first:
            for row in sl["disparities"]:
                if row["metric"] == "demographic_parity_difference" and row["convention"] == "between_groups":
                    dp = row["value"]
    return {"test_accuracy": model["test_accuracy"], "test_auc": model["test_auc"], "demographic_parity_difference": dp}


def _run(spec_path: Path, cache: Path) -> dict[str, Any]:
    """Run a spec with an empty scratch cache (so the prompt is trained) and return its results."""
    from fairprompt import pipeline
    from fairprompt.spec import load_spec

    os.environ["FAIRPROMPT_CACHE"] = str(cache)
    with tempfile.TemporaryDirectory() as out:
        spec = load_spec(spec_path)
        return pipeline.run(spec, out_dir=out, command=["python", "-m", "fairprompt.shipped"], use_cache=True,
                            use_shipped=False).results


def ship(results: dict[str, Any], spec_name: str) -> Path:
    """Copy the freshly trained prompt of a run's results into the shipped folder (replacing the spec's old one)."""
    record = results["model"]["training"]
    if record.get("source") != "trained in this run" or not record.get("path"):
        raise RuntimeError(f"{spec_name}: only a prompt trained from its seed can be shipped, "
                           f"not one from {record.get('source')}")
    key = record["cache_key"]
    SHIPPED.mkdir(parents=True, exist_ok=True)
    for stale in SHIPPED.iterdir():
        if stale.is_dir() and (stale / SHIPPED_FILE).is_file():
            if json.loads((stale / SHIPPED_FILE).read_text())["spec"] == spec_name:
                shutil.rmtree(stale)
    target = SHIPPED / key
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(Path(record["path"]), target)
    write_text(target / SHIPPED_FILE, json.dumps({"spec": spec_name, **_metrics(results)}, indent=2) + "\n")
    return target


def build(audits: Path, *, only: list[str] | None = None) -> list[Path]:
    """Retrain every shipped task prompt (or those named in ``only``) from its seed and replace the shipped copies."""
    written = []
    for spec_path in prompt_specs(audits):
        if only and spec_path.stem not in only:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            results = _run(spec_path, Path(scratch))
            target = ship(results, spec_path.name)
        written.append(target)
        print(f"{spec_path}: shipped {target}")
    return written


def check(audits: Path, *, tolerance: float = 0.005, only: list[str] | None = None) -> bool:
    """Retrain every shipped prompt (or those of the specs named in ``only``) in a scratch cache; compare test metrics."""
    ok = True
    shipped = {json.loads((d / SHIPPED_FILE).read_text())["spec"]: d for d in SHIPPED.iterdir() if (d / SHIPPED_FILE).is_file()}
    for spec_path in prompt_specs(audits):
        if only and spec_path.stem not in only:
            continue
        if spec_path.name not in shipped:
            print(f"{spec_path}: no shipped prompt (run make artifacts)")
            ok = False
            continue
        expected = json.loads((shipped[spec_path.name] / SHIPPED_FILE).read_text())
        with tempfile.TemporaryDirectory() as scratch:
            results = _run(spec_path, Path(scratch))
        got = _metrics(results)
        key = results["model"]["training"]["cache_key"]
        if key != shipped[spec_path.name].name:
            print(f"{spec_path}: the spec's cache key {key[:12]} differs from the shipped prompt's "
                  f"{shipped[spec_path.name].name[:12]} "
                  "(spec, data, backbone or versions changed); run make artifacts")
            ok = False
        for name in COMPARED:
            a, b = expected.get(name), got.get(name)
            same = (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tolerance)
            print(f"{spec_path}: {name} shipped {a} regenerated {b} {'ok' if same else 'MISMATCH'}")
            ok &= same
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fairprompt.shipped", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("build", "check"))
    parser.add_argument("--audits", type=Path, default=Path("audits"))
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--only", nargs="*", metavar="SPEC", help="spec names (file stems) to build or check; default all")
    args = parser.parse_args(argv)
    if args.command == "build":
        SHIPPED.mkdir(parents=True, exist_ok=True)
        build(args.audits, only=args.only)
        return 0
    return 0 if check(args.audits, tolerance=args.tolerance, only=args.only) else 1


if __name__ == "__main__":
    sys.exit(main())
