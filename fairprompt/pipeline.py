"""Runs a spec: load -> (train and predict) -> audit -> results.json -> report -> mitigations.

Every check on the inputs happens before anything is written (the spec as a whole, then the data,
the splits and each mitigation's repair group, before any model is built), and the outputs are
rendered in memory first, then each written atomically, so a bad input or a crash leaves no
half-written report directory behind.

Mitigations (the spec's ``mitigations:`` list, or ``fairprompt mitigate fairij SPEC``) run after the
audit, which is written first: ``results.json``, ``metrics_by_group.csv``, ``report.html`` and
``compliance.html`` hold the
before-audit, with each mitigation listed as ``status: not_run``.  Each mitigation then writes its own
files (``influence.csv``, ``fairij/``) and rewrites ``results.json`` and ``report.html`` with its record
(``status: ok``).  A mitigation that fails keeps the before-audit: its record becomes
``{"name": ..., "status": "failed", "error": ...}``, results.json and report.html are rewritten with it,
the next mitigation still runs, and the first error is raised again at the end (the CLI prints it as one
line and exits 2), so a failed repair is both on record and visible to scripts.

Running a frozen-model spec again into the same directory resumes: the before-audit and every finished
mitigation with unchanged settings are reused when the spec (mitigations aside), the data's sha256, the
model (task prompt cache key or backbone sha256) and the fairprompt version match; ``use_cache=False``
(``--fresh``) recomputes everything.  Two runs with the same seeds write the same results.json apart from
the keys in :data:`fairprompt.results.VOLATILE_KEYS` (times and durations).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fairprompt import __version__
from fairprompt.atomic import write_text
from fairprompt.errors import FairpromptError
from fairprompt.metrics import Audit, audit
from fairprompt.prepare import (
    AuditInputs, ImageTask, TextTask, _auc, image_model, image_task, prepare_frozen_image, prepare_frozen_text,
    prepare_model, prepare_predictions, repair_groups, text_model, text_task,
)
from fairprompt.report import render_html
from fairprompt.results import build_results, dumps, load_results, parse_results, to_jsonable
from fairprompt.spec import Mitigation, Spec

if TYPE_CHECKING:
    from fairprompt.mitigation.fairij import FairIJResult
    from fairprompt.mitigation.reprogram import ReprogramResult

Progress = Callable[[str, int, int], None]

INFLUENCE_CSV = "influence.csv"
FAIRIJ_DIR = "fairij"
FAIRIJ_RECORD = "fairij.json"
REPROGRAM_DIR = "reprogram"
TOP_FLAGGED = 20
TEXT_SHOWN = 1000  # characters of a text feature kept in results.json
HEADLINE = ("demographic_parity_difference", "disparate_impact", "equal_opportunity_difference",
            "equalized_odds_difference", "accuracy_difference")


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


def model_seeds(spec: Spec) -> dict[str, int]:
    """Every seed the spec's model uses, by role."""
    m = spec.model
    if m is None:
        return {}
    if m.kind == "frozen_text":
        return {"split": m.splits.seed, "training": m.training.seed}
    if m.kind == "frozen_image":
        return {"data": int(spec.data.options.get("seed", 0)) if spec.data else 0, "training": m.seed}
    return {"model": m.seed}


def _mitigation_seeds(spec: Spec) -> dict[str, int]:
    return {f"mitigation_{m.name}": m.seed for m in spec.mitigations}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _single_process(spec: Spec) -> None:
    if spec.mitigations and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise FairpromptError("mitigations run in one process; remove 'mitigations' from the spec for the distributed "
                              "audit, then run `fairprompt mitigate NAME SPEC` without torchrun")


@dataclass
class _MitigationInputs:
    """What the mitigations need from the before-run: the resolved task, the model and its record, and the
    untriggered model's test-split scores when the before-audit was computed in this run."""

    task: TextTask | ImageTask
    model: Any
    training: dict[str, Any]
    groups: list[str]
    test_scores: np.ndarray | None = None


def _task_and_model(spec: Spec, *, progress: Progress | None, use_cache: bool,
                    use_shipped: bool) -> tuple[TextTask | ImageTask, list[str], Any, dict[str, Any]]:
    """The spec's task, its mitigations' groups and its model, each checked before anything is written."""
    assert spec.model is not None
    if spec.model.kind == "frozen_image":
        task: TextTask | ImageTask = image_task(spec, progress=progress)
        groups = repair_groups(spec, task)  # before any model is built
        model, training = image_model(spec, task, progress=progress, use_cache=use_cache)
    else:
        task = text_task(spec)
        groups = repair_groups(spec, task)
        model, training = text_model(spec, task, progress=progress, use_cache=use_cache, use_shipped=use_shipped)
    _check_triggers_fit(spec, model)
    return task, groups, model, training


