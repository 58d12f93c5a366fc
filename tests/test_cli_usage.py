"""The `fairprompt` CLI's own errors and output: usage errors are one line (no usage block), options that would be
ignored are refused, n_boot has a ceiling, `report` refuses a results.json it cannot read in one line, and progress
is one line per stage when stderr is not a terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import assert_user_error, run_cli, write_spec
from fairprompt.metrics.bootstrap import MAX_N_BOOT
from fairprompt.results import SCHEMA_VERSION, dumps
from fairprompt.spec import parse_spec


@pytest.fixture()
def predictions(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    n = 200
    path = tmp_path / "preds.csv"
    pd.DataFrame({"y": rng.integers(0, 2, n), "yhat": rng.integers(0, 2, n), "p": rng.random(n),
                  "sex": rng.choice(["F", "M"], n)}).to_csv(path, index=False)
    return path


def _flags(predictions: Path, out: Path, *extra: str) -> list[str]:
    return ["audit", "--predictions", str(predictions), "--label", "y", "--sensitive", "sex", "--n-boot", "20",
            "--out", str(out), *extra]


@pytest.mark.parametrize(("args", "fragments"), [
    (["audit", "--seed", "abc"], ["'--seed'", "'abc' is not a valid integer", "see `fairprompt audit --help`"]),
    (["audit", "--n-boot", "1e3"], ["'--n-boot'", "'1e3' is not a valid integer"]),
    (["audit", "--bogus"], ["no such option '--bogus'", "see `fairprompt audit --help`"]),
    (["audit", "--n-boo", "3"], ["no such option '--n-boo' (did you mean '--n-boot'?)"]),
    (["report"], ["missing argument 'DIRECTORY'", "see `fairprompt report --help`"]),
    (["report", "--format", "pdf", "."], ["'--format'", "'pdf' is not one of 'html', 'compliance'"]),
    (["mitigate", "fairij"], ["missing argument 'SPEC'", "see `fairprompt mitigate fairij --help`"]),
    (["audti"], ["no such command 'audti' (did you mean 'audit'?)", "see `fairprompt --help`"]),
])
def test_usage_errors_are_one_line(args: list[str], fragments: list[str]) -> None:
    code, out, err = run_cli(*args)
    assert_user_error(code, err, *fragments)
    assert "Usage:" not in err and out == ""


def test_paths_of_the_wrong_kind_are_one_line(predictions: Path, tmp_path: Path) -> None:
    code, _, err = run_cli(*_flags(tmp_path, tmp_path / "r", "--prediction", "yhat"))  # a directory without Parquet
    assert_user_error(code, err, str(tmp_path), "holds no .parquet or .pq files", "a glob such as 'dir/*.parquet'")
    code, _, err = run_cli(*_flags(predictions, predictions, "--prediction", "yhat"))  # a file as the directory
    assert_user_error(code, err, "'--out'", "is a file")
    code, _, err = run_cli("report", str(predictions))
    assert_user_error(code, err, "'DIRECTORY'", "is a file", "see `fairprompt report --help`")
    code, _, err = run_cli("report", str(tmp_path / "absent"))
    assert_user_error(code, err, "absent", "does not exist", "fairprompt audit")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv"]


def test_usage_error_of_the_real_process_is_one_line() -> None:
    """The console script itself: no usage block, no 'Try ... for help.' line."""
    proc = subprocess.run([sys.executable, "-m", "fairprompt.cli", "audit", "--seed", "abc"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "error: invalid value for '--seed': 'abc' is not a valid integer; see `fairprompt audit --help`\n"


def test_prediction_and_score_threshold_together_are_refused(predictions: Path, tmp_path: Path) -> None:
    """The threshold would be ignored while results.json recorded it."""
    out = tmp_path / "r"
    code, _, err = run_cli(*_flags(predictions, out, "--prediction", "yhat", "--score", "p", "--score-threshold", "0.5"))
    assert_user_error(code, err, "--prediction yhat", "--score-threshold 0.5", "not both")
    good = {"name": "t", "output": str(out), "audit": {"sensitive": ["sex"], "n_boot": 20}}
    spec = write_spec(tmp_path, good | {"predictions": {"path": str(predictions), "label": "y", "prediction": "yhat",
                                                        "score": "p", "score_threshold": 0.5}})
    code, _, err = run_cli("audit", str(spec))
    assert_user_error(code, err, "spec.yaml", "'prediction' ('yhat') and 'score_threshold' (0.5)", "keep one")
    spec = write_spec(tmp_path, good | {"predictions": {"path": str(predictions), "label": "y", "prediction": "yhat",
                                                        "score_threshold": 0.5}})
    code, _, err = run_cli("audit", str(spec))
    assert_user_error(code, err, "spec.yaml", "'score_threshold'")
    spec = write_spec(tmp_path, good | {"predictions": {"path": str(predictions), "label": "y", "score_threshold": 0.5}})
    code, _, err = run_cli("audit", str(spec))
    assert_user_error(code, err, "spec.yaml", "score_threshold", "add 'score'")
    assert not out.exists()


def test_predictions_options_with_a_spec_are_refused(predictions: Path, tmp_path: Path) -> None:
    """With a SPEC, --label, --score-threshold and the like were silently ignored."""
    out = tmp_path / "r"
    spec = write_spec(tmp_path, {"name": "t", "output": str(out), "audit": {"sensitive": ["sex"], "n_boot": 20},
                                 "predictions": {"path": str(predictions), "label": "y", "prediction": "yhat"}})
    code, _, err = run_cli("audit", str(spec), "--score-threshold", "0.7", "--label", "y")
    assert_user_error(code, err, "--label, --score-threshold", "spec.yaml", "'predictions' block")
    assert not out.exists()


def test_n_boot_has_a_documented_ceiling(predictions: Path, tmp_path: Path) -> None:
    """--n-boot 10000000 used to run away (6.2 GB after 36 s); it is refused before anything is read."""
    out = tmp_path / "r"
    code, _, err = run_cli(*_flags(predictions, out, "--prediction", "yhat", "--n-boot", "10000000"))
    assert_user_error(code, err, "audit.n_boot", f"at most {MAX_N_BOOT:,}", "got 10,000,000")
    spec = write_spec(tmp_path, {"name": "t", "output": str(out), "audit": {"sensitive": ["sex"], "n_boot": MAX_N_BOOT + 1},
                                 "predictions": {"path": str(predictions), "label": "y", "prediction": "yhat"}})
    code, _, err = run_cli("audit", str(spec))
    assert_user_error(code, err, "spec.yaml", "audit.n_boot", f"at most {MAX_N_BOOT:,}")
    assert not out.exists()
    raw = {"name": "t", "predictions": {"path": "x.csv", "label": "y", "prediction": "yhat"}, "audit": {"sensitive": ["sex"]}}
    assert parse_spec(raw | {"audit": {"sensitive": ["sex"], "n_boot": MAX_N_BOOT}}).audit.n_boot == MAX_N_BOOT
    _, help_text, _ = run_cli("audit", "--help")
    assert f"at most {MAX_N_BOOT:,}" in " ".join(help_text.split())


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A results.json as a predictions audit writes it."""
    root = tmp_path_factory.mktemp("written")
    rng = np.random.default_rng(2)
    n = 200
    pd.DataFrame({"y": rng.integers(0, 2, n), "yhat": rng.integers(0, 2, n),
                  "sex": rng.choice(["F", "M"], n)}).to_csv(root / "p.csv", index=False)
    code, _, err = run_cli("-q", "audit", "--predictions", str(root / "p.csv"), "--label", "y", "--prediction", "yhat",
                           "--sensitive", "sex", "--n-boot", "10", "--out", str(root / "r"))
    assert code == 0, err
    return json.loads((root / "r" / "results.json").read_text(encoding="utf-8"))


