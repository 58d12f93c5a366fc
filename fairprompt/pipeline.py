"""Runs a spec: validate -> task -> (train and predict) -> audit -> results.json -> report -> each repair.

Every check on the inputs happens before anything is written (the spec as a whole, then the data,
the splits and each mitigation's repair group, before any model is built), and the outputs are
rendered in memory first, then each written atomically, so a bad input or a crash leaves no
half-written report directory behind.  The output folder is checked writable and locked before any work, and
each write ends with its ``manifest.json`` (:mod:`fairprompt.run_folder`), so a run killed while writing is
named, never mistaken for a whole one.

Mitigations (the spec's ``mitigations:`` list, or ``fairprompt mitigate NAME SPEC``) run after the audit,
which is written first: ``results.json``, ``metrics_by_group.csv``, ``report.html`` and ``compliance.html``
hold the before-audit, with each mitigation listed as ``status: not_run``.  Each mitigation then writes its
own files (a folder named after it, and what else its method writes) and rewrites ``results.json`` and
``report.html`` with its record (``status: ok``).  A mitigation that fails keeps the before-audit: its
record becomes ``{"name": ..., "status": "failed", "error": ...}``, results.json and report.html are
rewritten with it, the next mitigation still runs, and the first error is raised again at the end (the CLI
prints it as one line and exits 2), so a failed repair is both on record and visible to scripts.

This module orchestrates and knows no repair method: the spec becomes a task in :mod:`fairprompt.tasks`, the
repairs run through :mod:`fairprompt.repairs` (each method's own work lives in its package under
:mod:`fairprompt.mitigation`), and what can be reused from an earlier run is decided in :mod:`fairprompt.resume`.

Running a frozen-model spec again into the same directory resumes: the before-audit and every finished
mitigation with unchanged settings are reused when the spec (mitigations aside), the data's sha256, the
model (task prompt cache key or backbone sha256) and the fairprompt version match; ``use_cache=False``
(``--fresh``) recomputes everything.  Two runs with the same seeds write the same results.json apart from
the keys in :data:`fairprompt.results.VOLATILE_KEYS` (times and durations).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairprompt.decisions import AUDITED, PREDICTIONS_FILE, DecisionTable, decision_rows, read_decisions
from fairprompt.errors import FairpromptError
from fairprompt.grid_eval import audited_decisions
from fairprompt.metrics import Audit, audit
from fairprompt.metrics.audit import audit_tables
from fairprompt.mitigation.registry import RepairContext
from fairprompt.repairs import not_run, repair_seeds, run_repairs
from fairprompt.report import render_html
from fairprompt.results import build_results, dumps, parse_results
from fairprompt.resume import output_paths, resume_results, reusable_results, same_model, single_process
from fairprompt.run_folder import RunFolder, hold, verify
from fairprompt.spec import AuditSpec, Spec
from fairprompt.tasks import AuditInputs, ImageTask, ModelTask, Repair, TextTask, load_repairs, load_task

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RunOutput:
    """Where a run wrote its files, and what it found."""

    out_dir: Path
    results_path: Path
    report_path: Path
    csv_path: Path
    audit: Audit | None  # None when ``mitigate`` reused the before-audit in results.json
    results: dict[str, Any]
    mitigations: list[dict[str, Any]] = field(default_factory=list)  # the records of the mitigations run now
    reused: list[str] = field(default_factory=list)  # what was reused from the directory ("before-audit", names)


def is_main_process() -> bool:
    """False only in the non-main processes of a torch.distributed run."""
    return os.environ.get("RANK", "0") == "0"


def _single_process(spec: Spec) -> None:
    if spec.mitigations and not single_process():
        raise FairpromptError("mitigations run in one process; remove 'mitigations' from the spec for the distributed "
                              "audit, then run `fairprompt mitigate NAME SPEC` without torchrun")


def _paths(target: Path) -> tuple[Path, Path, Path]:
    return target / "results.json", target / "metrics_by_group.csv", target / "report.html"


def _write(folder: RunFolder, results: dict[str, Any], csv_text: str | None = None,
           decisions: DecisionTable | None = None, final_read: bool = False) -> tuple[Path, Path, Path]:
    """results.json (+ metrics_by_group.csv, + predictions.parquet when ``decisions`` is given) + report.html +
    compliance.html, each rendered first, then written atomically as one step of the run, with manifest.json
    (:meth:`RunFolder.write_step`) listing them, the metrics_by_group.csv already written, and every repair's files."""
    from fairprompt.report.compliance import COMPLIANCE_FILE, render_compliance

    if decisions is not None:
        results["decisions"] = decisions.summary(final_read=final_read)
    else:
        results.pop("decisions", None)  # a resumed run without row output: the earlier export is gone
    record = parse_results(results, source="the results of this run")  # checked as a whole, once
    json_text = dumps(record.to_json())
    html_text = render_html(record)
    compliance_text = render_compliance(record, results_sha256=hashlib.sha256(json_text.encode("utf-8")).hexdigest())
    results_path, csv_path, report_path = _paths(folder.path)
    contents: dict[str, str | bytes] = {
        results_path.name: json_text, **({csv_path.name: csv_text} if csv_text is not None else {}),
        report_path.name: html_text, COMPLIANCE_FILE: compliance_text,
        **({PREDICTIONS_FILE: decisions.to_bytes()} if decisions is not None else {})}
    outputs = [p for r in results.get("mitigations") or [] if isinstance(r, dict) for p in output_paths(r.get("outputs"))]
    folder.write_step(contents, keep=[csv_path.name, *outputs])
    return results_path, csv_path, report_path