def _check_triggers_fit(spec: Spec, model: Any) -> None:
    """A reprogram trigger must fit the model (positions of a text backbone, size of the images)."""
    from fairprompt.mitigation.reprogram import check_image_trigger, check_text_trigger

    for m in spec.mitigations:
        if m.name != "reprogram":
            continue
        if spec.model is not None and spec.model.kind == "frozen_image":
            kind = m.trigger or "border"
            check_image_trigger(kind=kind, image_size=int(model.input_size[0]), width=m.width, patch_size=m.patch_size)
        else:
            check_text_trigger(model, tokens=m.tokens)


def _write(target: Path, results: dict[str, Any], csv_text: str | None = None) -> tuple[Path, Path, Path]:
    """results.json (+ metrics_by_group.csv) + report.html + compliance.html, each rendered first, then written
    atomically."""
    import hashlib

    from fairprompt.report.compliance import COMPLIANCE_FILE, render_compliance

    record = parse_results(results, source="the results of this run")  # checked as a whole, once
    json_text = dumps(record.to_json())
    html_text = render_html(record)
    compliance_text = render_compliance(record, results_sha256=hashlib.sha256(json_text.encode("utf-8")).hexdigest())
    paths = (target / "results.json", target / "metrics_by_group.csv", target / "report.html")
    if is_main_process():
        write_text(paths[0], json_text)
        if csv_text is not None:
            write_text(paths[1], csv_text)
        write_text(paths[2], html_text)
        write_text(target / COMPLIANCE_FILE, compliance_text)
    return paths


def run(
    spec: Spec,
    *,
    out_dir: str | Path | None = None,
    command: Sequence[str] | None = None,
    progress: Progress | None = None,
    use_cache: bool = True,
    use_shipped: bool = True,
) -> RunOutput:
    """Run everything the spec names and write results.json, metrics_by_group.csv and report.html,
    then each of the spec's mitigations (module docstring).

    ``use_cache=False`` ignores (and does not fill) the cache of trained task
    prompts and fixture models, and the prompts shipped with fairprompt, and recomputes every audit;
    ``use_shipped=False`` ignores only the shipped prompts.  With the cache on, a frozen-model spec run
    again into the same directory reuses what is already there (:func:`_resume`): the before-audit when
    results.json was written by this fairprompt version for the same spec (mitigations aside), data and
    model, and each mitigation whose record is ``ok`` with the same settings and files on disk.  Under
    several processes (``torchrun`` or ``accelerate launch``) every process trains and predicts its shard,
    and only the main process audits and writes (a spec with mitigations is refused there).
    """
    _single_process(spec)
    target = spec.output_dir(out_dir)
    pending: _MitigationInputs | None = None
    if spec.predictions is not None:
        prepared = prepare_predictions(spec)
    elif spec.mitigations or _resumable(spec, target, use_cache):
        task, groups, model, training = _task_and_model(spec, progress=progress, use_cache=use_cache,
                                                        use_shipped=use_shipped)
        previous = _reusable_results(target, spec) if use_cache and use_shipped else None
        if previous is not None and _same_model(previous, task, model):
            inputs = _MitigationInputs(task=task, model=model, training=training, groups=groups)
            return _resume(spec, previous, inputs=inputs, target=target, command=command, progress=progress)
        if isinstance(task, ImageTask):
            prepared = prepare_frozen_image(spec, progress=progress, task=task, loaded=(model, training))
        else:
            prepared = prepare_frozen_text(spec, progress=progress, task=task, loaded=(model, training))
        pending = _MitigationInputs(task=task, model=model, training=training, groups=groups,
                                    test_scores=prepared.y_score)
    else:
        prepared = prepare_model(spec, progress=progress, use_cache=use_cache, use_shipped=use_shipped)
    result = _audit(spec, prepared, progress)
    seeds = {"bootstrap": spec.audit.seed} | model_seeds(spec) | _mitigation_seeds(spec)
    results = build_results(
        name=spec.name, title=spec.title or spec.name, audit=result.to_dict(),
        data=prepared.data | {"rows_audited": result.n_rows}, inputs=prepared.inputs, seeds=seeds,
        model=prepared.model, spec=spec.model_dump(mode="json"), command=command,
        mitigations=[_not_run(m, g) for m, g in zip(spec.mitigations, pending.groups)] if pending and spec.mitigations
        else None,
    )
    if progress:
        progress("rendering the report", 0, 1)
    paths = _write(target, results, result.by_group().to_csv(index=False))
    if progress:
        progress("rendering the report", 1, 1)
    records: list[dict[str, Any]] = []
    if pending is not None and spec.mitigations and is_main_process():
        records = _run_mitigations(spec, pending, results=results, target=target, command=command,
                                   before="computed in this run", progress=progress)
    return RunOutput(out_dir=target, results_path=paths[0], csv_path=paths[1], report_path=paths[2], audit=result,
                     results=results, mitigations=records)


def _resumable(spec: Spec, target: Path, use_cache: bool) -> bool:
    """Whether a frozen-model spec without mitigations may reuse the before-audit in ``target`` (one process)."""
    return (use_cache and spec.model is not None and spec.model.kind in ("frozen_text", "frozen_image")
            and int(os.environ.get("WORLD_SIZE", "1")) == 1 and (target / "results.json").is_file())


