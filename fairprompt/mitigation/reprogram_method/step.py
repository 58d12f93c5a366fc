"""FairReprogram as a repair method of the pipeline (:class:`~fairprompt.mitigation.registry.RepairMethod`):
checks, the run on a task's splits (the operating point chosen on the validation split, never the test split),
its files, and its part of the results record with the baselines on the test split."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.checks import check_validation_groups
from fairprompt.mitigation.reprogram_method.config import ReprogramConfig
from fairprompt.results import to_jsonable
from fairprompt.results.repairs import ReprogramRepair

if TYPE_CHECKING:
    from fairprompt.mitigation.registry import GridPoint, Progress, RepairContext, TestSplit
    from fairprompt.mitigation.reprogram_method.result import ReprogramResult
    from fairprompt.tasks import ImageTask, TextTask


def _text_values(values: pd.Series) -> np.ndarray:
    return np.asarray([None if pd.isna(v) else str(v) for v in values.tolist()], dtype=object)


@dataclass
class ReprogramRun:
    """A finished FairReprogram repair (:class:`~fairprompt.mitigation.registry.RepairRun`)."""

    result: ReprogramResult
    context: RepairContext
    config: ReprogramConfig
    group: str
    settings: Mapping[str, Any]
    groups: np.ndarray            # every data-set row's group (text, None where missing)
    validation_rows: Any          # the validation split as the model reads it
    has_adapter: bool             # the model has a task prompt and head (left unchanged)
    artifacts: dict[str, str] = field(default_factory=dict)
    shipped: dict[str, Any] | None = None  # the record's ``shipped`` block when loaded from a shipped artifact

    setting_name = "lambda"

    @property
    def predictor(self) -> Any:
        return self.result.triggered_model

    def grid(self) -> list[GridPoint]:
        """One trigger per lambda (0: the control), in the grid's order."""
        from fairprompt.mitigation.registry import GridPoint

        return [GridPoint(setting=float(point["lambda"]), predictor=lambda m=model: m, chosen=bool(point.get("chosen")))
                for point, model in zip(self.result.points, self.result.triggered_models, strict=True)]

    @property
    def changed(self) -> str:
        return (f"a {self.result.trigger_kind} trigger ({self.result.parameters['trigger_trainable']:,} trained "
                "parameters) in front of the frozen model; backbone"
                + (", task prompt and head" if self.has_adapter else "") + " unchanged")

    def write(self, target: Path, *, write: bool = True) -> dict[str, Any]:
        from fairprompt.mitigation.reprogram_method.artifact import REPROGRAM_DIR, write_artifact

        self.artifacts = write_artifact(self.result, settings=self.settings, group=self.group, target=target,
                                        training=self.context.training, model=self.context.model, write=write)
        return {"artifact_dir": REPROGRAM_DIR, "artifacts": self.artifacts}

    def record(self, test: TestSplit) -> dict[str, Any]:
        from fairprompt.mitigation.reprogram_method.record import baselines
        from fairprompt.results.repairs import ShippedRepairRef
        from fairprompt.results.reprogram import BaselineRow, ReprogramRecord

        task, model = self.context.task, self.context.model
        splits = task.splits
        before_validation = task.predict(model, self.validation_rows)
        table = baselines(result=self.result, group=self.group, threshold=task.threshold, y_test=test.y_true,
                          test_groups=self.groups[splits.test].astype(str), before_test=test.before_score(),
                          after_pred=test.y_pred, fit_scores=before_validation, fit_labels=task.y[splits.validation],
                          fit_groups=self.groups[splits.validation].astype(str), seed=self.config.seed)
        own: dict[str, Any] = {"reprogram": ReprogramRecord.model_validate(self.result.to_dict()),
                               "baselines": [BaselineRow.model_validate(row) for row in to_jsonable(table)]}
        if self.shipped is not None:
            own["shipped"] = ShippedRepairRef.model_validate(to_jsonable(self.shipped))
        return own

    def ship(self, directory: Path) -> None:
        from fairprompt.mitigation.reprogram_method.shipped import save_result

        save_result(self.result, directory, model=self.context.model)


