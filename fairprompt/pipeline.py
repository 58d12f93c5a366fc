"""Runs a spec: load -> (train and predict) -> audit -> results.json -> report.

Every check on the inputs happens before anything is written, and the outputs
are rendered in memory first, then each written atomically, so a bad input or a
crash leaves no half-written report directory behind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairprompt.atomic import write_text
from fairprompt.metrics import Audit, audit
from fairprompt.prepare import AuditInputs, prepare_model, prepare_predictions
from fairprompt.report import render_html
from fairprompt.report.results import build_results, dumps
from fairprompt.spec import Spec

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RunOutput:
    """Where a run wrote its files, and what it found."""

    out_dir: Path
    results_path: Path
    report_path: Path
    csv_path: Path
    audit: Audit
    results: dict[str, Any]


def is_main_process() -> bool:
    """False only in the non-main processes of a torch.distributed run."""
    import os

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


def run(
    spec: Spec,
    *,
    out_dir: str | Path | None = None,
    command: Sequence[str] | None = None,
    progress: Progress | None = None,
    use_cache: bool = True,
    use_shipped: bool = True,
) -> RunOutput:
    """Run everything the spec names and write results.json, metrics_by_group.csv and report.html.

    ``use_cache=False`` ignores (and does not fill) the cache of trained task
    prompts and fixture models, and the prompts shipped with fairprompt;
    ``use_shipped=False`` ignores only the shipped prompts.  Under several processes (``torchrun`` or
    ``accelerate launch``) every process trains and predicts its shard, and
    only the main process audits and writes.
    """
    if spec.predictions is not None:
        prepared = prepare_predictions(spec)
    else:
        prepared = prepare_model(spec, progress=progress, use_cache=use_cache, use_shipped=use_shipped)
    a = spec.audit
    result = audit(
        y_true=prepared.y_true, y_pred=prepared.y_pred, y_score=prepared.y_score, sample_weight=prepared.sample_weight,
        sensitive=prepared.sensitive, reference=a.reference, n_boot=a.n_boot, ci_level=a.ci_level, seed=a.seed,
        min_group_size=a.min_group_size, impact_threshold=a.impact_threshold, bootstrap=a.bootstrap, progress=progress,
    )
    seeds = {"bootstrap": a.seed} | model_seeds(spec)
    results = build_results(
        name=spec.name, title=spec.title or spec.name, audit=result.to_dict(),
        data=prepared.data | {"rows_audited": result.n_rows}, inputs=prepared.inputs, seeds=seeds,
        model=prepared.model, spec=spec.model_dump(mode="json"), command=command,
    )
    if progress:
        progress("rendering the report", 0, 1)
    json_text = dumps(results)
    html_text = render_html(results)
    csv_text = result.by_group().to_csv(index=False)
    target = spec.output_dir(out_dir)
    paths = (target / "results.json", target / "metrics_by_group.csv", target / "report.html")
    if is_main_process():
        for path, text in zip(paths, (json_text, csv_text, html_text)):
            write_text(path, text)
    if progress:
        progress("rendering the report", 1, 1)
    return RunOutput(out_dir=target, results_path=paths[0], csv_path=paths[1], report_path=paths[2], audit=result, results=results)