def _auditor(settings: AuditSpec, progress: Progress | None) -> Callable[[AuditInputs], Audit]:
    """The audit with the spec's settings (the same for the before- and every after-audit)."""
    def run_audit(prepared: AuditInputs) -> Audit:
        if prepared.tables is not None:
            if settings.bootstrap == "rows":
                raise FairpromptError(f"audit.bootstrap 'rows' resamples rows, but the {prepared.tables.rows:,} rows "
                                      "of this file, more than predictions.exact_rows, are audited from their count "
                                      "tables; use bootstrap: counts, or raise predictions.exact_rows")
            return audit_tables(
                table=prepared.tables.table, histogram=prepared.tables.histogram, weighted=prepared.tables.weighted,
                reference=settings.reference, n_boot=settings.n_boot, ci_level=settings.ci_level, seed=settings.seed,
                min_group_size=settings.min_group_size, impact_threshold=settings.impact_threshold, progress=progress)
        return audit(
            y_true=prepared.y_true, y_pred=prepared.y_pred, y_score=prepared.y_score,
            sample_weight=prepared.sample_weight, sensitive=prepared.sensitive, reference=settings.reference,
            n_boot=settings.n_boot, ci_level=settings.ci_level, seed=settings.seed,
            min_group_size=settings.min_group_size, impact_threshold=settings.impact_threshold,
            bootstrap=settings.bootstrap, progress=progress,
        )

    return run_audit


def _model_task(spec: Spec, *, progress: Progress | None, use_cache: bool,
                use_shipped: bool) -> tuple[ModelTask, list[Repair], Any, dict[str, Any]]:
    """The spec's task, its repairs and its model, each checked before anything is written (the repairs' data
    before any model is built, their fit to the model once it is)."""
    task = load_task(spec, progress=progress)
    assert isinstance(task, TextTask | ImageTask)
    repairs = load_repairs(spec, task)
    model, training = task.load_model(progress=progress, use_cache=use_cache, use_shipped=use_shipped)
    for repair in repairs:
        repair.method.check_model(model, config=repair.config)
    return task, repairs, model, training


def _run_repairs(repairs: Sequence[Repair], context: RepairContext, *, spec: Spec, results: dict[str, Any],
                 folder: RunFolder, command: Sequence[str] | None, before: str, progress: Progress | None,
                 decisions: DecisionTable | None, offset: int = 0,
                 only: Sequence[int] | None = None) -> list[dict[str, Any]]:
    return run_repairs(repairs, context=context, results=results, target=folder.path,
                       audit=_auditor(spec.audit, progress),
                       write=lambda r: _write(folder, r, decisions=decisions, final_read=context.final), command=command,
                       before=before, progress=progress, offset=offset, only=only, write_files=folder.writer,
                       export=decisions.replace if decisions is not None else None)


def _decisions(folder: RunFolder, context: RepairContext, *, progress: Progress | None,
               keep_existing: bool) -> DecisionTable | None:
    """The run's decision export (None without row output: an earlier run's predictions.parquet is then removed).
    ``keep_existing``: start from the folder's predictions.parquet (a resumed run), adding the audited model's rows
    if they are missing."""
    path = folder.path / PREDICTIONS_FILE
    if not context.row_output:
        if folder.writer:
            path.unlink(missing_ok=True)
        return None
    existing = None
    if keep_existing and path.is_file():
        try:
            existing = read_decisions(path)
        except FairpromptError:
            existing = None
    table = DecisionTable(existing)
    if not table.has(AUDITED) or (context.final and not (table.frame["split"] == "final").any()):
        table.replace(AUDITED, audited_decisions(context, progress=progress))
    return table


