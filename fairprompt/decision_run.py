"""A causal_lm spec run: score the discrim-eval subset, compute the discrimination scores, write the record and report.

Writes, each rendered in memory first and then atomically as one step of the run folder (with its manifest):

- ``results.json``: ``schema`` ``fairprompt.decision_audit`` (``decision_results.schema.json`` beside
  :mod:`fairprompt.results`), the subset, the model, both prompts, every demographic value's discrimination score
  with its scenario-bootstrap CI, mean P(yes) and yes-rate, the age slope, the sensitivity to the alternative wording;
- ``discrimination_scores.csv``: one row per demographic value and wording;
- ``decisions.csv``: every scored row (scenario, age, gender, race, artefact, score, P(yes), decision; no text);
- ``report.html``: the scores, which CIs resolve an effect and which do not, the plot, the sensitivity table, and
  with ``model.repairs`` every repair on one plane (mean absolute discrimination score against the Spearman
  correlation of the scenarios' mean scores) with its table.

``model.repairs`` scores the hand-written interventions and the learned trigger on the audited rows and compares each
with the un-repaired model (:func:`fairprompt.decision_repair.compare_part`: paired scenario-bootstrap CIs, over the
values whose un-repaired CI excludes zero, or every value when none does).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from fairprompt import __version__
from fairprompt.results import dumps, package_versions
from fairprompt.run_folder import RunFolder

if TYPE_CHECKING:  # the audit imports torch; re-rendering a report must not
    from fairprompt.decision_audit import DecisionAudit

Progress = Callable[[str, int, int], None]
SCHEMA = "fairprompt.decision_audit"
SCHEMA_VERSION = 1
SCORES_FILE = "discrimination_scores.csv"
DECISIONS_FILE = "decisions.csv"


def json_schema() -> dict[str, Any]:
    """The JSON schema of a decision audit's results.json."""
    text = (resources.files("fairprompt.results") / "decision_results.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def decision_results(result: DecisionAudit, *, name: str, title: str, spec: dict[str, Any] | None,
                     command: Sequence[str] | None, seeds: dict[str, int]) -> dict[str, Any]:
    """The results.json mapping of a decision audit."""
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "name": name, "title": title,
            "created": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(), "fairprompt_version": __version__,
            "command": list(command) if command is not None else None, "packages": package_versions(),
            "spec": spec, "seeds": seeds} | result.to_dict()


def scores_table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per demographic value and wording: the estimate, its CI, mean P(yes), yes-rate, resolved."""
    frames = []
    for wording in ("discrimination", "alternative"):
        block = results.get(wording)
        if not block:
            continue
        rows = list(block["effects"]) + ([block["age_slope"]] if block.get("age_slope") else [])
        frame = pd.DataFrame(rows)[["factor", "value", "estimate", "ci_low", "ci_high", "std_error", "mean_p_yes",
                                    "yes_rate", "rows", "resolved"]]
        frames.append(frame.assign(wording="main" if wording == "discrimination" else "alternative"))
    return pd.concat(frames, ignore_index=True)


def decision_repairs(task: Any, model: Any, *, audited: DecisionAudit, progress: Progress | None) -> dict[str, Any]:
    """Score the spec's interventions and trigger on the audited rows and compare each with the un-repaired model."""
    import numpy as np

    from fairprompt.decision_repair import UNREPAIRED, compare_part
    from fairprompt.mitigation.decision_trigger_method.artifact import load_decision_trigger
    from fairprompt.mitigation.decision_trigger_method.scoring import score_repairs

    triggers, trigger_record = {}, None
    if task.trigger is not None:
        triggered = model.with_trigger(None)  # the audited model stays as it is
        trigger_record = load_decision_trigger(triggered, task.trigger)
        triggers["trigger"] = triggered.trigger
    scores = score_repairs(model, texts=task.rows["text"].tolist(), interventions=task.interventions,
                           triggers=triggers, batch_size=task.batch_size, progress=progress)
    scores[UNREPAIRED] = audited.rows["score"].to_numpy(dtype=np.float64)  # the audit's own scores
    targets = [(e.factor, e.value) for e in audited.scores.resolved()]
    part = compare_part(task.rows, scores, targets=targets or None, n_resamples=task.n_resamples,
                        confidence=task.confidence, seed=task.seed)
    part.pop("boot_abs")
    kinds = {UNREPAIRED: "none"} | {i.name: "intervention" for i in task.interventions} | {"trigger": "trigger"}
    return part | {
        "targets_rule": ("values whose un-repaired CI excludes zero" if targets
                         else "every value (no un-repaired CI excludes zero)"),
        "kinds": {name: kinds[name] for name in part["repairs"]},
        "interventions": [{"name": i.name, "kind": i.kind, "text": i.text} for i in task.interventions],
        "trigger": None if trigger_record is None else {
            "path": str(task.trigger), "tokens": trigger_record["tokens"], "chosen": trigger_record.get("chosen"),
            "rule": trigger_record.get("rule"), "settings": trigger_record.get("settings"),
            "trained_on": trigger_record.get("trained_on"), "chosen_on": trigger_record.get("chosen_on")}}