def _reusable_record(record: Any, m: Mitigation, group: str, target: Path) -> bool:
    """A finished mitigation record made with these settings, whose files are still on disk (each mitigation name
    appears at most once in a spec, so its files are its own)."""
    if not isinstance(record, dict) or record.get("status") != "ok" or record.get("name") != m.name:
        return False
    if record.get("group") != group or record.get("config") != to_jsonable(_config(m)):
        return False
    return all((target / path).exists() for path in _output_paths(record.get("outputs")))


def _output_paths(outputs: Any) -> list[str]:
    """Every relative path named in a record's ``outputs`` (nested mappings included)."""
    if isinstance(outputs, str):
        return [outputs]
    if isinstance(outputs, dict):
        return [p for v in outputs.values() for p in _output_paths(v)]
    return []


def _resume(spec: Spec, previous: dict[str, Any], *, inputs: _MitigationInputs, target: Path,
            command: Sequence[str] | None, progress: Progress | None) -> RunOutput:
    """Re-run a spec into a directory that already holds its before-audit: keep that audit and every
    finished mitigation made with the same settings, run the rest, and re-render the report."""
    results = dict(previous)
    results["spec"] = spec.model_dump(mode="json")
    results["seeds"] = {k: v for k, v in (results.get("seeds") or {}).items() if not k.startswith("mitigation_")} \
        | _mitigation_seeds(spec)
    old = [r for r in previous.get("mitigations") or [] if isinstance(r, dict)]
    slots: list[dict[str, Any]] = []
    todo: list[int] = []
    for index, (m, group) in enumerate(zip(spec.mitigations, inputs.groups)):
        match = next((r for r in old if _reusable_record(r, m, group, target)), None)
        if match is None:
            todo.append(index)
            match = _not_run(m, group)
        else:
            old.remove(match)
        slots.append(match)
    if slots:
        results["mitigations"] = slots
    else:
        results.pop("mitigations", None)
    paths = _write(target, results)
    reused = ["before-audit", *[spec.mitigations[i].name for i in range(len(slots)) if i not in todo]]
    records = []
    if todo:
        records = _run_mitigations(spec, inputs, results=results, target=target, command=command,
                                   before=f"reused from {paths[0]} (created {previous.get('created')})",
                                   progress=progress, only=todo)
    return RunOutput(out_dir=target, results_path=paths[0], csv_path=paths[1], report_path=paths[2], audit=None,
                     results=results, mitigations=records, reused=reused)


def mitigate(
    spec: Spec,
    *,
    names: Sequence[str] = ("fairij",),
    out_dir: str | Path | None = None,
    command: Sequence[str] | None = None,
    progress: Progress | None = None,
    use_cache: bool = True,
    use_shipped: bool = True,
) -> RunOutput:
    """Run only the spec's mitigations called ``names`` (each must be in ``spec.mitigations``).

    The before-audit is reused from the output directory's results.json when that file was written for
    the same spec (mitigations aside), the same data and the same task prompt (its cache key); the task
    prompt is then loaded from the cache or the prompts shipped with fairprompt.  Otherwise (no
    results.json, another spec, or ``use_cache=False``) the whole run happens: the before-audit is
    computed and written first, then the mitigations.  Records of other mitigations already in
    results.json are kept.
    """
    chosen = [m for m in spec.mitigations if m.name in names]
    missing = [n for n in names if n not in {m.name for m in chosen}]
    if missing:
        raise FairpromptError(f"spec {spec.name!r} lists no mitigation {missing[0]!r}; add it to 'mitigations'")
    spec = spec.model_copy(update={"mitigations": chosen})
    _single_process(spec)
    target = spec.output_dir(out_dir)
    previous = _reusable_results(target, spec) if use_cache else None
    if previous is None:
        return run(spec, out_dir=out_dir, command=command, progress=progress, use_cache=use_cache,
                   use_shipped=use_shipped)
    task, groups, model, training = _task_and_model(spec, progress=progress, use_cache=use_cache,
                                                    use_shipped=use_shipped)
    if not _same_model(previous, task, model):
        return run(spec, out_dir=out_dir, command=command, progress=progress, use_cache=use_cache,
                   use_shipped=use_shipped)
    results = dict(previous)
    results["spec"] = spec.model_dump(mode="json") | {"mitigations": [
        *[m for m in (previous.get("spec") or {}).get("mitigations") or [] if m.get("name") not in names],
        *[m.model_dump(mode="json") for m in chosen]]}
    results["seeds"] = dict(results.get("seeds") or {}) | _mitigation_seeds(spec)
    kept = [r for r in results.get("mitigations") or [] if r.get("name") not in names]
    results["mitigations"] = [*kept, *[_not_run(m, g) for m, g in zip(chosen, groups)]]
    paths = (target / "results.json", target / "metrics_by_group.csv", target / "report.html")
    records = _run_mitigations(spec, _MitigationInputs(task=task, model=model, training=training, groups=groups),
                               results=results, target=target, command=command,
                               before=f"reused from {paths[0]} (created {previous.get('created')})", progress=progress,
                               offset=len(kept))
    return RunOutput(out_dir=target, results_path=paths[0], csv_path=paths[1], report_path=paths[2], audit=None,
                     results=results, mitigations=records)


