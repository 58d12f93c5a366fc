"""predictions.parquet: every decision of the audited model and of each repair's grid point, and the report's numbers
recomputed from it.

Real parts, cut down (as in test_mitigate): the pretrained all-MiniLM-L6-v2 backbone and the embedded Adult data, 32
training, 32 validation, 96 test and 48 final rows, one epoch of task-prompt training, FairIJ (mode ij) and
FairReprogram (lambdas 0 and 1, one epoch) in one spec run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import assert_user_error, run_cli, write_spec
from fairprompt.decisions import LEADING, PREDICTIONS_FILE, TRAILING, read_decisions
from fairprompt.metrics.point import group_gap
from fairprompt.run_folder import verify

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

SPEC = {
    "name": "tiny_decisions",
    "data": {"dataset": "adult"},
    "model": {
        "kind": "frozen_text",
        "task_prompt": {"tokens": 4, "init": "text", "init_text": "Does this person earn more than 50K?"},
        "text": {"exclude": ["fnlwgt", "education-num"]},
        "splits": {"train": 32, "validation": 32, "test": 96, "final": 48, "seed": 0},
        "training": {"max_epochs": 1, "patience": 1, "batch_size": 16},
        "batch_size": 32,
    },
    "audit": {"sensitive": ["sex", "race"], "n_boot": 20},
    "mitigations": [
        {"fairij": {"mode": "ij", "selection": "predicted", "utility_budget": 1.0, "max_fraction": 0.1}},
        {"reprogram": {"lambdas": [0, 1], "epochs": 1, "tokens": 2, "max_rows": 32}},
    ],
}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _scratch_cache(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRPROMPT_CACHE", str(shared_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("decisions")
    spec = write_spec(root, SPEC)
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAIRPROMPT_CACHE", str(shared_cache))
        patch.setenv("HF_HUB_OFFLINE", "1")
        code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out))
    assert code == 0, err
    return spec, out


def _headline(audit: dict, metric: str, column: str = "sex") -> float:
    [row] = [d for s in audit["slices"] if s["name"] == column for d in s["disparities"]
             if d["metric"] == metric and d["convention"] == "between_groups"]
    return row["value"]


def _plane(rows: pd.DataFrame, column: str = "sex") -> tuple[float, float, float]:
    y, d, g = rows["label"].to_numpy(), rows["decision"].to_numpy(), rows[column].astype(str).to_numpy()
    return (float((y == d).mean()), group_gap(y_true=y, y_pred=d, groups=g, measure="demographic_parity"),
            group_gap(y_true=y, y_pred=d, groups=g, measure="equalized_odds"))


def test_the_export_holds_every_decision_and_reproduces_the_report(run: tuple[Path, Path]) -> None:
    _, out = run
    results = json.loads((out / "results.json").read_text())
    frame = read_decisions(out / PREDICTIONS_FILE)
    assert list(frame.columns) == [*LEADING, "sex", "race", *TRAILING]
    assert verify(out).complete and PREDICTIONS_FILE in verify(out).files
    assert results["decisions"] == {"file": PREDICTIONS_FILE, "rows": len(frame),
                                    "methods": ["audited", "fairij", "reprogram"], "splits": ["validation", "test"],
                                    "final_read": False}
    assert not (frame["split"] == "final").any(), "the final split is read only with --final"
    assert set(frame["decision"]) <= {0, 1} and set(frame["label"]) <= {0, 1}
    assert ((frame["score"] >= results["model"]["threshold"]) == (frame["decision"] == 1)).all()

    # the audited model: its test rows give the report's accuracy, DP and EO by sex
    audited = frame[(frame["method"] == "audited") & (frame["split"] == "test")]
    assert len(audited) == 96 and audited["setting"].isna().all() and audited["chosen"].all()
    accuracy, dp, eo = _plane(audited)
    assert accuracy == pytest.approx(results["model"]["test_accuracy"], abs=1e-12)
    assert dp == pytest.approx(_headline(results["audit"], "demographic_parity_difference"), abs=1e-12)
    assert eo == pytest.approx(_headline(results["audit"], "equalized_odds_difference"), abs=1e-12)
    assert len(frame[(frame["method"] == "audited") & (frame["split"] == "validation")]) == 32

    for record in results["mitigations"]:
        rows = frame[frame["method"] == record["name"]]
        settings = sorted(set(rows["setting"].astype(float)))
        grid = ([p["k"] for p in record["fairij"]["curve"]] if record["name"] == "fairij"
                else [p["lambda"] for p in record["reprogram"]["points"]])
        assert settings == sorted(float(s) for s in grid), "every grid point is exported"
        for setting in settings:
            for split, n in (("validation", 32), ("test", 96)):
                assert len(rows[(rows["setting"] == setting) & (rows["split"] == split)]) == n
        # the chosen point: one setting, its test rows give the after-audit
        chosen = rows[rows["chosen"]]
        assert chosen["setting"].nunique() == 1
        test = chosen[chosen["split"] == "test"]
        accuracy, dp, eo = _plane(test)
        assert accuracy == pytest.approx(record["after_model"]["test_accuracy"], abs=1e-12)
        assert dp == pytest.approx(_headline(record["after"], "demographic_parity_difference"), abs=1e-12)
        assert eo == pytest.approx(_headline(record["after"], "equalized_odds_difference"), abs=1e-12)
        # the record's frontier is the export's plane, point by point
        assert record["setting_name"] == ("k" if record["name"] == "fairij" else "lambda")
        assert len(record["frontier"]) == 2 * len(settings)
        for point in record["frontier"]:
            part = rows[(rows["setting"] == point["setting"]) & (rows["split"] == point["split"])]
            accuracy, dp, eo = _plane(part)
            assert point["rows"] == len(part) and point["chosen"] == bool(part["chosen"].all())
            assert point["accuracy"] == pytest.approx(accuracy, abs=1e-12)
            assert point["demographic_parity_difference"] == pytest.approx(dp, abs=1e-12)
            assert point["equalized_odds_difference"] == pytest.approx(eo, abs=1e-12)
    # FairIJ's k = 0 decides as the audited model
    k0 = frame[(frame["method"] == "fairij") & (frame["setting"] == 0)].reset_index(drop=True)
    base = frame[frame["method"] == "audited"].reset_index(drop=True)
    assert np.array_equal(k0["score"].to_numpy(), base["score"].to_numpy())


def test_the_report_plots_each_repairs_whole_frontier(run: tuple[Path, Path]) -> None:
    _, out = run
    html = (out / "report.html").read_text(encoding="utf-8")
    plot = html.split('id="fpsum-tradeoff', 1)[1].split("</figure>", 1)[0]
    assert "each repair&#39;s whole grid on the same test rows" in plot or "each repair's whole grid" in plot
    assert "Every decision behind this plot is in predictions.parquet" in plot
    assert "FairIJ" in plot and "every k" in plot and "every λ" in plot, "one frontier per repair, in the legend"


def test_no_row_output_writes_no_export(run: tuple[Path, Path], tmp_path: Path) -> None:
    spec, out = run
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(out, copy)
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(copy), "--no-row-output")
    assert code == 0, err
    results = json.loads((copy / "results.json").read_text())
    assert not (copy / PREDICTIONS_FILE).exists() and "decisions" not in results
    assert verify(copy).complete and results["mitigations"][0]["status"] == "ok"


def test_final_adds_the_final_rows_of_the_audited_model_and_each_chosen_point(run: tuple[Path, Path],
                                                                             tmp_path: Path) -> None:
    spec, _ = run
    out = tmp_path / "final"
    code, _, err = run_cli("--quiet", "audit", str(spec), "--out", str(out), "--final")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    frame = read_decisions(out / PREDICTIONS_FILE)
    assert results["decisions"]["final_read"] is True and results["decisions"]["splits"] == ["validation", "test", "final"]
    final = frame[frame["split"] == "final"]
    assert final["chosen"].all() and sorted(set(final["method"])) == ["audited", "fairij", "reprogram"]
    assert final.groupby("method").size().tolist() == [48, 48, 48]
    from fairprompt.spec import load_spec
    from fairprompt.tasks import load_task

    splits = load_task(load_spec(spec)).splits
    assert sorted(set(final["row_id"])) == sorted(splits.final.tolist())
    others = set(frame.loc[frame["split"] != "final", "row_id"])
    assert not others & set(final["row_id"]), "the final rows are no other split's"


def test_final_needs_a_final_split_and_row_output(tmp_path: Path) -> None:
    spec = json.loads(json.dumps(SPEC))
    del spec["model"]["splits"]["final"]
    path = write_spec(tmp_path, spec)
    code, _, err = run_cli("audit", str(path), "--final", "--out", str(tmp_path / "a"))
    assert_user_error(code, err, "model.splits.final")
    code, _, err = run_cli("audit", str(path), "--final", "--no-row-output", "--out", str(tmp_path / "b"))
    assert_user_error(code, err, "--no-row-output")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_predictions_audit_copies_nothing_and_refuses_final(tmp_path: Path) -> None:
    csv = tmp_path / "p.csv"
    pd.DataFrame({"y": [0, 1, 1, 0] * 10, "p": [0, 1, 0, 1] * 10, "g": ["a", "b"] * 20}).to_csv(csv, index=False)
    out = tmp_path / "out"
    code, _, err = run_cli("--quiet", "audit", "--predictions", str(csv), "--label", "y", "--prediction", "p",
                           "--sensitive", "g", "--n-boot", "0", "--out", str(out))
    assert code == 0, err
    assert not (out / PREDICTIONS_FILE).exists() and "decisions" not in json.loads((out / "results.json").read_text())
    code, _, err = run_cli("audit", "--predictions", str(csv), "--label", "y", "--prediction", "p", "--sensitive", "g",
                           "--out", str(tmp_path / "f"), "--final")
    assert_user_error(code, err, "--final")
    assert not (tmp_path / "f").exists()


def test_a_logistic_regression_run_exports_its_test_decisions(tmp_path: Path) -> None:
    out = tmp_path / "baseline"
    code, _, err = run_cli("--quiet", "audit", "audits/adult_baseline.yaml", "--out", str(out), "--n-boot", "0")
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    frame = read_decisions(out / PREDICTIONS_FILE)
    assert set(frame["method"]) == {"audited"} and set(frame["split"]) == {"test"}
    assert len(frame) == results["audit"]["n_rows"] == results["model"]["test_rows"]
    assert frame["row_id"].is_unique
    _, dp, eo = _plane(frame)
    assert dp == pytest.approx(_headline(results["audit"], "demographic_parity_difference"), abs=1e-12)
    assert eo == pytest.approx(_headline(results["audit"], "equalized_odds_difference"), abs=1e-12)