def run_decision_audit(task: Any, folder: RunFolder, *, name: str, title: str, spec: dict[str, Any],
                       command: Sequence[str] | None, progress: Progress | None,
                       row_output: bool = True) -> tuple[dict[str, Any], Path]:
    """Score, compute and write (module docstring; ``row_output=False`` writes no decisions.csv); returns the
    results mapping and the report's path."""
    from fairprompt.decision_audit import discrim_eval_audit
    from fairprompt.report.decision_view import render_decision_report

    if progress:
        progress("loading the language model", 0, 1)
    model = task.load_model()
    if progress:
        progress("loading the language model", 1, 1)
    result = discrim_eval_audit(
        model, scenarios=task.subset["scenarios"], variants=task.subset["variants"],
        split_seed=int(task.subset["split"]["seed"]), max_scenarios=task.subset["max_scenarios"],
        alternative=task.alternative, n_resamples=task.n_resamples, confidence=task.confidence,
        seed=task.seed, batch_size=task.batch_size, progress=progress)
    results = decision_results(result, name=name, title=title, spec=spec, command=command, seeds=task.seeds)
    if task.repairs:
        results["repairs"] = decision_repairs(task, model, audited=result, progress=progress)
    record = json.loads(dumps(results))
    import jsonschema

    jsonschema.validate(record, json_schema())  # the record is checked whole before anything is written
    html = render_decision_report(record)
    contents: dict[str, str | bytes] = {
        "results.json": dumps(record), SCORES_FILE: scores_table(record).to_csv(index=False), "report.html": html}
    if row_output:
        contents[DECISIONS_FILE] = result.rows.to_csv(index=False)
    if folder.writer:  # files an earlier run of another kind left behind would contradict this one
        for stale in ("compliance.html", "metrics_by_group.csv", "predictions.parquet", DECISIONS_FILE):
            if stale not in contents:
                (folder.path / stale).unlink(missing_ok=True)
    folder.write_step(contents, keep=[])
    return record, folder.path / "report.html"


def rerender_decision_report(directory: Path, *, fmt: str = "html", pdf: bool = False) -> Path | None:
    """Re-render ``directory/report.html`` from its results.json when that is a decision audit's (None when it is
    not one); a compliance page or a PDF of it is refused."""
    from fairprompt.atomic import write_text
    from fairprompt.errors import FairpromptError
    from fairprompt.report.decision_view import render_decision_report

    path = directory / "results.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the general reader names what is wrong
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        return None
    if fmt != "html" or pdf:
        raise FairpromptError(f"{path} is a language model's decision audit, which has no compliance page or PDF; run "
                              f"`fairprompt report {directory}` without --format compliance and --pdf")
    import jsonschema

    try:
        jsonschema.validate(record, json_schema())
    except jsonschema.ValidationError as error:
        raise FairpromptError(f"{path} is not a valid decision audit record ({error.message}); run the audit "
                              "again") from None
    return write_text(directory / "report.html", render_decision_report(record))


__all__ = ["DECISIONS_FILE", "SCHEMA", "SCORES_FILE", "decision_repairs", "decision_results", "json_schema",
           "rerender_decision_report", "run_decision_audit", "scores_table"]
