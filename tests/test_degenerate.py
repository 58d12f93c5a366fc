"""A degenerate model never gets a clean verdict; the notes beside it (yardstick, training) and the report's small
guarantees (coinciding plot labels, bidirectional isolation, no interval headers without intervals)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import run_cli
from fairprompt.metrics import audit
from fairprompt.metrics.counts import CountTable
from fairprompt.metrics.degenerate import MAX_DECISION_SHARE, MIN_GROUP_ROWS, MIN_LABEL_SHARE, assess_degeneracy
from fairprompt.metrics.paired import paired_accuracy_difference
from fairprompt.models.training import TrainHistory, constant_predictor_warning
from fairprompt.report import render_html
from fairprompt.report.compliance import render_compliance
from fairprompt.report.format import isolate_bidi
from fairprompt.report.repair_plots import accuracy_fairness_figure, coinciding
from fairprompt.report.summary_view import TradeoffPoint
from fairprompt.results import build_results, load_results, parse_results
from fairprompt.results.run import MIGRATION_NOTE, SCHEMA_VERSION
from report_factories import text_model


def _codes(result) -> set[str]:
    return {r.code for r in result.degeneracy.reasons}


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    y = (rng.random(n) < 0.4).astype(int)
    score = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.15, n), 0, 1)
    return pd.DataFrame({"sex": sex, "y": y, "score": score, "good": (score > 0.5).astype(int)})


# The rule ------------------------------------------------------------------------------------------------------------

def test_an_informative_model_is_not_degenerate() -> None:
    f = _frame()
    result = audit(y_true=f["y"], y_pred=f["good"], sensitive=f[["sex"]], n_boot=200)
    assert not result.degenerate and result.degeneracy.bound == "bootstrap"
    d = result.degeneracy
    assert d.margin_ci_low <= d.margin <= d.margin_ci_high and d.margin_ci_low > 0
    assert d.accuracy == pytest.approx((f["y"] == f["good"]).mean()) and d.majority_accuracy == pytest.approx(0.6, abs=0.05)


def test_every_row_one_decision_is_constant_and_no_better_than_the_majority() -> None:
    f = _frame()
    result = audit(y_true=f["y"], y_pred=np.ones(len(f), int), sensitive=f[["sex"]], n_boot=50)
    assert _codes(result) == {"constant", "no_better_than_majority"}
    assert "every one of the 400 audited rows gets the positive decision" in result.degeneracy.reasons[0].message
    assert result.degeneracy.margin < 0  # always "yes" on a 40% positive label is worse than always "no"


def test_a_group_of_one_column_with_one_decision_is_degenerate() -> None:
    f = _frame()
    predicted = f["good"].to_numpy().copy()
    predicted[f["sex"] == "F"] = 0  # women: never the favourable decision, though 40% of them have the label
    result = audit(y_true=f["y"], y_pred=predicted, sensitive=f[["sex"]], n_boot=50)
    [reason] = [r for r in result.degeneracy.reasons if r.code == "constant_in_group"]
    assert reason.message.startswith("sex = F: 100.0% of its") and "negative decision" in reason.message


def test_the_group_rule_thresholds() -> None:
    def table(rows: list[tuple[str, int, int]]) -> CountTable:
        """(group, label, decision) rows; every other row of the second group is informative."""
        frame = pd.DataFrame(rows, columns=["g", "y", "p"])
        return CountTable.from_arrays(y_true=frame["y"].to_numpy(), y_pred=frame["p"].to_numpy(), sensitive=frame[["g"]])

    other = [("b", i % 2, i % 2) for i in range(200)]  # a perfect group keeps the whole model informative

    def group(n: int, positives: int, decided: int) -> list[tuple[str, int, int]]:
        return [("a", int(i < positives), int(i < decided)) for i in range(n)]

    def codes(rows: list[tuple[str, int, int]]) -> set[str]:
        return {r.code for r in assess_degeneracy(table(rows + other)).reasons}

    n = 200
    assert "constant_in_group" in codes(group(n, 40, 0))  # 20% positive label, nobody selected
    assert "constant_in_group" in codes(group(n, 40, 1))  # 99.5% one decision >= 99%
    assert "constant_in_group" not in codes(group(n, 40, 3))  # 98.5%: below MAX_DECISION_SHARE
    assert "constant_in_group" not in codes(group(MIN_GROUP_ROWS - 1, 5, 0))  # too few rows
    assert "constant_in_group" in codes(group(MIN_GROUP_ROWS, 5, 0))
    assert "constant_in_group" not in codes(group(n, int(n * MIN_LABEL_SHARE) - 1, 0))  # one label all but absent
    assert "constant_in_group" in codes(group(n, int(n * MIN_LABEL_SHARE), 0))
    assert MAX_DECISION_SHARE == 0.99 and MIN_GROUP_ROWS == 20 and MIN_LABEL_SHARE == 0.05  # the documented rule


def test_an_intersection_with_one_decision_alone_is_not_degenerate() -> None:
    """Only single sensitive columns count: a small intersection can fairly get one decision."""
    rng = np.random.default_rng(3)
    n = 1200
    frame = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "race": rng.choice(["A", "B", "C"], n)})
    y = (rng.random(n) < 0.5).astype(int)
    predicted = np.where(rng.random(n) < 0.85, y, 1 - y)
    corner = ((frame["sex"] == "F") & (frame["race"] == "C")).to_numpy()
    predicted[corner] = 0
    result = audit(y_true=y, y_pred=predicted, sensitive=frame, n_boot=50)
    assert not result.degenerate


def test_no_better_than_the_majority_uses_the_paired_bootstrap_bound() -> None:
    rng = np.random.default_rng(1)
    n = 600
    y = (rng.random(n) < 0.7).astype(int)
    lucky = np.where(rng.random(n) < 0.71, y, 1 - y)  # barely informative: accuracy ~0.71 vs majority ~0.70
    sex = pd.DataFrame({"sex": rng.choice(["F", "M"], n)})
    with_ci = audit(y_true=y, y_pred=lucky, sensitive=sex, n_boot=300, seed=0)
    assert with_ci.degeneracy.margin_ci_high is not None
    assert ("no_better_than_majority" in _codes(with_ci)) == (with_ci.degeneracy.margin_ci_high <= 0)
    random = rng.integers(0, 2, n)  # a coin: well below the majority class
    result = audit(y_true=y, y_pred=random, sensitive=sex, n_boot=300, seed=0)
    assert _codes(result) == {"no_better_than_majority"} and result.degeneracy.margin_ci_high < 0
    point = audit(y_true=y, y_pred=random, sensitive=sex, n_boot=0)
    assert point.degeneracy.bound == "point" and point.degeneracy.margin_ci_high is None
    assert "(no bootstrap)" in point.degeneracy.reasons[-1].message


# results.json and the report ------------------------------------------------------------------------------------------

def _results(predicted: np.ndarray, *, n_boot: int = 40, mitigations: list | None = None,
             model: dict | None = None) -> dict:
    f = _frame()
    result = audit(y_true=f["y"], y_pred=predicted, sensitive=f[["sex"]], n_boot=n_boot)
    return build_results(name="t", audit=result.to_dict(), data={"label": "y", "sensitive": ["sex"]},
                         inputs=[], seeds={}, model=model, mitigations=mitigations, created="2025-01-01T00:00:00+00:00")


def test_the_report_says_degenerate_at_the_top_and_never_pass() -> None:
    constant = _results(np.zeros(400, int))
    record = parse_results(constant)
    assert record.audit.is_degenerate and record.schema_version == SCHEMA_VERSION
    html = render_html(record)
    top = html.split('id="at-a-glance"', 1)[1].split("</dl>", 1)[0]
    assert "The model as audited is degenerate" in top and "gets the negative decision" in top
    assert ">PASS<" not in html.split('id="summary"', 1)[1].split("</section>", 1)[0]
    assert 'class="verdict-overall review"' in html and 'id="degenerate"' in html
    assert "at least 20 rows" in html and "at least 99%" in html  # the rule with its thresholds
    compliance = render_compliance(record)
    assert "DEGENERATE MODEL" in compliance and 'class="status pass"' not in compliance.split("</table>", 1)[0]
    informative = render_html(parse_results(_results(_frame()["good"].to_numpy())))
    assert "degenerate" not in informative.split('id="at-a-glance"', 1)[1].split("</dl>", 1)[0]


def test_a_predictions_audit_of_a_constant_model_warns_and_records_why(tmp_path: Path) -> None:
    f = _frame()
    f["yhat"] = 1
    f.to_csv(tmp_path / "p.csv", index=False)
    code, out, err = run_cli("audit", "--predictions", str(tmp_path / "p.csv"), "--label", "y", "--prediction", "yhat",
                             "--sensitive", "sex", "--n-boot", "20", "--out", str(tmp_path / "out"))
    assert code == 0, err
    assert "warning: the audited model is degenerate (every one of the 400 audited rows gets the positive decision" in err
    found = json.loads((tmp_path / "out" / "results.json").read_text())["audit"]["degenerate"]
    assert found["degenerate"] is True and [r["code"] for r in found["reasons"]] == ["constant", "no_better_than_majority"]
    assert found["thresholds"] == {"min_group_rows": 20, "min_label_share": 0.05, "max_decision_share": 0.99}


def test_results_of_schema_version_1_are_migrated_with_the_check(tmp_path: Path) -> None:
    raw = _results(np.zeros(400, int))
    raw["schema_version"] = 1
    del raw["audit"]["degenerate"]
    (tmp_path / "results.json").write_text(json.dumps(raw))
    record = load_results(tmp_path)
    assert record.schema_version == SCHEMA_VERSION and record.audit.is_degenerate
    assert record.audit.degenerate.bound == "point" and record.audit.degenerate.note == MIGRATION_NOTE
    code, out, err = run_cli("report", str(tmp_path))
    assert code == 0, err
    assert "The model as audited is degenerate" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_repairs_of_a_degenerate_model_say_so() -> None:
    before = _results(np.zeros(400, int))
    after = dict(before["audit"])
    repair = {"name": "fairij", "status": "ok", "group": "sex", "config": {"group": "sex"},
              "fairij": {"chosen_k": 10, "n_train": 500}, "after": after,
              "after_model": {"test_accuracy": 0.6, "before_test_accuracy": 0.6}}
    html = render_html(parse_results(_results(np.zeros(400, int), mitigations=[repair])))
    glance = html.split('id="at-a-glance"', 1)[1].split("</section>", 1)[0]
    assert "the repairs ran on it all the same" in glance
    assert "repaired a degenerate model" in glance and "the repaired model is degenerate" in glance


def test_a_model_well_below_the_yardstick_gets_a_note_not_a_degenerate_verdict() -> None:
    def with_gap(gap: float, low: float) -> str:
        model = text_model()
        model["reference"] = {"kind": "logistic_regression", "test_accuracy": 0.80, "accuracy_gap": gap,
                              "accuracy_gap_ci_low": low, "accuracy_gap_ci_high": gap + 0.02}
        return render_html(parse_results(_results(_frame()["good"].to_numpy(), model=model)))

    noted = with_gap(0.05, 0.03)
    assert "points below the logistic-regression yardstick" in noted.split('id="at-a-glance"', 1)[1].split("</dl>", 1)[0]
    assert 'class="model-note"' in noted and "The model as audited is degenerate" not in noted
    assert "yardstick" not in with_gap(0.05, -0.01).split('id="at-a-glance"', 1)[1].split("</dl>", 1)[0]  # CI reaches 0
    assert "yardstick" not in with_gap(0.015, 0.005).split('id="at-a-glance"', 1)[1].split("</dl>", 1)[0]  # < 2 points


def test_the_paired_accuracy_difference_is_exact_and_its_interval_holds_the_point() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    first = np.where(rng.random(2000) < 0.8, y, 1 - y)
    second = np.where(rng.random(2000) < 0.7, y, 1 - y)
    gap, low, high = paired_accuracy_difference(y_true=y, first=first, second=second, n_boot=500, seed=0)
    assert gap == pytest.approx((first == y).mean() - (second == y).mean(), abs=1e-12)
    assert low < gap < high and low > 0
    assert paired_accuracy_difference(y_true=y, first=first, second=first, n_boot=100) == (0.0, 0.0, 0.0)
    assert paired_accuracy_difference(y_true=y, first=first, second=second, n_boot=0)[1:] == (None, None)


# Training that ends in a constant predictor ----------------------------------------------------------------------------

def test_training_that_ends_constant_says_so_and_what_to_change(caplog: pytest.LogCaptureFixture) -> None:
    history = TrainHistory(epochs=[{"epoch": 1, "val_positive_share": 0.4}, {"epoch": 2, "val_positive_share": 1.0}],
                           best_epoch=2, validation_rows=200)
    message = constant_predictor_warning(history)
    assert message is not None and "every one of the 200 validation rows is predicted positive" in message
    for advice in ("class balance", "more training rows", "learning rate", "more epochs"):
        assert advice in message
    assert constant_predictor_warning(TrainHistory(epochs=[{"epoch": 1, "val_positive_share": 0.4}], best_epoch=1)) is None


def test_a_real_task_prompt_trained_on_one_label_warns(tiny_backbone: str, caplog: pytest.LogCaptureFixture) -> None:
    from fairprompt.models.text import FrozenTextClassifier
    from fairprompt.models.training import TrainConfig

    model = FrozenTextClassifier.with_task_prompt(backbone=tiny_backbone, num_virtual_tokens=2, init="random", seed=0)
    texts = [f"applicant {i} asks for credit" for i in range(24)]
    train = model.encode(texts[:16], labels=np.ones(16, dtype=np.int64))
    validation = model.encode(texts[16:], labels=np.array([0, 1] * 4))
    with caplog.at_level(logging.WARNING, logger="fairprompt"):
        history = model.fit(train_rows=train, validation_rows=validation,
                            config=TrainConfig(max_epochs=2, patience=2, batch_size=8, lr=0.1, head_lr=0.1))
    best = next(e for e in history.epochs if e["epoch"] == history.best_epoch)
    assert best["val_positive_share"] == 1.0  # trained on "yes" only, it says "yes" to everyone
    assert history.warnings and "training ended in a constant predictor" in history.warnings[0]
    assert any("training ended in a constant predictor" in r.getMessage() for r in caplog.records)


# Small guarantees of the report --------------------------------------------------------------------------------------

def test_coinciding_points_of_the_tradeoff_plot_are_labelled_once() -> None:
    points = [TradeoffPoint("before (as audited)", "before", 0.0, 0.7),
              TradeoffPoint("after FairIJ repair (k = 10)", "after", 0.0, 0.7),
              TradeoffPoint("after FairReprogram (λ = 1)", "after", 0.0, 0.7),
              TradeoffPoint("ThresholdOptimizer", "baseline", 0.05, 0.65)]
    assert [first.label for _, first in coinciding(points)] == [points[0].label] * 3 + [points[3].label]
    svg = str(accuracy_fairness_figure(points=points, x_label="DP", y_label="accuracy", ideal=0.0, prefix="t-"))
    texts = [t for t in svg.split("<text")[1:]]
    anchors = [t.split(">", 1)[0] for t in texts if any(p.label.split(" (")[0] in t for p in points[:3])]
    assert len(anchors) == len(set(anchors))  # no two of the three labels drawn at the same place
    for p in points:
        assert svg.count(p.label.replace("&", "&amp;")) == 1


def test_user_strings_cannot_reorder_the_page() -> None:
    f = _frame()
    f["sex"] = f["sex"].map({"F": "F\u202eelamef", "M": "\u05e0\u05e9\u05d9\u05dd"})  # an override; Hebrew
    result = audit(y_true=f["y"], y_pred=f["good"], sensitive=f[["sex"]], n_boot=20)
    results = build_results(name="t", audit=result.to_dict(), data={"sensitive": ["sex"]}, inputs=[], seeds={})
    for page in (render_html(results), render_compliance(results)):
        assert "\u202e" not in page and "F&lt;U+202E RLO&gt;elamef" in page  # shown, never obeyed (figures too)
        text = re.sub(r"<svg\b.*?</svg>", "", page, flags=re.S)  # a figure's labels are <text> elements of their own
        hebrew = [i for i in range(len(text)) if text.startswith("\u05e0\u05e9\u05d9\u05dd", i)]
        assert hebrew and all(text[:i].count("\u2068") > text[:i].count("\u2069") for i in hebrew)  # always isolated
    assert isolate_bidi("plain") == "plain" and isolate_bidi("\u2069\u202e") == "<U+2069 PDI><U+202E RLO>"
    assert isolate_bidi("a \u05d0") == "\u2068a \u05d0\u2069"


def test_no_interval_headers_without_intervals() -> None:
    f = _frame()
    html = render_html(parse_results(_results(f["good"].to_numpy(), n_boot=0)))
    assert "CI]" not in html and "% CI)" not in html and "% confidence intervals" not in html
    assert "CI]" in render_html(parse_results(_results(f["good"].to_numpy(), n_boot=20)))