def _edited(results: dict, where: tuple, value: object) -> dict:
    raw = json.loads(dumps(results))
    target = raw
    for part in where[:-1]:
        target = target[part]
    if value is KeyError:
        del target[where[-1]]
    else:
        target[where[-1]] = value
    return raw


@pytest.mark.parametrize(("where", "value", "fragments"), [
    (("schema_version",), "abc", ["'schema_version' is 'abc', not a whole number"]),
    (("schema_version",), "1", ["'schema_version' is '1', not a whole number"]),
    (("schema_version",), None, ["'schema_version' is null, not a whole number"]),
    (("schema_version",), 0, ["'schema_version' is 0, not a version"]),
    (("schema_version",), -1, ["'schema_version' is -1, not a version"]),
    (("schema_version",), KeyError, ["required key 'schema_version' is missing"]),
    (("schema_version",), SCHEMA_VERSION + 1, [f"schema version {SCHEMA_VERSION + 1}, newer", "upgrade fairprompt"]),
    (("audit", "overall", 0, "value"), "high", ["key 'audit.overall[0].value'", "(got 'high')"]),
    (("audit", "slices", 0, "groups", 0, "n"), "many", ["key 'audit.slices[0].groups[0].n'", "(got 'many')"]),
    (("audit", "bootstrap", "ci_level"), "95%", ["key 'audit.bootstrap.ci_level'"]),
])
def test_report_refuses_a_results_file_it_cannot_read_in_one_line(written: dict, tmp_path: Path, where: tuple,
                                                                   value: object, fragments: list[str]) -> None:
    (tmp_path / "results.json").write_text(json.dumps(_edited(written, where, value)), encoding="utf-8")
    for fmt in ("html", "compliance"):
        code, _, err = run_cli("report", str(tmp_path), "--format", fmt)
        assert_user_error(code, err, "results.json", *fragments)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # nothing rendered


def test_progress_is_one_line_per_stage_when_stderr_is_not_a_terminal(predictions: Path, tmp_path: Path) -> None:
    """Under CI stderr is a pipe: rich bars printed nothing for minutes; now each stage says when it starts and ends."""
    proc = subprocess.run([sys.executable, "-m", "fairprompt.cli",
                           *_flags(predictions, tmp_path / "r", "--prediction", "yhat", "--score", "p")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr  # plain text, no bars
    for stage in ("bootstrap: count tables", "bootstrap: rows"):
        assert lines.count(f"{stage} (20) ...") == 1, lines
        assert sum(line.startswith(f"{stage}: done in ") and line.endswith(" s") for line in lines) == 1, lines
    assert lines.count("rendering the report ...") == 1, lines
    assert sum(line.startswith("rendering the report: done in ") for line in lines) == 1, lines
    assert len(lines) == 6, lines
    assert "results: " in proc.stdout
    code, out, err = run_cli("--quiet", *_flags(predictions, tmp_path / "q", "--prediction", "yhat"))
    assert code == 0 and err == "" and out == "", err
