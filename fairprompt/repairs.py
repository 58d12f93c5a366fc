"""Running the spec's repairs after the audit: what every repair shares, whatever the method.

For each :class:`~fairprompt.tasks.Repair`, :func:`run_repairs` asks its method to repair the frozen model
(:meth:`~fairprompt.mitigation.registry.RepairMethod.run`), then, the same way for every method: predicts the
test split with the repaired model, audits it with the before-audit's settings (the after-audit), checks that
the backbone (and, for methods that promise it, the task prompt and head) did not change, writes the
method's files, and assembles the record (name, status, settings, group, when, command, where the
before-audit came from; the test scores beside the before-audit's, and the before/after comparison).
results.json is rewritten after each repair through the ``write`` callback (this module renders nothing).  A
failing repair is recorded as ``status: failed`` with its message, the next one still runs, and the first
failure is raised again at the end.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError
from fairprompt.grid_eval import evaluate_grid
from fairprompt.metrics import Audit
from fairprompt.metrics.compare import compare_audits
from fairprompt.metrics.point import auc_or_none
from fairprompt.mitigation.registry import Progress, RepairContext, TestSplit
from fairprompt.results import Record, parse_results, to_jsonable
from fairprompt.results.audit import AuditRecord
from fairprompt.results.repairs import AfterModel, ComparisonRow, FailedRepair, NotRunRepair, Outputs, TaskPromptRef
from fairprompt.tasks import AuditInputs, Repair


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def not_run(repair: Repair) -> dict[str, Any]:
    """The record of a repair that has not run (yet)."""
    return NotRunRepair(name=repair.name, status="not_run", config=to_jsonable(repair.settings),
                        group=repair.group).to_json()


def repair_seeds(repairs: Sequence[Repair]) -> dict[str, int]:
    """Every repair's seed, by ``mitigation_NAME``."""
    return {f"mitigation_{r.name}": r.seed for r in repairs}


