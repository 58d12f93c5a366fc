"""The `fairprompt` CLI: help, a predictions audit end to end, and every bad-input path (exit 2, one line, nothing written)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import assert_user_error, run_cli, write_spec


@pytest.fixture()
def predictions(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame({
        "outcome": rng.choice(["hired", "rejected"], n),
        "decision": rng.choice(["hired", "rejected"], n),
        "score": rng.random(n),
        "gender": rng.choice(["F", "M", "X"], n, p=[0.47, 0.5, 0.03]),
        "ethnicity": rng.choice(["A", "B"], n),
        "w": rng.uniform(0.5, 2.0, n),
    })
    path = tmp_path / "preds.csv"
    frame.to_csv(path, index=False)
    return path


BASE = ["--label", "outcome", "--prediction", "decision", "--positive-label", "hired"]


@pytest.mark.parametrize("command", [[], ["audit"], ["datasets"], ["datasets", "list"], ["report"]])
def test_every_command_has_help(command: list[str]) -> None:
    code, out, _ = run_cli(*command, "--help")
    assert code == 0
    assert "Usage:" in out


def test_predictions_audit_end_to_end(predictions: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, stdout, err = run_cli("--quiet", "audit", "--predictions", str(predictions), *BASE, "--score", "score",
                            "--sensitive", "gender,ethnicity", "--reference", "gender=M", "--n-boot", "50", "--out", str(out))
    assert code == 0, err
    assert stdout == "" and err == ""
    assert sorted(p.name for p in out.iterdir()) == ["compliance.html", "manifest.json", "metrics_by_group.csv",
                                                     "report.html", "results.json"]
    results = json.loads((out / "results.json").read_text())
    compliance = (out / "compliance.html").read_text(encoding="utf-8")
    assert hashlib.sha256((out / "results.json").read_bytes()).hexdigest() in compliance  # the file it describes
    slices = {s["name"]: s for s in results["audit"]["slices"]}
    assert set(slices) == {"gender", "ethnicity", "gender × ethnicity"}
    assert slices["gender"]["reference"] == "M"
    assert results["inputs"][0]["sha256"] and results["data"]["positive_label"] == "hired"
    small = {g["group"]: g["small_group"] for g in slices["gender"]["groups"]}
    assert small["X"] is True and small["F"] is False  # X has about 18 of 600 rows, under min_group_size=30
    csv = pd.read_csv(out / "metrics_by_group.csv")
    assert {"slice", "group", "n", "selection_rate", "selection_rate_ci_low", "auc"} <= set(csv.columns)
    # Re-render from results.json alone.
    (out / "report.html").unlink()
    code, _, err = run_cli("--quiet", "report", str(out))
    assert code == 0, err
    assert (out / "report.html").stat().st_size > 1000


def test_score_threshold_and_weights(predictions: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    code, _, err = run_cli("-q", "audit", "--predictions", str(predictions), "--label", "outcome", "--positive-label", "hired",
                       "--score", "score", "--score-threshold", "0.5", "--weight", "w", "--sensitive", "gender",
                       "--n-boot", "20", "--out", str(out))
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["audit"]["weighted"] is True
    assert results["data"]["prediction"] == "score >= 0.5"


def test_missing_sensitive_values_are_excluded_and_counted(predictions: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(predictions)
    frame.loc[:9, "ethnicity"] = np.nan
    frame.to_csv(predictions, index=False)
    out = tmp_path / "r"
    code, _, err = run_cli("-q", "audit", "--predictions", str(predictions), *BASE, "--sensitive", "gender,ethnicity",
                       "--n-boot", "0", "--out", str(out))
    assert code == 0, err
    slices = {s["name"]: s for s in json.loads((out / "results.json").read_text())["audit"]["slices"]}
    assert slices["ethnicity"]["excluded_rows"] == 10
    assert slices["gender × ethnicity"]["excluded_rows"] == 10
    assert slices["gender"]["excluded_rows"] == 0
    assert sum(g["n"] for g in slices["gender"]["groups"]) == 600


def test_missing_file(tmp_path: Path) -> None:
    out = tmp_path / "r"
    code, _, err = run_cli("audit", "--predictions", str(tmp_path / "nope.csv"), *BASE, "--sensitive", "gender",
                           "--out", str(out))
    assert_user_error(code, err, "nope.csv")
    assert not out.exists()


def test_misspelled_column_suggests_closest(predictions: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    code, _, err = run_cli("audit", "--predictions", str(predictions), *BASE, "--sensitive", "gendr", "--out", str(out))
    assert_user_error(code, err, "'gendr'", "did you mean 'gender'")
    assert not out.exists()
    code, _, err = run_cli("audit", "--predictions", str(predictions), "--label", "outcom", "--prediction", "decision",
                       "--positive-label", "hired", "--sensitive", "gender", "--out", str(out))
    assert_user_error(code, err, "'outcom'", "'outcome'")


def test_non_binary_label_without_positive_label(predictions: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    code, _, err = run_cli("audit", "--predictions", str(predictions), "--label", "outcome", "--prediction", "decision",
                       "--sensitive", "gender", "--out", str(out))
    assert_user_error(code, err, "'outcome'", "positive")
    assert not out.exists()


def test_positive_label_absent(predictions: Path, tmp_path: Path) -> None:
    code, _, err = run_cli("audit", "--predictions", str(predictions), "--label", "outcome", "--prediction", "decision",
                       "--positive-label", "hird", "--sensitive", "gender", "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "'hird'", "'outcome'")


def test_single_valued_sensitive_column(predictions: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(predictions)
    frame["site"] = "north"
    frame.to_csv(predictions, index=False)
    out = tmp_path / "r"
    code, _, err = run_cli("audit", "--predictions", str(predictions), *BASE, "--sensitive", "gender,site", "--out", str(out))
    assert_user_error(code, err, "'site'", "single value")
    assert not out.exists()


@pytest.mark.parametrize("column", ["outcome", "decision"])
def test_nan_in_label_or_prediction(predictions: Path, tmp_path: Path, column: str) -> None:
    frame = pd.read_csv(predictions)
    frame.loc[[3, 7], column] = np.nan
    frame.to_csv(predictions, index=False)
    out = tmp_path / "r"
    code, _, err = run_cli("audit", "--predictions", str(predictions), *BASE, "--sensitive", "gender", "--out", str(out))
    assert_user_error(code, err, "preds.csv", f"column '{column}' (2 of 600 rows)", "--drop-missing",
                      "predictions.drop_missing: true")
    assert not out.exists()


def test_drop_missing_leaves_out_and_counts_rows(predictions: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(predictions)
    frame.loc[[0, 1, 2], "outcome"] = np.nan
    frame.loc[[2, 3], "decision"] = np.nan  # row 2 misses both: one row dropped, counted under each column
    frame.loc[[4], "score"] = np.nan
    frame.loc[[5], "w"] = np.nan
    frame.to_csv(predictions, index=False)
    out = tmp_path / "r"
    args = ["audit", "--predictions", str(predictions), *BASE, "--score", "score", "--weight", "w", "--sensitive",
            "gender", "--n-boot", "20", "--out", str(out)]
    code, _, err = run_cli(*args)
    assert_user_error(code, err, "label column 'outcome' (3 of 600 rows)", "prediction column 'decision' (2 of 600 rows)",
                      "score column 'score' (1 of 600 rows)", "weight column 'w' (1 of 600 rows)")
    assert not out.exists()
    code, stdout, err = run_cli(*args, "--drop-missing")
    assert code == 0, err
    assert "dropped: 6 of 600 rows had a missing value (outcome 3, decision 2, score 1, w 1)" in stdout
    results = json.loads((out / "results.json").read_text())
    data = results["data"]
    assert (data["rows"], data["rows_dropped"], data["rows_audited"]) == (600, 6, 594)
    assert data["dropped_missing"] == {"outcome": 3, "decision": 2, "score": 1, "w": 1}
    assert results["audit"]["n_rows"] == 594 and results["inputs"][0]["rows"] == 600
    assert sum(g["n"] for g in results["audit"]["slices"][0]["groups"]) == 594
    dropped = "6 rows with a missing outcome (3) or decision (2) or score (1) or w (1), left out before the audit"
    report = (out / "report.html").read_text(encoding="utf-8")
    assert f"<dt>Rows dropped</dt><dd>{dropped} (--drop-missing)</dd>" in report
    assert f"Not in any slice: {dropped}" in report
    compliance = (out / "compliance.html").read_text(encoding="utf-8")
    assert f"Rows dropped</th><td>{dropped}" in compliance and f"Not in any table: {dropped}" in compliance


def test_drop_missing_in_a_spec(predictions: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(predictions)
    frame.loc[[7, 8], "decision"] = np.nan
    frame.to_csv(predictions, index=False)
    block = f"path: {predictions}, label: outcome, prediction: decision, positive_label: hired"
    spec = write_spec(tmp_path, f"name: t\npredictions: {{{block}}}\naudit: {{sensitive: [gender], n_boot: 20}}\n")
    out = tmp_path / "r"
    code, _, err = run_cli("-q", "audit", str(spec), "--out", str(out))
    assert_user_error(code, err, "preds.csv", "'decision' (2 of 600 rows)", "--drop-missing")
    assert not out.exists()
    code, _, err = run_cli("-q", "audit", str(spec), "--drop-missing", "--out", str(out))  # the flag on a spec
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["dropped_missing"] == {"decision": 2} and results["spec"]["predictions"]["drop_missing"]
    keyed = write_spec(tmp_path, f"name: t\npredictions: {{{block}, drop_missing: true}}\n"
                                 "audit: {sensitive: [gender], n_boot: 20}\n", name="keyed.yaml")
    code, _, err = run_cli("-q", "audit", str(keyed), "--out", str(tmp_path / "k"))  # the spec key
    assert code == 0, err
    data = json.loads((tmp_path / "k" / "results.json").read_text())["data"]
    assert (data["rows_dropped"], data["rows_audited"]) == (2, 598)


def test_drop_missing_with_nothing_missing_is_recorded(predictions: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    code, stdout, err = run_cli("audit", "--predictions", str(predictions), *BASE, "--sensitive", "gender",
                                "--n-boot", "0", "--drop-missing", "--out", str(out))
    assert code == 0, err
    assert "dropped:" not in stdout
    data = json.loads((out / "results.json").read_text())["data"]
    assert (data["rows_dropped"], data["dropped_missing"], data["rows_audited"]) == (0, {}, 600)
    assert "<dt>Rows dropped</dt><dd>none (--drop-missing" in (out / "report.html").read_text(encoding="utf-8")


def test_drop_missing_every_row(tmp_path: Path) -> None:
    path = tmp_path / "holes.csv"
    pd.DataFrame({"outcome": [1, np.nan, 0, np.nan], "decision": [np.nan, 1, np.nan, 0],
                  "gender": ["F", "M", "F", "M"]}).to_csv(path, index=False)
    out = tmp_path / "r"
    code, _, err = run_cli("audit", "--predictions", str(path), "--label", "outcome", "--prediction", "decision",
                           "--sensitive", "gender", "--drop-missing", "--out", str(out))
    assert_user_error(code, err, "every row of predictions file", "holes.csv", "'outcome' (2 of 4 rows)",
                      "'decision' (2 of 4 rows)", "nothing is left to audit")
    assert not out.exists()


def test_drop_missing_needs_a_predictions_audit(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {"name": "m", "data": {"dataset": "adult"}, "model": {"kind": "logistic_regression"}})
    code, _, err = run_cli("audit", str(spec), "--drop-missing", "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "--drop-missing", "spec.yaml", "'predictions'")
    assert not (tmp_path / "r").exists()


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    out = tmp_path / "r"
    code, _, err = run_cli("audit", "--predictions", str(path), *BASE, "--sensitive", "gender", "--out", str(out))
    assert_user_error(code, err, "empty.csv")
    assert not out.exists()
    path.write_text("outcome,decision,gender\n")
    code, _, err = run_cli("audit", "--predictions", str(path), *BASE, "--sensitive", "gender", "--out", str(out))
    assert_user_error(code, err, "empty.csv")
    assert not out.exists()


def test_bad_reference_value(predictions: Path, tmp_path: Path) -> None:
    code, _, err = run_cli("audit", "--predictions", str(predictions), *BASE, "--sensitive", "gender",
                           "--reference", "gender=Male", "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "'Male'", "'gender'")
    code, _, err = run_cli("audit", "--predictions", str(predictions), *BASE, "--sensitive", "gender", "--reference", "gender",
                       "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "COLUMN=VALUE")


def test_predictions_need_out_and_columns(predictions: Path) -> None:
    code, _, err = run_cli("audit", "--predictions", str(predictions), *BASE, "--sensitive", "gender")
    assert_user_error(code, err, "--out")
    code, _, err = run_cli("audit", "--predictions", str(predictions), "--prediction", "decision", "--out", "x")
    assert_user_error(code, err, "--label", "--sensitive")
    code, _, err = run_cli("audit")
    assert_user_error(code, err, "SPEC")


def test_malformed_yaml_spec(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "name: x\naudit: [unclosed\n")
    code, _, err = run_cli("audit", str(spec), "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "spec.yaml", "line")
    assert not (tmp_path / "r").exists()


def test_spec_unknown_key_and_wrong_type(tmp_path: Path, predictions: Path) -> None:
    good = f"name: t\npredictions: {{path: {predictions}, label: outcome, prediction: decision, positive_label: hired}}\n"
    spec = write_spec(tmp_path, good + "audit: {sensitive: [gender], n_bot: 10}\n")
    code, _, err = run_cli("audit", str(spec), "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "audit.n_bot", "did you mean 'n_boot'")
    spec = write_spec(tmp_path, good + "audit: {sensitive: [gender], n_boot: many}\n")
    code, _, err = run_cli("audit", str(spec), "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "audit.n_boot", "'many'")
    spec = write_spec(tmp_path, "name: t\naudit: {sensitive: [gender]}\n")
    code, _, err = run_cli("audit", str(spec), "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "exactly one of 'predictions'")
    assert not (tmp_path / "r").exists()


def test_missing_spec_file(tmp_path: Path) -> None:
    code, _, err = run_cli("audit", str(tmp_path / "absent.yaml"))
    assert_user_error(code, err, "absent.yaml")


def test_spec_runs_and_writes_to_its_output(tmp_path: Path, predictions: Path) -> None:
    out = tmp_path / "from_spec"
    spec = write_spec(tmp_path, f"name: t\noutput: {out}\npredictions: {{path: {predictions}, label: outcome, "
                                f"prediction: decision, positive_label: hired}}\naudit: {{sensitive: [gender], n_boot: 10}}\n")
    code, stdout, err = run_cli("audit", str(spec))
    assert code == 0, err
    assert str(out / "report.html") in stdout
    assert (out / "results.json").is_file()


def test_spec_paths_start_from_the_spec_folder(tmp_path: Path, predictions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "audits"
    (folder / "data").mkdir(parents=True)
    predictions.rename(folder / "data" / "preds.csv")
    write_spec(folder, "name: rel\noutput: out\npredictions: {path: data/preds.csv, label: outcome, "
                       "prediction: decision, positive_label: hired}\naudit: {sensitive: [gender], n_boot: 20}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run_cli("-q", "audit", "../audits/spec.yaml", "--n-boot", "20")  # a re-parse with options keeps the folder
    assert code == 0, err
    results = json.loads((elsewhere / "out" / "results.json").read_text())  # output: from the current directory
    assert results["inputs"][0]["path"] == results["data"]["source"] == "../audits/data/preds.csv"
    assert results["spec"]["predictions"]["path"] == "data/preds.csv"  # the spec as written: the same from any folder
    monkeypatch.chdir(folder)
    code, _, err = run_cli("-q", "audit", "spec.yaml", "--out", str(tmp_path / "again"))
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "results.json").read_text())
    assert again["spec"] == results["spec"] and again["inputs"][0]["sha256"] == results["inputs"][0]["sha256"]
    assert again["inputs"][0]["path"] == "data/preds.csv"
    # --predictions on the command line starts from the current directory, as before
    code, _, err = run_cli("-q", "audit", "--predictions", "data/preds.csv", *BASE, "--sensitive", "gender", "--n-boot",
                           "0", "--out", str(tmp_path / "cli"))
    assert code == 0, err


def test_spec_path_missing_from_the_spec_folder(tmp_path: Path, predictions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "audits"
    folder.mkdir()
    spec = write_spec(folder, "name: rel\npredictions: {path: preds.csv, label: outcome, prediction: decision, "
                              "positive_label: hired}\naudit: {sensitive: [gender]}\n")
    monkeypatch.chdir(tmp_path)  # preds.csv is here, not beside the spec
    code, _, err = run_cli("audit", str(spec), "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "spec.yaml", "predictions.path 'preds.csv'", str(folder / "preds.csv"),
                      "spec file's folder")
    assert not (tmp_path / "r").exists()


def test_report_on_missing_results(tmp_path: Path) -> None:
    code, _, err = run_cli("report", str(tmp_path))
    assert_user_error(code, err, "results.json")


def test_real_process_prints_one_line_without_traceback(tmp_path: Path) -> None:
    """The console script itself (not the test runner) exits 2 with one line."""
    proc = subprocess.run([sys.executable, "-m", "fairprompt.cli", "audit", "--predictions", str(tmp_path / "x.csv"),
                           *BASE, "--sensitive", "g", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_datasets_list() -> None:
    code, out, err = run_cli("datasets", "list")
    assert code == 0, err
    for name in ("adult", "compas", "compas_violent", "german"):
        assert name in out
    assert "32,561" in out