def _audit(spec: Spec, prepared: AuditInputs, progress: Progress | None) -> Audit:
    a = spec.audit
    return audit(
        y_true=prepared.y_true, y_pred=prepared.y_pred, y_score=prepared.y_score, sample_weight=prepared.sample_weight,
        sensitive=prepared.sensitive, reference=a.reference, n_boot=a.n_boot, ci_level=a.ci_level, seed=a.seed,
        min_group_size=a.min_group_size, impact_threshold=a.impact_threshold, bootstrap=a.bootstrap, progress=progress,
    )


def _spec_key(spec: Any) -> Any:
    return {k: v for k, v in spec.items() if k != "mitigations"} if isinstance(spec, dict) else None


def _same_model(previous: dict[str, Any], task: TextTask | ImageTask, model: Any) -> bool:
    """Whether the before-audit in ``previous`` was made with this data and this model (task prompt or backbone)."""
    data_hashes = [i.get("sha256") for i in previous.get("inputs") or [] if isinstance(i, dict) and i.get("role") == "data"]
    if data_hashes != [task.dataset.sha256]:
        return False
    described = previous.get("model") or {}
    if isinstance(task, TextTask) and task.settings is not None:
        return (described.get("training") or {}).get("cache_key") == task.task_prompt_key()
    return described.get("backbone_sha256") == model.backbone_sha256  # an image backbone, or task_prompt: none


def _reusable_results(target: Path, spec: Spec) -> dict[str, Any] | None:
    """The before-audit in ``target/results.json`` if it was written for this spec (mitigations aside); the
    data and the model are compared by :func:`_same_model` once they are loaded."""
    path = target / "results.json"
    if not path.is_file():
        return None
    try:
        previous = load_results(path).to_json()
    except FairpromptError:
        return None
    model = previous.get("model")
    if not isinstance(previous.get("audit"), dict) or not isinstance(model, dict):
        return None
    if _spec_key(previous.get("spec")) != _spec_key(to_jsonable(spec.model_dump(mode="json"))):
        return None
    if previous.get("fairprompt_version") != __version__:
        return None
    return previous


# ------------------------------------------------------------------------------------------- mitigations
def _not_run(m: Mitigation, group: str) -> dict[str, Any]:
    return {"name": m.name, "status": "not_run", "config": _config(m), "group": group}


def _config(m: Mitigation) -> dict[str, Any]:
    return {k: v for k, v in m.model_dump(mode="json").items() if k != "name"}


