"""The repairs shipped with fairprompt, and how ``make repair-artifacts`` rebuilds and checks them.

The embedded specs in ``audits/`` named in the Makefile's ``REPAIR_ARTIFACTS`` ship each of their finished
repairs (FairIJ, FairReprogram: the whole grid, safetensors + JSON) in ``fairprompt/artifacts/repairs/KEY``,
where KEY is the key a run of the spec computes (:func:`fairprompt.mitigation.shipped.repair_key`), so
``make demo`` loads them instead of training them; its report says so.  Each carries ``shipped.json``: the
spec and the repair it came from, how, where and when it was trained, and its test metrics (accuracy,
demographic parity and equalized odds differences by the repaired group, at the chosen point).

``python -m fairprompt.shipped_repairs build --only adult_income`` trains the spec's repairs from their seeds on
the shipped task prompt (never loading a shipped repair; the task prompt must already be shipped: ``make
artifact-NAME``) and replaces that spec's shipped copies; ``check`` trains them again in scratch and confirms the
key and the test metrics (to ``--tolerance``, default 0.005).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.shipped import FORMAT, FORMAT_VERSION, MANIFEST, read_json, repair_key, repairs_root, write_json

COMPARED = ("test_accuracy", "demographic_parity_difference", "equalized_odds_difference")
COMMAND = ["python", "-m", "fairprompt.shipped_repairs"]


@dataclass
class TrainedRepair:
    """One of a spec's repairs, trained from its seed: the run object, its key, time and test metrics."""

    index: int
    name: str
    group: str
    settings: dict[str, Any]
    key: str
    run: Any
    seconds: float
    test: dict[str, Any]


def repair_specs(audits: Path) -> list[Path]:
    """The specs in ``audits`` with repairs of a frozen model."""
    from fairprompt.spec import load_spec

    return [path for path in sorted(audits.glob("*.yaml"))
            if (spec := load_spec(path)).mitigations and spec.model is not None
            and spec.model.kind in ("frozen_text", "frozen_image")]


@contextlib.contextmanager
def scratch_cache() -> Iterator[None]:
    """``$FAIRPROMPT_CACHE`` in an empty folder for the block, so the model is the shipped one (or the fixture
    trained from its seed), never a local copy."""
    from fairprompt.cache import ENV_VAR

    previous = os.environ.get(ENV_VAR)
    with tempfile.TemporaryDirectory() as scratch:
        os.environ[ENV_VAR] = scratch
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = previous


def machine() -> str:
    """The machine a repair was trained on, in words (no host name)."""
    import torch

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def test_metrics(task: Any, model: Any, run: Any, group: str) -> dict[str, Any]:
    """The repaired model's test accuracy and its demographic parity and equalized odds differences by ``group``
    (between groups) at the chosen point."""
    from fairprompt.metrics.point import group_gap

    test = task.splits.test
    score = task.predict(run.predictor, task.split_rows(model, test))
    y_true, y_pred = task.y[test], (score >= task.threshold).astype(np.int8)
    groups = np.asarray([str(v) for v in task.dataset.frame[group].iloc[test].tolist()], dtype=object)
    chosen = [point.setting for point in run.grid() if point.chosen]

    def gap(measure: str) -> float | None:
        value = group_gap(y_true=y_true, y_pred=y_pred, groups=groups, measure=measure)  # type: ignore[arg-type]
        return None if np.isnan(value) else value

    return {"rows": int(test.size), "setting_name": run.setting_name, "setting": chosen[0] if chosen else None,
            "test_accuracy": float((y_pred == y_true).mean()),
            "demographic_parity_difference": gap("demographic_parity"),
            "equalized_odds_difference": gap("equalized_odds")}


def train(spec_path: Path) -> list[TrainedRepair]:
    """Train every repair of the spec from its seed on its (shipped or cached) model, loading no shipped repair."""
    from fairprompt.mitigation.registry import RepairContext
    from fairprompt.models.adapt import find_task_prompt
    from fairprompt.spec import load_spec
    from fairprompt.tasks import ImageTask, TextTask, load_repairs, load_task

    spec = load_spec(spec_path)
    task = load_task(spec)
    if not isinstance(task, TextTask | ImageTask) or not spec.mitigations:
        raise FairpromptError(f"{spec_path} has no repairs of a frozen model to ship; give a spec with mitigations")
    if isinstance(task, TextTask) and task.settings is not None and find_task_prompt(task.task_prompt_key()) is None:
        raise FairpromptError(f"{spec_path}: its task prompt (key {task.task_prompt_key()[:12]}) is neither shipped nor "
                              f"cached, and a repair is shipped for a shipped task prompt; run make artifact-{spec_path.stem}")
    repairs = load_repairs(spec, task)
    model, training = task.load_model()
    for repair in repairs:
        repair.method.check_model(model, config=repair.config)
    context = RepairContext(task=task, model=model, training=training, use_shipped=False)
    trained = []
    for index, repair in enumerate(repairs):
        start = time.perf_counter()
        run = repair.method.run(context, config=repair.config, group=repair.group, settings=repair.settings)
        seconds = time.perf_counter() - start
        trained.append(TrainedRepair(
            index=index, name=repair.name, group=repair.group, settings=repair.settings, run=run, seconds=seconds,
            key=repair_key(context, method=repair.method, config=repair.config, group=repair.group),
            test=test_metrics(task, model, run, repair.group)))
    return trained


