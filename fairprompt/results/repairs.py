"""A repair's record (``mitigations[]``): finished (``ok``, one record type per method), ``failed`` or ``not_run``.

Every repair record starts with ``name``, ``status``, ``config`` (its settings, as the spec gave them) and
``group`` (the sensitive column it repairs). A finished repair adds the repaired model's after-audit on the
same test rows (``after``, laid out as ``audit``), its test scores (``after_model``), the before/after table of
the headline disparities (``comparison``), the files it wrote and its method's own part (``fairij`` or
``reprogram``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Discriminator, Field, Tag

from fairprompt.results.audit import AuditRecord
from fairprompt.results.base import Real, Record
from fairprompt.results.fairij import FairIJRecord, FlaggedGroup
from fairprompt.results.reprogram import BaselineRow, ReprogramRecord


class TaskPromptRef(Record):
    """Which task prompt was repaired (where it came from and its cache key)."""

    source: str | None = None
    cache_key: str | None = None


class ShippedRepairRef(Record):
    """A repair loaded from a shipped repair artifact instead of trained in this run: its key, and how, where and
    when it was trained (:mod:`fairprompt.mitigation.shipped`)."""

    loaded: bool
    key: str
    spec: str | None = None
    trained_at: str | None = None
    trained_by: list[str] | None = None
    machine: str | None = None
    seconds: Real | None = None


class AfterModel(Record):
    """The repaired model on the test rows, beside the model as audited (same rows)."""

    test_rows: int | None = None
    threshold: Real | None = None
    test_accuracy: Real | None = None
    test_auc: Real | None = None
    before_test_accuracy: Real | None = None
    before_test_auc: Real | None = None
    accuracy_change: Real | None = None
    auc_change: Real | None = None
    changed: str | None = None
    backbone_sha256: str | None = None
    backbone_unchanged: bool | None = None
    adapter_unchanged: bool | None = None


class ComparisonRow(Record):
    """A headline disparity (or ``overall`` accuracy) before and after, each with its own audit's interval."""

    slice: str
    metric: str
    ideal: Real | None = None
    before: Real | None = None
    before_ci_low: Real | None = None
    before_ci_high: Real | None = None
    after: Real | None = None
    after_ci_low: Real | None = None
    after_ci_high: Real | None = None
    change: Real | None = None


class FrontierPoint(Record):
    """One model of a repair's grid on one split: its place on the accuracy-fairness plane (gaps between the groups of
    the repair's column, as fairlearn defines them)."""

    setting: Real | None = None
    split: str
    rows: int | None = None
    accuracy: Real | None = None
    demographic_parity_difference: Real | None = None
    equalized_odds_difference: Real | None = None
    chosen: bool | None = None
    same_as_input: bool | None = None


class Outputs(Record):
    """Files a repair wrote, relative to the report directory."""

    influence_csv: str | None = None
    artifact_dir: str | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)


class NotRunRepair(Record):
    """A repair listed in the spec that has not run (yet)."""

    name: str
    status: Literal["not_run"]
    config: dict[str, Any] | None = None
    group: str | None = None


class FailedRepair(Record):
    """A repair that failed: its message; the before-audit stands."""

    name: str
    status: Literal["failed"]
    config: dict[str, Any] | None = None
    group: str | None = None
    error: str | None = None
    created: str | None = None
    command: list[str] | None = None


class FairIJRepair(Record):
    """A finished FairIJ repair."""

    name: Literal["fairij"]
    status: Literal["ok"]
    config: dict[str, Any] | None = None
    group: str | None = None
    created: str | None = None
    command: list[str] | None = None
    before_audit: str | None = None
    task_prompt: TaskPromptRef | None = None
    shipped: ShippedRepairRef | None = None
    fairij: FairIJRecord | None = None
    flagged_by_group: list[FlaggedGroup] | None = None
    after: AuditRecord | None = None
    after_model: AfterModel | None = None
    comparison: list[ComparisonRow] | None = None
    setting_name: str | None = None
    frontier: list[FrontierPoint] | None = None
    outputs: Outputs | None = None
    seconds: Real | None = None


class ReprogramRepair(Record):
    """A finished FairReprogram repair."""

    name: Literal["reprogram"]
    status: Literal["ok"]
    config: dict[str, Any] | None = None
    group: str | None = None
    created: str | None = None
    command: list[str] | None = None
    before_audit: str | None = None
    task_prompt: TaskPromptRef | None = None
    shipped: ShippedRepairRef | None = None
    reprogram: ReprogramRecord | None = None
    after: AuditRecord | None = None
    after_model: AfterModel | None = None
    comparison: list[ComparisonRow] | None = None
    baselines: list[BaselineRow] | None = None
    setting_name: str | None = None
    frontier: list[FrontierPoint] | None = None
    outputs: Outputs | None = None
    seconds: Real | None = None


FinishedRepair: TypeAlias = FairIJRepair | ReprogramRepair
REPAIR_NAMES: tuple[str, ...] = ("fairij", "reprogram")


def _repair_tag(value: Any) -> str | None:
    """The record type of a ``mitigations[]`` entry: its status when it did not finish, else its method."""
    if isinstance(value, dict):
        status, name = value.get("status"), value.get("name")
    else:
        status, name = getattr(value, "status", None), getattr(value, "name", None)
    if status in ("failed", "not_run"):
        return str(status)
    if status == "ok" and name in REPAIR_NAMES:
        return str(name)
    return None


RepairRecord: TypeAlias = Annotated[
    Annotated[FairIJRepair, Tag("fairij")] | Annotated[ReprogramRepair, Tag("reprogram")]
    | Annotated[FailedRepair, Tag("failed")] | Annotated[NotRunRepair, Tag("not_run")],
    Discriminator(_repair_tag, custom_error_type="repair_kind",
                  custom_error_message="a repair is {'name': 'fairij' or 'reprogram', 'status': 'ok', ...}, or has "
                                       "status 'failed' or 'not_run'"),
]