def _run_mitigations(spec: Spec, inputs: _MitigationInputs, *, results: dict[str, Any], target: Path,
                     command: Sequence[str] | None, before: str, progress: Progress | None,
                     offset: int = 0, only: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Run each mitigation (those at positions ``only``, else all), rewriting results.json and report.html after
    each.  A failure is recorded (status ``failed`` with its message) and the next mitigation still runs; the
    first failure is raised again at the end, so the CLI exits 2 with a report that shows it."""
    records = []
    failure: BaseException | None = None
    for index, (m, group) in enumerate(zip(spec.mitigations, inputs.groups)):
        if only is not None and index not in only:
            continue
        slot = offset + index
        try:
            step = _fairij_step if m.name == "fairij" else _reprogram_step
            record = step(m, spec=spec, inputs=inputs, group=group, results=results, target=target, progress=progress)
        except Exception as exc:
            message = str(exc) if isinstance(exc, FairpromptError) else f"{type(exc).__name__}: {exc}"
            results["mitigations"][slot] = {"name": m.name, "status": "failed", "config": _config(m), "group": group,
                                            "error": message, "created": _now(),
                                            "command": list(command) if command is not None else None}
            _write(target, results)
            failure = failure or exc
            continue
        record = {"name": m.name, "status": "ok", "config": _config(m), "group": group, "created": _now(),
                  "command": list(command) if command is not None else None, "before_audit": before} | record
        results["mitigations"][slot] = to_jsonable(record)
        _write(target, results)
        records.append(results["mitigations"][slot])
    if failure is not None:
        raise failure
    return records


def _text_values(series: pd.Series) -> list[str | None]:
    return [None if pd.isna(v) else str(v) for v in series.tolist()]


def _fairij_step(m: Mitigation, *, spec: Spec, inputs: _MitigationInputs, group: str, results: dict[str, Any],
                 target: Path, progress: Progress | None) -> dict[str, Any]:
    """FairIJ on the task prompt (selection on the validation split), the repaired model's test-split audit,
    influence.csv and the fairij/ artifact; returns the mitigation's record (without name/status)."""
    from fairprompt.mitigation.fairij import fairij
    from fairprompt.models.training import TrainConfig

    start = time.perf_counter()
    task, model = inputs.task, inputs.model
    frame, y, splits = task.dataset.frame, task.y, task.splits
    fm = spec.model
    assert fm is not None and fm.kind == "frozen_text"
    validation_groups = np.asarray(_text_values(frame[group].iloc[splits.validation]), dtype=object)
    train_rows = model.encode(task.pick(splits.train), labels=y[splits.train])
    validation_rows = model.encode(task.pick(splits.validation), labels=y[splits.validation])
    backbone = model.backbone_sha256
    t = m.append_training
    result = fairij(
        model=model, train_rows=train_rows, validation_rows=validation_rows, validation_groups=validation_groups,
        measure=m.measure, mode=m.mode, utility_budget=m.utility_budget, max_fraction=m.max_fraction, graded=m.graded,
        damping=m.damping, solver=m.solver, selection=m.selection, append_tokens=m.append_tokens,
        append_training=TrainConfig(max_epochs=t.max_epochs, patience=t.patience, batch_size=t.batch_size, lr=t.lr,
                                    head_lr=None),
        train_ids=splits.train, seed=m.seed, verify_epochs=m.verify_epochs if m.verify else None, progress=progress,
    )

    # the after-audit: the repaired model on the TEST split (never seen by the selection)
    repaired = result.repaired_model
    test = splits.test
    y_test = y[test]
    score = repaired.predict_proba(repaired.encode(task.pick(test), labels=y_test), batch_size=fm.batch_size,
                                   progress=progress)[:, 1]
    y_pred = (score >= fm.threshold).astype(np.int8)
    after_inputs = AuditInputs(y_true=y_test, y_pred=y_pred, y_score=score, sample_weight=None,
                               sensitive=frame[task.sensitive].iloc[test].reset_index(drop=True), data={}, inputs=[])
    after = _audit(spec, after_inputs, progress)
    unchanged = repaired.backbone_sha256 == backbone and model.backbone_sha256 == backbone
    if not unchanged:  # the guarantee, checked on every run
        raise RuntimeError("the backbone changed during the fairij repair")
    after_model = _test_scores(results.get("model") or {}, y_test=y_test, y_pred=y_pred, score=score,
                               threshold=fm.threshold) | {
        "changed": ("appended soft prompt ({} tokens, {} parameters); task prompt, head and backbone frozen".format(
                        m.append_tokens, sum(p.numel() for p in repaired.prompts.parameters()))
                    if m.mode == "append" else "task prompt and head (one-step IJ update); backbone frozen"),
        "backbone_sha256": backbone, "backbone_unchanged": unchanged,
    }

    # outputs: influence.csv, then the artifact folder (each atomic); results.json is written by the caller
    influence = _influence_frame(result, task)
    artifacts = _save_artifact(result, m, group=group, target=target, training=inputs.training, model=model)
    if is_main_process():
        write_text(target / INFLUENCE_CSV, influence.to_csv(index=False))
    summary = result.to_dict(top=TOP_FLAGGED)
    summary["top_flagged"] = _top_flagged(result, task, group)
    summary["artifacts"] = artifacts
    return {
        "task_prompt": {k: inputs.training.get(k) for k in ("source", "cache_key")},
        "fairij": summary,
        "flagged_by_group": _flagged_by_group(result, task),
        "after": after.to_dict(),
        "after_model": after_model,
        "comparison": _comparison(results.get("audit") or {}, after.to_dict()),
        "outputs": {"influence_csv": INFLUENCE_CSV, "artifact_dir": FAIRIJ_DIR, "artifacts": artifacts},
        "seconds": time.perf_counter() - start,
    }


def _test_scores(before_model: dict[str, Any], *, y_test: np.ndarray, y_pred: np.ndarray, score: np.ndarray,
                 threshold: float) -> dict[str, Any]:
    """The repaired model's test accuracy and AUC beside the before-audit's (the shared part of ``after_model``)."""
    accuracy, auc = float((y_pred == y_test).mean()), _auc(y_test, score)
    return {"test_rows": int(y_test.size), "threshold": threshold, "test_accuracy": accuracy, "test_auc": auc,
            "before_test_accuracy": before_model.get("test_accuracy"), "before_test_auc": before_model.get("test_auc"),
            "accuracy_change": _difference(accuracy, before_model.get("test_accuracy")),
            "auc_change": _difference(auc, before_model.get("test_auc"))}


def _difference(after: float | None, before: Any) -> float | None:
    return None if after is None or not isinstance(before, int | float) else after - float(before)


def _group_columns(task: TextTask) -> dict[str, str]:
    """Sensitive column -> its name in influence.csv (``group_`` prefixed when it would clash)."""
    fixed = {"row_id", "I_F", "I_U", "flagged", "weight", "label"}
    return {s: f"group_{s}" if s in fixed else s for s in task.sensitive}


def _influence_frame(result: FairIJResult, task: TextTask) -> pd.DataFrame:
    """row_id (position in the data set), I_F, I_U, flagged, weight, the sensitive columns, label (1 = favourable)."""
    frame = result.influence_frame()
    rows = frame["row_id"].to_numpy()
    for column, shown in _group_columns(task).items():
        frame[shown] = _text_values(task.dataset.frame[column].iloc[rows])
    frame["label"] = task.y[rows].astype(int)
    return frame.sort_values("row_id", kind="stable").reset_index(drop=True)


def _features(task: TextTask, row: int) -> dict[str, str | None]:
    info = task.text_info
    frame = task.dataset.frame
    if "text_column" in info:
        text = str(frame[info["text_column"]].iloc[row])
        return {info["text_column"]: text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN] + "…"}
    return {c: None if pd.isna(v) else str(v) for c, v in frame[info["text_columns"]].iloc[row].items()}