def _difference(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - float(before)


def test_scores(before_model: Any, *, y_test: np.ndarray, y_pred: np.ndarray, score: np.ndarray,
                threshold: float) -> dict[str, Any]:
    """The repaired model's test accuracy and AUC beside the before-audit's (the shared part of ``after_model``);
    ``before_model`` is the record's ``model`` (None for a predictions audit)."""
    accuracy, auc = float((y_pred == y_test).mean()), auc_or_none(y_test, score)
    before_accuracy = getattr(before_model, "test_accuracy", None)
    before_auc = getattr(before_model, "test_auc", None)
    return {"test_rows": int(y_test.size), "threshold": threshold, "test_accuracy": accuracy, "test_auc": auc,
            "before_test_accuracy": before_accuracy, "before_test_auc": before_auc,
            "accuracy_change": _difference(accuracy, before_accuracy), "auc_change": _difference(auc, before_auc)}


def run_repair(repair: Repair, *, context: RepairContext, results: Mapping[str, Any], target: Path,
               audit: Callable[[AuditInputs], Audit], command: Sequence[str] | None, before: str,
               progress: Progress | None = None, write_files: bool = True,
               decisions: list[pd.DataFrame] | None = None) -> Record:
    """One repair, its after-audit on the test split (never seen by the method's selection), the frozen-model check,
    its grid on the validation and test rows (:mod:`fairprompt.grid_eval`; the decision rows go into
    ``decisions`` when given), its files, and its typed record (the method's ``record_type``)."""
    from fairprompt.models.frozen import adapter_sha256

    start = time.perf_counter()
    task, model = context.task, context.model
    backbone = model.backbone_sha256
    adapter = adapter_sha256(model) if repair.method.frozen_adapter else None
    run = repair.method.run(context, config=repair.config, group=repair.group, settings=repair.settings,
                            progress=progress)

    test = task.splits.test
    y_test = task.y[test]
    test_rows = task.split_rows(model, test)
    score = task.predict(run.predictor, test_rows, progress=progress)
    y_pred = (score >= task.threshold).astype(np.int8)
    sensitive = task.dataset.frame[task.sensitive].iloc[test].reset_index(drop=True)
    after = audit(AuditInputs(y_true=y_test, y_pred=y_pred, y_score=score, sample_weight=None, sensitive=sensitive,
                              data={}, inputs=[])).to_dict()
    unchanged = (run.predictor is not model and model.backbone_sha256 == backbone
                 and run.predictor.backbone_sha256 == backbone)
    adapter_unchanged = None if adapter is None else adapter_sha256(model) == adapter == adapter_sha256(run.predictor)
    if not unchanged or adapter_unchanged is False:  # the guarantee, checked on every run
        what = "the backbone or the task adapter" if repair.method.frozen_adapter else "the backbone"
        raise RuntimeError(f"{what} changed during the {repair.name} repair")
    before_record = parse_results(results, source="the before-audit")
    after_model = AfterModel(**test_scores(before_record.model, y_test=y_test, y_pred=y_pred, score=score,
                                           threshold=task.threshold),
                             changed=run.changed, backbone_sha256=backbone, backbone_unchanged=unchanged,
                             **({"adapter_unchanged": adapter_unchanged} if repair.method.frozen_adapter else {}))
    outputs = Outputs.model_validate(to_jsonable(run.write(target, write=write_files)))

    def before_score() -> np.ndarray:
        return context.audited_scores("test", progress=progress)

    own = run.record(TestSplit(y_true=y_test, y_pred=y_pred, score=score, before_score=before_score))
    grid = evaluate_grid(run, context=context, name=repair.name, group=repair.group, chosen_test_score=score,
                         progress=progress)
    if decisions is not None:
        decisions.extend(grid.decisions)
    after_record = AuditRecord.model_validate(to_jsonable(after))
    comparison = compare_audits(before=before_record.audit.to_json(), after=after_record.to_json())
    return repair.method.record_type(
        name=repair.name, status="ok", config=to_jsonable(repair.settings), group=repair.group, created=now(),
        command=list(command) if command is not None else None, before_audit=before,
        task_prompt=TaskPromptRef(source=context.training.get("source"), cache_key=context.training.get("cache_key")),
        after=after_record, after_model=after_model,
        comparison=[ComparisonRow.model_validate(row) for row in to_jsonable(comparison)],
        setting_name=run.setting_name, frontier=grid.frontier, outputs=outputs,
        seconds=time.perf_counter() - start, **own,
    )


def run_repairs(repairs: Sequence[Repair], *, context: RepairContext, results: dict[str, Any], target: Path,
                audit: Callable[[AuditInputs], Audit], write: Callable[[dict[str, Any]], Any],
                command: Sequence[str] | None, before: str, progress: Progress | None = None, offset: int = 0,
                only: Sequence[int] | None = None, write_files: bool = True,
                export: Callable[[str, list[pd.DataFrame]], None] | None = None) -> list[dict[str, Any]]:
    """Run each repair (those at positions ``only``, else all) into ``results["mitigations"][offset + index]``,
    calling ``export(name, decision_rows)`` (when given; no rows for a failed repair) and then ``write(results)``
    after each.  A failure is recorded (status ``failed`` with its message) and the next repair still runs; the
    first failure is raised again at the end.  Returns the records of those that ran."""
    records = []
    failure: BaseException | None = None
    for index, repair in enumerate(repairs):
        if only is not None and index not in only:
            continue
        slot = offset + index
        rows: list[pd.DataFrame] = []
        try:
            record = run_repair(repair, context=context, results=results, target=target, audit=audit, command=command,
                                before=before, progress=progress, write_files=write_files,
                                decisions=rows if export is not None else None)
        except Exception as exc:
            if export is not None:
                export(repair.name, [])
            message = str(exc) if isinstance(exc, FairpromptError) else f"{type(exc).__name__}: {exc}"
            results["mitigations"][slot] = FailedRepair(
                name=repair.name, status="failed", config=to_jsonable(repair.settings), group=repair.group,
                error=message, created=now(), command=list(command) if command is not None else None).to_json()
            write(results)
            failure = failure or exc
            continue
        results["mitigations"][slot] = record.to_json()
        if export is not None:
            export(repair.name, rows)
        write(results)
        records.append(results["mitigations"][slot])
    if failure is not None:
        raise failure
    return records


__all__ = ["not_run", "now", "repair_seeds", "run_repair", "run_repairs", "test_scores"]
