"""The repair methods a spec can name, and what each provides.

A method (:class:`RepairMethod`) is a small object in its package's ``step`` module: its name, its config
dataclass (the spec's block for it is derived from that class), the checks that run before anything is
trained (against the spec, the data and the loaded model), and :meth:`RepairMethod.run`, which repairs the
frozen model and returns a :class:`RepairRun`: the repaired model, what changed, the method's files and its
part of the results record.  Everything every repair shares (predicting the test split with the repaired
model, the after-audit, the frozen-backbone check, the record's envelope) is done by
:func:`fairprompt.repairs.run_repairs`, which knows no method by name.  Importing this module does not load
torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from fairprompt.errors import FairpromptError, did_you_mean

if TYPE_CHECKING:
    from fairprompt.tasks import ImageTask, TextTask

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RepairContext:
    """What a repair works on: the task (data, splits, prediction settings), the frozen model and its record, and
    the model's test-split scores when the before-audit was computed in this run.  ``use_shipped=False`` makes
    the method train even where a shipped repair artifact matches (:mod:`fairprompt.mitigation.shipped`)."""

    task: TextTask | ImageTask
    model: Any
    training: Mapping[str, Any]
    test_scores: np.ndarray | None = None
    row_output: bool = False  # export every grid point's decisions (predictions.parquet)
    final: bool = False       # also predict the final split with each chosen point (``--final``)
    use_shipped: bool = True  # load a shipped repair artifact when one matches
    scores: dict[str, np.ndarray] = field(default_factory=dict, compare=False, repr=False)

    def audited_scores(self, split: str, *, progress: Progress | None = None) -> np.ndarray:
        """The audited model's P(favourable) on the rows of ``split`` (``validation``, ``test``, ``final``), predicted
        once per run."""
        if split == "test" and self.test_scores is not None:
            return self.test_scores
        if split not in self.scores:
            positions = getattr(self.task.splits, split)
            self.scores[split] = self.task.predict(self.model, self.task.split_rows(self.model, positions),
                                                   progress=progress)
        return self.scores[split]


@dataclass(frozen=True)
class TestSplit:
    """The test split as the after-audit saw it: labels, the repaired model's scores and decisions, and the
    untriggered model's scores (computed on demand when the before-audit was not made in this run)."""

    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray
    before_score: Callable[[], np.ndarray]


@dataclass(frozen=True)
class GridPoint:
    """One model of a repair's grid (one lambda, one k): built on the training split, judged on the validation split.

    ``predictor`` builds the model when called (a copy predicting as the input model does; the input is unchanged),
    so a grid of parameter sets costs one model at a time.  ``same_as_input`` marks a point that decides exactly as
    the audited model (FairIJ's k = 0): its scores are the audited model's, not predicted again.
    """

    setting: float
    predictor: Callable[[], Any]
    chosen: bool
    same_as_input: bool = False


class RepairRun(Protocol):
    """One finished repair, before the after-audit's record is assembled."""

    predictor: Any  # the repaired model: predicts as the input model does (a copy; the input is unchanged)
    changed: str    # what the repair changed, in words (``after_model.changed``)
    setting_name: str  # what a grid point's setting is ("lambda", "k")

    def grid(self) -> list[GridPoint]:
        """Every model of the method's grid that was built (the chosen one among them, ``chosen`` set), in the
        grid's order; the export and the report's frontier show each of them on the validation and test rows."""
        ...

    def write(self, target: Path, *, write: bool = True) -> dict[str, Any]:
        """Write the method's files into the report directory ``target`` (atomically; ``write=False``: only name
        them); returns the record's ``outputs``."""
        ...

    def record(self, test: TestSplit) -> dict[str, Any]:
        """The method's own fields of its repair record (``fairij`` and ``flagged_by_group``; ``reprogram`` and
        ``baselines``; ``shipped`` when it was loaded from a shipped artifact), as typed records
        (:mod:`fairprompt.results`)."""
        ...

    def ship(self, directory: Path) -> None:
        """Write everything this repair's run object is rebuilt from (its grid, the facts its record and files
        show) into ``directory``, as safetensors + JSON (:mod:`fairprompt.mitigation.shipped`)."""
        ...


class RepairMethod(Protocol):
    """A repair a spec can name (see the module docstring)."""

    name: str
    title: str
    record_type: type           # the typed record of a finished repair (fairprompt.results.repairs)
    config_class: type          # a frozen dataclass; the spec's block is derived from its fields
    group_before: str | None    # the config field before which the spec block's ``group`` key goes (None: last)
    frozen_adapter: bool        # the repair must leave the task prompt and head unchanged (checked on every run)
    version: int                # bump when a change to the method makes its shipped repair artifacts stale

    def check_spec(self, *, model_kind: str | None, task_prompt: bool, config: Any, key: str) -> None:
        """Refuse (ValueError, one sentence naming ``key``) a spec whose model this method cannot repair."""
        ...

    def check_data(self, task: TextTask | ImageTask, *, group: str, config: Any, key: str) -> None:
        """Refuse (FairpromptError) data and splits the method cannot work with, before any model is built."""
        ...

    def check_model(self, model: Any, *, config: Any) -> None:
        """Refuse (FairpromptError) settings that do not fit the loaded model, before anything is written."""
        ...

    def run(self, context: RepairContext, *, config: Any, group: str, settings: Mapping[str, Any],
            progress: Progress | None = None) -> RepairRun:
        """Repair ``context.model`` for the gap of sensitive column ``group`` (``settings``: the spec block, as
        recorded); a shipped repair artifact with the same key is loaded instead of training
        (:func:`fairprompt.mitigation.shipped.find_for`)."""
        ...


def methods() -> dict[str, RepairMethod]:
    """Every repair method, by name, in the order the docs list them."""
    from fairprompt.mitigation.fairij_method.step import FAIRIJ
    from fairprompt.mitigation.reprogram_method.step import REPROGRAM

    return {m.name: m for m in (FAIRIJ, REPROGRAM)}


def method(name: str) -> RepairMethod:
    """The repair method called ``name``."""
    known = methods()
    if name not in known:
        raise FairpromptError(f"unknown mitigation {name!r}{did_you_mean(name, list(known))}")
    return known[name]


__all__ = ["GridPoint", "RepairContext", "RepairMethod", "RepairRun", "TestSplit", "method", "methods"]