def _top_flagged(result: FairIJResult, task: TextTask, group: str) -> list[dict[str, Any]]:
    """The most harmful flagged training rows (most negative I_F first), with what the report shows of them."""
    ds = task.dataset
    flagged = np.flatnonzero(result.flagged)
    flagged = flagged[np.argsort(result.influence_fairness[flagged], kind="stable")][:TOP_FLAGGED]
    out = []
    for rank, i in enumerate(flagged, start=1):
        row = int(result.row_ids[i])
        label = ds.frame[ds.label].iloc[row]
        out.append({
            "rank": rank, "row_id": row, "I_F": float(result.influence_fairness[i]),
            "I_U": float(result.influence_utility[i]), "weight": float(result.weights[i]),
            "group": None if pd.isna(ds.frame[group].iloc[row]) else str(ds.frame[group].iloc[row]),
            "groups": {c: None if pd.isna(v) else str(v) for c, v in ds.frame[task.sensitive].iloc[row].items()},
            "label": None if pd.isna(label) else str(label), "favourable": bool(task.y[row] == 1),
            "features": _features(task, row),
        })
    return out


def _flagged_by_group(result: FairIJResult, task: TextTask) -> list[dict[str, Any]]:
    """Per sensitive column, group and label (1 = favourable): training rows, flagged rows, weight removed."""
    rows = result.row_ids.astype(np.int64)
    out = []
    for column in task.sensitive:
        table = pd.DataFrame({"group": _text_values(task.dataset.frame[column].iloc[rows]), "label": task.y[rows].astype(int),
                              "flagged": result.flagged, "removed": result.alphas})
        summary = table.groupby(["group", "label"], dropna=False, sort=True).agg(
            train_rows=("flagged", "size"), flagged_rows=("flagged", "sum"), removed_weight=("removed", "sum"))
        for (g, label), r in summary.iterrows():
            out.append({"column": column, "group": None if pd.isna(g) else g, "label": int(label),
                        "train_rows": int(r["train_rows"]), "flagged_rows": int(r["flagged_rows"]),
                        "removed_weight": float(r["removed_weight"])})
    return out


