"""FairIJ as a repair method of the pipeline (:class:`~fairprompt.mitigation.registry.RepairMethod`): checks,
the run on a task's splits (selection on the validation split, never the test split), its files and its
part of the results record."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fairprompt.mitigation.checks import check_validation_groups
from fairprompt.mitigation.fairij_method.config import FairIJConfig
from fairprompt.results import to_jsonable
from fairprompt.results.repairs import FairIJRepair

if TYPE_CHECKING:
    from fairprompt.mitigation.fairij_method.result import FairIJResult
    from fairprompt.mitigation.registry import GridPoint, Progress, RepairContext, TestSplit
    from fairprompt.tasks import ImageTask, TextTask


@dataclass
class FairIJRun:
    """A finished FairIJ repair (:class:`~fairprompt.mitigation.registry.RepairRun`)."""

    result: FairIJResult
    context: RepairContext
    config: FairIJConfig
    group: str
    settings: Mapping[str, Any]
    artifacts: dict[str, str] = field(default_factory=dict)
    shipped: dict[str, Any] | None = None  # the record's ``shipped`` block when loaded from a shipped artifact

    setting_name = "k"

    @property
    def predictor(self) -> Any:
        return self.result.repaired_model

    def grid(self) -> list[GridPoint]:
        """Mode ij: every k of the curve whose one-step update did not diverge (k = 0 is the audited model's task
        prompt and head); mode append: the chosen k only, the one set of appended tokens trained (the curve that
        chose it is the one-step proxy, not the appended model)."""
        from fairprompt.mitigation.fairij_method.selection import set_task_parameters
        from fairprompt.mitigation.registry import GridPoint

        chosen_k = self.result.chosen_k
        if self.config.mode == "append":
            return [GridPoint(setting=float(chosen_k), predictor=lambda: self.result.repaired_model, chosen=True)]

        def build(k: int) -> Callable[[], Any]:
            def predictor() -> Any:
                if k == chosen_k:
                    return self.result.repaired_model
                copy = self.context.model.adapter_copy()
                set_task_parameters(copy, self.result.grid_parameters[k])
                return copy
            return predictor

        points = []
        for point in self.result.curve:
            k = int(point["k"])
            if k == 0 or k in self.result.grid_parameters:
                points.append(GridPoint(setting=float(k), predictor=build(k), chosen=k == chosen_k, same_as_input=k == 0))
        return points

    @property
    def changed(self) -> str:
        if self.config.mode == "append":
            parameters = sum(p.numel() for p in self.result.repaired_model.prompts.parameters())
            return (f"appended soft prompt ({self.config.append_tokens} tokens, {parameters} parameters); task prompt, "
                    "head and backbone frozen")
        return "task prompt and head (one-step IJ update); backbone frozen"

    def write(self, target: Path, *, write: bool = True) -> dict[str, Any]:
        from fairprompt.mitigation.fairij_method.artifact import FAIRIJ_DIR, INFLUENCE_CSV, write_artifact, write_influence
        from fairprompt.mitigation.fairij_method.record import influence_frame

        frame = influence_frame(self.result, self.context.task)
        self.artifacts = write_artifact(self.result, settings=self.settings, group=self.group, target=target,
                                        training=self.context.training, model=self.context.model, write=write)
        if write:
            write_influence(frame, target)
        return {"influence_csv": INFLUENCE_CSV, "artifact_dir": FAIRIJ_DIR, "artifacts": self.artifacts}

    def record(self, test: TestSplit) -> dict[str, Any]:
        from fairprompt.mitigation.fairij_method.record import TOP_FLAGGED, flagged_by_group, top_flagged
        from fairprompt.results.fairij import FairIJRecord, FlaggedGroup
        from fairprompt.results.repairs import ShippedRepairRef

        summary = self.result.to_dict(top=TOP_FLAGGED)
        summary["top_flagged"] = top_flagged(self.result, self.context.task, self.group)
        summary["artifacts"] = self.artifacts
        own: dict[str, Any] = {"fairij": FairIJRecord.model_validate(to_jsonable(summary)),
                               "flagged_by_group": [FlaggedGroup.model_validate(row) for row in
                                                    to_jsonable(flagged_by_group(self.result, self.context.task))]}
        if self.shipped is not None:
            own["shipped"] = ShippedRepairRef.model_validate(to_jsonable(self.shipped))
        return own

    def ship(self, directory: Path) -> None:
        from fairprompt.mitigation.fairij_method.shipped import save_result

        save_result(self.result, directory)


class FairIJMethod:
    """FairIJ: down-weight the training rows that push the model toward the gap, repair the task prompt."""

    name = "fairij"
    title = "FairIJ"
    record_type = FairIJRepair
    config_class = FairIJConfig
    group_before = "damping"
    frozen_adapter = False
    version = 1

    def check_spec(self, *, model_kind: str | None, task_prompt: bool, config: Any, key: str) -> None:
        if model_kind != "frozen_text":
            what = "a predictions file" if model_kind is None else f"model.kind {model_kind}"
            raise ValueError(f"'{key}' repairs the task prompt of a frozen_text model, but this spec audits {what}; "
                             "use model.kind frozen_text with a task_prompt, or remove the mitigation")
        if not task_prompt:
            raise ValueError(f"'{key}' repairs a task prompt, but model.task_prompt is none (a trained classifier "
                             "used as it is); give model.task_prompt, e.g. {tokens: 8}, or remove the mitigation")

    def check_data(self, task: TextTask | ImageTask, *, group: str, config: FairIJConfig, key: str) -> None:
        check_validation_groups(task, group, measure=config.measure, key=key)

    def check_model(self, model: Any, *, config: FairIJConfig) -> None:
        return None

    def run(self, context: RepairContext, *, config: FairIJConfig, group: str, settings: Mapping[str, Any],
            progress: Progress | None = None) -> FairIJRun:
        from fairprompt.mitigation import shipped
        from fairprompt.mitigation.fairij_method import repair
        from fairprompt.mitigation.fairij_method.record import text_values

        found = shipped.find_for(context, method=self, config=config, group=group)
        if found is not None:
            from fairprompt.mitigation.fairij_method.shipped import load_result

            return FairIJRun(result=load_result(found, model=context.model), context=context, config=config, group=group,
                             settings=settings, shipped=shipped.loaded_record(found))
        task, model = context.task, context.model
        splits = task.splits
        validation_groups = np.asarray(text_values(task.dataset.frame[group].iloc[splits.validation]), dtype=object)
        result = repair.fairij(
            model=model, train_rows=task.split_rows(model, splits.train),
            validation_rows=task.split_rows(model, splits.validation), validation_groups=validation_groups,
            config=config, train_ids=splits.train, threshold=task.threshold, group_column=group, progress=progress,
        )
        return FairIJRun(result=result, context=context, config=config, group=group, settings=settings)


FAIRIJ = FairIJMethod()

__all__ = ["FAIRIJ", "FairIJMethod", "FairIJRun"]