def _hold(target: Path) -> AbstractContextManager[RunFolder]:
    """The output folder, checked writable and locked before any work (:func:`fairprompt.run_folder.hold`)."""
    return hold(target, writer=is_main_process())


def run(
    spec: Spec,
    *,
    out_dir: str | Path | None = None,
    command: Sequence[str] | None = None,
    progress: Progress | None = None,
    use_cache: bool = True,
    use_shipped: bool = True,
    row_output: bool = True,
    final: bool = False,
) -> RunOutput:
    """Run everything the spec names and write results.json, metrics_by_group.csv and report.html,
    then each of the spec's mitigations (module docstring).

    A run with a model also writes ``predictions.parquet`` (:mod:`fairprompt.decisions`: the audited model's and
    every repair grid point's decisions on the validation and test rows; ``row_output=False`` writes none).
    ``final=True`` also predicts the spec's final split (``model.splits.final``) with the audited model and each
    repair's chosen point, into that file only, and results.json records that the final split was read.

    ``use_cache=False`` ignores (and does not fill) the cache of trained task
    prompts and fixture models, and the prompts shipped with fairprompt, and recomputes every audit;
    ``use_shipped=False`` ignores only the shipped prompts.  With the cache on, a frozen-model spec run
    again into the same directory reuses what is already there (:mod:`fairprompt.resume`): the before-audit when
    results.json was written by this fairprompt version for the same spec (mitigations aside), data and
    model, and each mitigation whose record is ``ok`` with the same settings and files on disk.  Under
    several processes (``torchrun`` or ``accelerate launch``) every process trains and predicts its shard,
    and only the main process audits and writes (a spec with mitigations is refused there).  The output
    folder is checked and locked before any work (:mod:`fairprompt.run_folder`): a second run into it stops
    at once with a :class:`FairpromptError` naming the first one's PID.
    """
    _single_process(spec)
    _check_final(spec, RowOutput(enabled=row_output, final=final))
    with _hold(spec.output_dir(out_dir)) as folder:
        return _run(spec, folder, command=command, progress=progress, use_cache=use_cache, use_shipped=use_shipped,
                    rows=RowOutput(enabled=row_output, final=final))


@dataclass(frozen=True)
class RowOutput:
    """Whether a run exports its decisions (predictions.parquet), and whether it reads the final split."""

    enabled: bool = True
    final: bool = False


def _model_decisions(folder: RunFolder, prepared: AuditInputs, rows: RowOutput) -> DecisionTable | None:
    """The export of a model fairprompt trained without a repair grid (``logistic_regression``): its test rows; none
    for a predictions file (its input already is the decisions) or without row output."""
    if folder.writer:
        (folder.path / PREDICTIONS_FILE).unlink(missing_ok=True)
    if not rows.enabled or prepared.row_ids is None or prepared.y_score is None or prepared.threshold is None:
        return None
    table = DecisionTable()
    table.replace(AUDITED, [decision_rows(method=AUDITED, setting=None, chosen=True, split="test", row_ids=prepared.row_ids,
                                          labels=prepared.y_true, sensitive=prepared.sensitive, scores=prepared.y_score,
                                          threshold=prepared.threshold)])
    return table