def _comparison(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Headline between-groups disparities per slice, and overall accuracy, before and after (same test rows)."""
    def index(a: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for s in a.get("slices") or []:
            for d in s.get("disparities") or []:
                if d.get("convention") == "between_groups" and d.get("metric") in HEADLINE:
                    out[(s["name"], d["metric"])] = d
        for o in a.get("overall") or []:
            if o.get("metric") == "accuracy":
                out[("overall", "accuracy")] = o
        return out

    b, a = index(before), index(after)
    rows = []
    for key in [k for k in a if k in b]:
        x, z = b[key], a[key]
        change = None if x.get("value") is None or z.get("value") is None else z["value"] - x["value"]
        rows.append({"slice": key[0], "metric": key[1], "ideal": z.get("ideal", 1.0 if key[1] == "accuracy" else None),
                     "before": x.get("value"), "before_ci_low": x.get("ci_low"), "before_ci_high": x.get("ci_high"),
                     "after": z.get("value"), "after_ci_low": z.get("ci_low"), "after_ci_high": z.get("ci_high"),
                     "change": change})
    return rows


def _save_artifact(result: FairIJResult, m: Mitigation, *, group: str, target: Path, training: dict[str, Any],
                   model: Any) -> dict[str, str]:
    """Write ``target/fairij/`` (the repaired prompt as safetensors + JSON, and fairij.json) atomically: into a
    temporary folder beside it, then renamed over the old one.  Returns the files, relative to ``target``."""
    import json

    from fairprompt.mitigation.fairij import ADAPTER_DIR, PROMPT_STEM

    if m.mode == "append":
        files = {"prompt": f"{FAIRIJ_DIR}/{PROMPT_STEM}.json", "prompt_tensors": f"{FAIRIJ_DIR}/{PROMPT_STEM}.safetensors"}
        how = ("FrozenTextClassifier.load(task prompt at task_prompt.path or the cache key), then "
               "model.prompts.append(fairprompt.prompts.load_prompt('fairij/fairij_prompt.json'))")
    else:
        files = {"adapter": f"{FAIRIJ_DIR}/{ADAPTER_DIR}"}
        how = "FrozenTextClassifier.load('fairij/fairij_adapter') (the repaired task prompt and head)"
    files["record"] = f"{FAIRIJ_DIR}/{FAIRIJ_RECORD}"
    if not is_main_process():
        return files
    record = {
        "format": "fairprompt.fairij", "format_version": 1, "mode": m.mode, "measure": m.measure, "group": group,
        "config": _config(m), "chosen_k": result.chosen_k, "n_train": int(result.row_ids.size),
        "task_prompt": {k: training.get(k) for k in ("source", "cache_key", "path")},
        "backbone": model.backbone, "backbone_sha256": model.backbone_sha256,
        "files": {k: v.removeprefix(f"{FAIRIJ_DIR}/") for k, v in files.items()}, "load": how,
    }
    def fill(staging: Path) -> None:
        result.save(staging)
        write_text(staging / FAIRIJ_RECORD, json.dumps(to_jsonable(record), indent=2) + "\n")

    _replace_dir(target, FAIRIJ_DIR, fill)
    result.artifacts = dict(files)
    return files


def _replace_dir(target: Path, name: str, fill: Callable[[Path], None]) -> None:
    """Write ``target/name/`` atomically: ``fill`` a temporary folder beside it, then rename it over the old one."""
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target))
    final = target / name
    try:
        fill(staging)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}-old-", dir=target))
            os.replace(final, old / name)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(staging, 0o777 & ~mask)  # mkdtemp made it private; the report directory's files are not
        os.replace(staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------------------------------- reprogram
def _split_rows(task: TextTask | ImageTask, model: Any, positions: np.ndarray) -> Any:
    if isinstance(task, ImageTask):
        return task.rows(positions)
    return model.encode(task.pick(positions), labels=task.y[positions])


def _predict(task: TextTask | ImageTask, model: Any, rows: Any, *, batch_size: int, progress: Progress | None) -> np.ndarray:
    """P(favourable) for ``rows``, in row order."""
    if isinstance(task, ImageTask):
        return model.predict_proba(images=rows.images, batch_size=batch_size, device="cpu", progress=progress)[:, 1]
    return model.predict_proba(rows, batch_size=batch_size, progress=progress)[:, 1]


def _adapter_sha(model: Any) -> str | None:
    """sha256 of the task prompt and head (text models with a task prompt), else None."""
    from fairprompt.models.frozen import state_sha256

    parameters = model.task_parameters() if hasattr(model, "task_parameters") else []
    return state_sha256({str(i): p for i, p in enumerate(parameters)}) if parameters else None


def _reprogram_step(m: Any, *, spec: Spec, inputs: _MitigationInputs, group: str, results: dict[str, Any],
                    target: Path, progress: Progress | None) -> dict[str, Any]:
    """FairReprogram (triggers trained per lambda, chosen on the validation split), the triggered model's
    test-split audit, ThresholdOptimizer on the same scores, and the reprogram/ artifact."""
    from fairprompt.mitigation.baselines import threshold_optimizer
    from fairprompt.mitigation.reprogram import gap, reprogram

    start = time.perf_counter()
    task, model = inputs.task, inputs.model
    fm = spec.model
    assert fm is not None and fm.kind in ("frozen_text", "frozen_image")
    frame, y, splits = task.dataset.frame, task.y, task.splits
    groups = np.asarray(_text_values(frame[group]), dtype=object)
    train_rows = _split_rows(task, model, splits.train)
    validation_rows = _split_rows(task, model, splits.validation)
    backbone, adapter = model.backbone_sha256, _adapter_sha(model)
    result = reprogram(
        model=model, train_rows=train_rows, validation_rows=validation_rows, train_groups=groups[splits.train],
        validation_groups=groups[splits.validation], config=m.config(), threshold=fm.threshold,
        required_groups=sorted({str(g) for g in groups[splits.test] if g is not None}), batch_size=fm.batch_size,
        progress=progress,
    )

    # the after-audit: the triggered model on the TEST split (never seen by the selection)
    test = splits.test
    y_test = y[test]
    test_rows = _split_rows(task, model, test)
    score = _predict(task, result.triggered_model, test_rows, batch_size=fm.batch_size, progress=progress)
    y_pred = (score >= fm.threshold).astype(np.int8)
    test_groups = frame[task.sensitive].iloc[test].reset_index(drop=True)
    after = _audit(spec, AuditInputs(y_true=y_test, y_pred=y_pred, y_score=score, sample_weight=None,
                                     sensitive=test_groups, data={}, inputs=[]), progress)
    unchanged = result.triggered_model is not model and model.backbone_sha256 == backbone
    adapter_unchanged = None if adapter is None else _adapter_sha(model) == adapter == _adapter_sha(result.triggered_model)
    if not unchanged or adapter_unchanged is False:  # the guarantee, checked on every run
        raise RuntimeError("the backbone or the task adapter changed while training the fairness trigger")

    # the baseline on the same scores: fairlearn's ThresholdOptimizer fitted on the untriggered validation scores
    before_test = inputs.test_scores
    if before_test is None:
        before_test = _predict(task, model, test_rows, batch_size=fm.batch_size, progress=progress)
    before_validation = _predict(task, model, validation_rows, batch_size=fm.batch_size, progress=progress)
    measure = m.measure
    test_group_values = groups[test].astype(str)
    optimized = threshold_optimizer(fit_scores=before_validation, fit_labels=y[splits.validation],
                                    fit_groups=groups[splits.validation].astype(str), scores=before_test,
                                    groups=test_group_values, constraints=measure, seed=m.seed)
    before_pred = (before_test >= fm.threshold).astype(np.int8)

    def row(method: str, description: str, predicted: np.ndarray) -> dict[str, Any]:
        accuracy = float((predicted == y_test).mean())
        return {"method": method, "description": description, "test_accuracy": accuracy,
                "demographic_parity_difference": gap(y_true=y_test, y_pred=predicted, groups=test_group_values,
                                                     measure="demographic_parity"),
                "equalized_odds_difference": gap(y_true=y_test, y_pred=predicted, groups=test_group_values,
                                                 measure="equalized_odds"),
                "accuracy_change": accuracy - float((before_pred == y_test).mean())}

    baselines = [
        row("untriggered model", f"the frozen model as audited, threshold {fm.threshold:g}", before_pred),
        row(f"ThresholdOptimizer ({measure})", "fairlearn's ThresholdOptimizer on the untriggered model's scores, "
            f"fitted on the validation split by {group}; it needs the group at prediction time", np.asarray(optimized)),
        row(f"FairReprogram (lambda {result.chosen_lambda:g})", f"{result.trigger_kind} trigger appended to every input; "
            "needs no group at prediction time", y_pred),
    ]
    after_model = _test_scores(results.get("model") or {}, y_test=y_test, y_pred=y_pred, score=score,
                               threshold=fm.threshold) | {
        "changed": (f"a {result.trigger_kind} trigger ({result.parameters['trigger_trainable']:,} trained parameters) "
                    "in front of the frozen model; backbone" + (", task prompt and head" if adapter else "") + " unchanged"),
        "backbone_sha256": backbone, "backbone_unchanged": unchanged, "adapter_unchanged": adapter_unchanged,
    }
    artifacts = _save_trigger(result, m, group=group, target=target, training=inputs.training, model=model)
    return {
        "task_prompt": {k: inputs.training.get(k) for k in ("source", "cache_key")},
        "reprogram": result.to_dict(),
        "after": after.to_dict(),
        "after_model": after_model,
        "comparison": _comparison(results.get("audit") or {}, after.to_dict()),
        "baselines": baselines,
        "outputs": {"artifact_dir": REPROGRAM_DIR, "artifacts": artifacts},
        "seconds": time.perf_counter() - start,
    }


def _save_trigger(result: ReprogramResult, m: Any, *, group: str, target: Path, training: dict[str, Any],
                  model: Any) -> dict[str, str]:
    """Write ``target/reprogram/`` (trigger.safetensors + trigger.json, and reprogram.json) atomically."""
    import json

    from fairprompt.mitigation.reprogram import RECORD_FILE, TRIGGER_STEM

    files = {"trigger": f"{REPROGRAM_DIR}/{TRIGGER_STEM}.json", "trigger_tensors": f"{REPROGRAM_DIR}/{TRIGGER_STEM}.safetensors",
             "record": f"{REPROGRAM_DIR}/{RECORD_FILE}"}
    if not is_main_process():
        return files
    record = {
        "format": "fairprompt.reprogram", "format_version": 1, "trigger_kind": result.trigger_kind, "group": group,
        "measure": m.measure, "objective": m.objective, "chosen_lambda": result.chosen_lambda, "config": _config(m),
        "trigger": {k: v for k, v in result.trigger_description.items() if k != "image_png"},
        "model": {"backbone": getattr(model, "backbone", None) if isinstance(getattr(model, "backbone", None), str)
                  else (training.get("architecture") or getattr(model, "architecture", None)),
                  "backbone_sha256": model.backbone_sha256,
                  "task_prompt": {k: training.get(k) for k in ("source", "cache_key", "path")}},
        "files": {k: v.removeprefix(f"{REPROGRAM_DIR}/") for k, v in files.items()},
        "load": "fairprompt.mitigation.load_trigger(model, 'reprogram/trigger.json') returns the frozen model with the "
                "trigger in front (the model itself is not changed)",
    }

    def fill(staging: Path) -> None:
        result.save(staging)
        write_text(staging / RECORD_FILE, json.dumps(to_jsonable(record), indent=2) + "\n")

    _replace_dir(target, REPROGRAM_DIR, fill)
    result.artifacts = dict(files)
    return files