def shipped_by_spec(root: Path) -> dict[tuple[str, int], Path]:
    """The artifact folders under ``root``, by (spec file name, position in its mitigations)."""
    found: dict[tuple[str, int], Path] = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else ():
        if (folder / MANIFEST).is_file():
            manifest = read_json(folder / MANIFEST)
            found[(str(manifest.get("spec")), int(manifest.get("mitigation", -1)))] = folder
    return found


def ship(trained: TrainedRepair, *, spec_name: str, root: Path, command: Sequence[str]) -> Path:
    """Write one trained repair into ``root/KEY`` (atomically), replacing the spec's old copy of it."""
    from fairprompt.atomic import replace_dir
    from fairprompt.repairs import now

    stale = shipped_by_spec(root).get((spec_name, trained.index))
    if stale is not None and stale.name != trained.key:
        shutil.rmtree(stale)

    def fill(staging: Path) -> None:
        trained.run.ship(staging)
        files = sorted(p.name for p in staging.iterdir())
        write_json(staging / MANIFEST, {
            "format": FORMAT, "format_version": FORMAT_VERSION, "key": trained.key, "spec": spec_name,
            "mitigation": trained.index, "method": trained.name, "group": trained.group, "config": trained.settings,
            "trained": {"command": list(command), "at": now(), "machine": machine(), "seconds": trained.seconds},
            "test": trained.test, "files": files})

    return replace_dir(root, trained.key, fill)


def build(spec_path: Path, *, root: Path | None = None, command: Sequence[str] = COMMAND,
          use_scratch_cache: bool = True) -> list[Path]:
    """Train the spec's repairs from their seeds and ship them into ``root`` (default: :func:`repairs_root`),
    replacing the spec's old copies.  ``use_scratch_cache`` loads the model through an empty cache (the shipped
    task prompt, never a local copy)."""
    root = repairs_root() if root is None else root
    with scratch_cache() if use_scratch_cache else contextlib.nullcontext():
        trained = train(spec_path)
    return [ship(t, spec_name=spec_path.name, root=root, command=command) for t in trained]


def check(spec_path: Path, *, root: Path | None = None, tolerance: float = 0.005, use_scratch_cache: bool = True) -> bool:
    """Train the spec's repairs again in scratch and compare the key and test metrics with the shipped copies;
    prints one line per comparison, returns whether all agree."""
    root = repairs_root() if root is None else root
    shipped = shipped_by_spec(root)
    with scratch_cache() if use_scratch_cache else contextlib.nullcontext():
        trained = train(spec_path)
    ok = True
    for t in trained:
        where = f"{spec_path}: mitigations[{t.index}] {t.name}"
        folder = shipped.get((spec_path.name, t.index))
        if folder is None:
            print(f"{where}: no shipped repair (run make repair-artifact-{spec_path.stem})")
            ok = False
            continue
        if folder.name != t.key:
            print(f"{where}: the key {t.key[:12]} differs from the shipped repair's {folder.name[:12]} (spec, data, "
                  f"model, method or versions changed); run make repair-artifact-{spec_path.stem}")
            ok = False
        expected = read_json(folder / MANIFEST).get("test", {})
        for name in COMPARED:
            a, b = expected.get(name), t.test.get(name)
            same = (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tolerance)
            print(f"{where}: {name} shipped {a} retrained {b} {'ok' if same else 'MISMATCH'}")
            ok &= same
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fairprompt.shipped_repairs", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("build", "check"))
    parser.add_argument("--audits", type=Path, default=Path("audits"))
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--only", nargs="*", metavar="SPEC", help="spec names (file stems); default: every spec with "
                                                                   "repairs (build) or with shipped repairs (check)")
    args = parser.parse_args(argv)
    specs = repair_specs(args.audits)
    if args.only:
        specs = [s for s in specs if s.stem in args.only]
    elif args.command == "check":
        names = {spec for spec, _ in shipped_by_spec(repairs_root())}
        specs = [s for s in specs if s.name in names]
    try:
        if args.command == "build":
            for spec_path in specs:
                for target in build(spec_path, command=[*COMMAND, *(argv if argv is not None else sys.argv[1:])]):
                    size = sum(p.stat().st_size for p in target.iterdir())
                    print(f"{spec_path}: shipped {target} ({size / 1e6:.2f} MB)")
            return 0
        return 0 if all([check(spec_path, tolerance=args.tolerance) for spec_path in specs]) else 1
    except FairpromptError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