def _export_reusable(target: Path, rows: RowOutput) -> bool:
    """Can an earlier run in ``target`` be resumed with this row output?  Not with ``--final`` (every model predicts
    the final split afresh), and not when decisions are asked for but the folder's export is missing or lacks a
    finished repair's rows (the run is recomputed rather than exported in part)."""
    if rows.final:
        return False
    if not rows.enabled:
        return True
    results_path = target / "results.json"
    if not results_path.is_file():
        return True  # nothing to resume
    try:
        methods = set(read_decisions(target / PREDICTIONS_FILE)["method"].astype(str))
    except FairpromptError:
        return False
    try:
        previous = json.loads(results_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # an unreadable results.json is not resumed anyway
    finished = {m.get("name") for m in previous.get("mitigations") or [] if isinstance(m, dict) and m.get("status") == "ok"}
    return AUDITED in methods and finished <= methods


def _check_final(spec: Spec, rows: RowOutput) -> None:
    if rows.final and not rows.enabled:
        raise FairpromptError("--final writes the final split's decisions into predictions.parquet, which "
                              "--no-row-output turns off; drop one of them")
    if rows.final and (spec.model is None or spec.model.kind not in ("frozen_text", "frozen_image")
                       or not spec.model.splits.final):
        raise FairpromptError(f"--final reads the final split, but spec {spec.name!r} holds none out; set "
                              "model.splits.final (rows no other split uses) or drop --final")


def _run(spec: Spec, folder: RunFolder, *, command: Sequence[str] | None, progress: Progress | None, use_cache: bool,
         use_shipped: bool, rows: RowOutput) -> RunOutput:
    target = folder.path
    if spec.model is not None and spec.model.kind == "causal_lm":
        return _decision_run(spec, folder, command=command, progress=progress, rows=rows)
    context: RepairContext | None = None
    decisions: DecisionTable | None = None
    repairs: list[Repair] = []
    if spec.model is not None and spec.model.kind in ("frozen_text", "frozen_image"):
        task, repairs, model, training = _model_task(spec, progress=progress, use_cache=use_cache,
                                                     use_shipped=use_shipped)
        previous = (reusable_results(target, spec.model_dump(mode="json"))
                    if use_cache and use_shipped and single_process() and _export_reusable(target, rows) else None)
        if previous is not None and same_model(previous, task, model):
            context = RepairContext(task=task, model=model, training=training, row_output=rows.enabled, final=rows.final)
            return _resume(spec, previous, repairs=repairs, context=context, folder=folder, command=command,
                           progress=progress)
        prepared = task.audit_inputs(model=model, training=training, progress=progress)
        context = RepairContext(task=task, model=model, training=training, test_scores=prepared.y_score,
                                row_output=rows.enabled, final=rows.final)
        decisions = _decisions(folder, context, progress=progress, keep_existing=False)
        seeds = task.seeds
        counterfactual = task.counterfactual_audit(model) if isinstance(task, TextTask) else None
    else:
        counterfactual = None
        simple = load_task(spec, progress=progress)
        assert not isinstance(simple, TextTask | ImageTask)
        prepared = simple.audit_inputs(progress=progress)
        seeds = simple.seeds
        decisions = _model_decisions(folder, prepared, rows)
    result = _auditor(spec.audit, progress)(prepared)
    results = build_results(
        name=spec.name, title=spec.title or spec.name, audit=result.to_dict(),
        data=prepared.data | {"rows_audited": result.n_rows}, inputs=prepared.inputs,
        seeds={"bootstrap": spec.audit.seed} | seeds | repair_seeds(repairs), model=prepared.model,
        spec=spec.model_dump(mode="json"), command=command,
        mitigations=[not_run(r) for r in repairs] if repairs else None, counterfactual=counterfactual,
    )
    if progress:
        progress("rendering the report", 0, 1)
    paths = _write(folder, results, result.by_group().to_csv(index=False), decisions=decisions,
                   final_read=rows.final)
    if progress:
        progress("rendering the report", 1, 1)
    records: list[dict[str, Any]] = []
    if context is not None and repairs and folder.writer:
        records = _run_repairs(repairs, context, spec=spec, results=results, folder=folder, command=command,
                               before="computed in this run", progress=progress, decisions=decisions)
    return RunOutput(out_dir=target, results_path=paths[0], csv_path=paths[1], report_path=paths[2], audit=result,
                     results=results, mitigations=records)


def _decision_run(spec: Spec, folder: RunFolder, *, command: Sequence[str] | None, progress: Progress | None,
                  rows: RowOutput) -> RunOutput:
    """A causal_lm spec: the discrim-eval decision audit (:mod:`fairprompt.decision_run`)."""
    from fairprompt.audit_tasks import DecisionTask
    from fairprompt.decision_run import SCORES_FILE, run_decision_audit

    task = load_task(spec, progress=progress)
    assert isinstance(task, DecisionTask)
    record, report = run_decision_audit(task, folder, name=spec.name, title=spec.title or spec.name,
                                        spec=spec.model_dump(mode="json"), command=command, progress=progress,
                                        row_output=rows.enabled)
    return RunOutput(out_dir=folder.path, results_path=folder.path / "results.json", report_path=report,
                     csv_path=folder.path / SCORES_FILE, audit=None, results=record)


def _resume(spec: Spec, previous: dict[str, Any], *, repairs: list[Repair], context: RepairContext, folder: RunFolder,
            command: Sequence[str] | None, progress: Progress | None) -> RunOutput:
    """Re-run a spec into a directory that already holds its before-audit: keep that audit and every
    finished mitigation made with the same settings (and files that match the folder's manifest), run the
    rest, and re-render the report."""
    resumed = resume_results(previous, spec=spec.model_dump(mode="json"), seeds=repair_seeds(repairs),
                             repairs=repairs, target=folder.path)
    results = resumed.results
    decisions = _decisions(folder, context, progress=progress, keep_existing=True)
    paths = _write(folder, results, decisions=decisions, final_read=context.final)
    records = []
    if resumed.todo:
        records = _run_repairs(repairs, context, spec=spec, results=results, folder=folder, command=command,
                               before=f"reused from {paths[0]} (created {previous.get('created')})",
                               progress=progress, only=resumed.todo, decisions=decisions)
    return RunOutput(out_dir=folder.path, results_path=paths[0], csv_path=paths[1], report_path=paths[2], audit=None,
                     results=results, mitigations=records, reused=resumed.reused)


def mitigate(
    spec: Spec,
    *,
    names: Sequence[str],
    out_dir: str | Path | None = None,
    command: Sequence[str] | None = None,
    progress: Progress | None = None,
    use_cache: bool = True,
    use_shipped: bool = True,
    row_output: bool = True,
    final: bool = False,
) -> RunOutput:
    """Run only the spec's mitigations called ``names`` (each must be in ``spec.mitigations``).

    The before-audit is reused from the output directory's results.json when that file was written for
    the same spec (mitigations aside), the same data and the same task prompt (its cache key); the task
    prompt is then loaded from the cache or the prompts shipped with fairprompt.  Otherwise (no
    results.json, another spec, ``use_cache=False``, or files that do not match the folder's manifest) the
    whole run happens: the before-audit is computed and written first, then the mitigations.  Records of
    other mitigations already in results.json are kept.
    """
    chosen = [m for m in spec.mitigations if m.name in names]
    missing = [n for n in names if n not in {m.name for m in chosen}]
    if missing:
        raise FairpromptError(f"spec {spec.name!r} lists no mitigation {missing[0]!r}; add it to 'mitigations'")
    spec = spec.model_copy(update={"mitigations": chosen})
    _single_process(spec)
    _check_final(spec, RowOutput(enabled=row_output, final=final))
    with _hold(spec.output_dir(out_dir)) as folder:
        return _mitigate(spec, folder, names=names, command=command, progress=progress, use_cache=use_cache,
                         use_shipped=use_shipped, rows=RowOutput(enabled=row_output, final=final))


def _mitigate(spec: Spec, folder: RunFolder, *, names: Sequence[str], command: Sequence[str] | None,
              progress: Progress | None, use_cache: bool, use_shipped: bool, rows: RowOutput) -> RunOutput:
    target = folder.path
    previous = reusable_results(target, spec.model_dump(mode="json")) if use_cache and _export_reusable(target, rows) else None
    kept = [r for r in (previous or {}).get("mitigations") or [] if r.get("name") not in names]
    if previous is not None:
        check = verify(target)
        if any(check.is_stale(p) for r in kept for p in output_paths(r.get("outputs"))):
            previous = None  # another repair's files no longer match its record: recompute the whole run
    if previous is None:
        return _run(spec, folder, command=command, progress=progress, use_cache=use_cache, use_shipped=use_shipped,
                    rows=rows)
    task, repairs, model, training = _model_task(spec, progress=progress, use_cache=use_cache, use_shipped=use_shipped)
    if not same_model(previous, task, model):
        return _run(spec, folder, command=command, progress=progress, use_cache=use_cache, use_shipped=use_shipped,
                    rows=rows)
    results = dict(previous)
    results["spec"] = spec.model_dump(mode="json") | {"mitigations": [
        *[m for m in (previous.get("spec") or {}).get("mitigations") or [] if m.get("name") not in names],
        *[m.model_dump(mode="json") for m in spec.mitigations]]}
    results["seeds"] = dict(results.get("seeds") or {}) | repair_seeds(repairs)
    results["mitigations"] = [*kept, *[not_run(r) for r in repairs]]
    paths = _paths(target)
    context = RepairContext(task=task, model=model, training=training, row_output=rows.enabled, final=rows.final)
    decisions = _decisions(folder, context, progress=progress, keep_existing=True)
    records = _run_repairs(repairs, context, spec=spec, results=results, folder=folder, command=command,
                           before=f"reused from {paths[0]} (created {previous.get('created')})", progress=progress,
                           offset=len(kept), decisions=decisions)
    return RunOutput(out_dir=target, results_path=paths[0], csv_path=paths[1], report_path=paths[2], audit=None,
                     results=results, mitigations=records)


__all__ = ["RunOutput", "is_main_process", "mitigate", "run"]