class ReprogramMethod:
    """FairReprogram: a fairness trigger in front of the frozen model (backbone, task prompt and head unchanged)."""

    name = "reprogram"
    title = "FairReprogram"
    record_type = ReprogramRepair
    config_class = ReprogramConfig
    group_before = "seed"
    frozen_adapter = True
    version = 1

    def check_spec(self, *, model_kind: str | None, task_prompt: bool, config: ReprogramConfig, key: str) -> None:
        if model_kind is None or model_kind == "logistic_regression":
            what = "a predictions file" if model_kind is None else "a logistic_regression model (a table, no input to prompt)"
            raise ValueError(f"'{key}' appends a trigger to the inputs of a frozen_text or frozen_image model, but this "
                             f"spec audits {what}; use such a model, or remove the mitigation")
        for option, used in (("counterfactual", config.counterfactual > 0), ("selection", config.selection == "swap_flips")):
            if not used:
                continue
            from fairprompt.swaps import SwapTerms

            if model_kind != "frozen_text":
                raise ValueError(f"'{key}.{option}' swaps identity phrases in texts, but a {model_kind} model "
                                 "reads none; remove it")
            SwapTerms.load(str(config.swap_terms))  # a one-line error now, not after the audit
        allowed = ("soft", "hard", "conditional") if model_kind == "frozen_text" else ("border", "patch")
        if config.trigger is not None and config.trigger not in allowed:
            raise ValueError(f"'{key}.trigger' is {config.trigger!r}, but a {model_kind} model takes "
                             f"{', '.join(allowed)} triggers")

    def check_data(self, task: TextTask | ImageTask, *, group: str, config: ReprogramConfig, key: str) -> None:
        check_validation_groups(task, group, measure=config.measure, key=key)
        self._check_tuning_groups(task, group, tuning_split=config.tuning_split, key=key)

    @staticmethod
    def _check_tuning_groups(task: TextTask | ImageTask, group: str, *, tuning_split: str, key: str) -> None:
        """Every group of the validation and test splits must have members among the rows a trigger trains on."""
        frame, splits = task.dataset.frame, task.splits
        tuning = splits.train if tuning_split == "train" else splits.validation
        have = set(frame[group].iloc[tuning].dropna().astype(str))
        for name, rows in (("validation", splits.validation), ("test", splits.test)):
            for value in sorted(set(frame[group].iloc[rows].dropna().astype(str))):
                if value not in have:
                    raise FairpromptError(
                        f"{group!r} group {value!r} (in the {name} split) has no members in the tuning split "
                        f"({tuning_split}, {tuning.size} rows) of {task.dataset.source}, so {key} cannot learn about "
                        "it; use another tuning_split or group, or larger splits")

    def check_model(self, model: Any, *, config: ReprogramConfig) -> None:
        """A trigger must fit the model (positions of a text backbone, size of the images)."""
        from fairprompt.mitigation.reprogram_method.triggers import (
            check_generator_budget,
            check_image_trigger,
            check_text_trigger,
            model_modality,
        )

        if model_modality(model) == "image":
            check_image_trigger(kind=config.trigger or "border", image_size=int(model.input_size[0]),
                                width=config.width, patch_size=config.patch_size)
        else:
            check_text_trigger(model, tokens=config.tokens)
            if config.trigger == "conditional":
                check_generator_budget(model, config=config)

    def run(self, context: RepairContext, *, config: ReprogramConfig, group: str, settings: Mapping[str, Any],
            progress: Progress | None = None) -> ReprogramRun:
        from fairprompt.mitigation import shipped
        from fairprompt.mitigation.reprogram_method import repair
        from fairprompt.models.frozen import adapter_sha256

        task, model = context.task, context.model
        splits = task.splits
        groups = _text_values(task.dataset.frame[group])
        validation_rows = task.split_rows(model, splits.validation)
        found = shipped.find_for(context, method=self, config=config, group=group)
        if found is not None:
            from fairprompt.mitigation.reprogram_method.shipped import load_result

            return ReprogramRun(result=load_result(found, model=model), context=context, config=config, group=group,
                                settings=settings, groups=groups, validation_rows=validation_rows,
                                has_adapter=adapter_sha256(model) is not None, shipped=shipped.loaded_record(found))
        train_rows = task.split_rows(model, splits.train)
        swapped_rows = validation_swapped = None
        if config.counterfactual > 0 or config.selection == "swap_flips":
            from fairprompt.swaps import SwapTerms

            terms = SwapTerms.load(str(config.swap_terms))
            if config.counterfactual > 0:
                swapped, _ = terms.swap(task.pick(splits.train), seed=config.seed)
                swapped_rows = model.encode(swapped, labels=task.y[splits.train])
            if config.selection == "swap_flips":
                swapped, _ = terms.swap(task.pick(splits.validation), seed=config.seed)
                validation_swapped = model.encode(swapped, labels=task.y[splits.validation])
        result = repair.reprogram(
            model=model, train_rows=train_rows, validation_rows=validation_rows, train_groups=groups[splits.train],
            validation_groups=groups[splits.validation], config=config, threshold=task.threshold,
            required_groups=sorted({str(g) for g in groups[splits.test] if g is not None}),
            batch_size=task.batch_size, group_column=group, progress=progress, counterfactual_rows=swapped_rows,
            validation_counterfactual_rows=validation_swapped,
        )
        return ReprogramRun(result=result, context=context, config=config, group=group, settings=settings,
                            groups=groups, validation_rows=validation_rows,
                            has_adapter=adapter_sha256(model) is not None)


REPROGRAM = ReprogramMethod()

__all__ = ["REPROGRAM", "ReprogramMethod", "ReprogramRun"]
