"""The compliance document (`fairprompt report DIR --format compliance [--pdf]`): the tables are results.json's
impact ratios (and fairlearn's), before and after each repair, escaped, printable; and every error path."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import assert_user_error, run_cli
from fairprompt.errors import FairpromptError
from fairprompt.metrics import audit
from fairprompt.report import pdf as pdf_module
from fairprompt.report.compliance import build_compliance_view, render_compliance
from fairprompt.report.format import fmt_num
from fairprompt.results import build_results, write_results

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


# Data ---------------------------------------------------------------------------------------------------------------

N = 1500


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["Female", "Male"], N, p=[0.4, 0.6])
    race = rng.choice(["White", "Black", SCRIPT, "Tiny"], N, p=[0.6, 0.3, 0.09, 0.01]).astype(object)
    race[rng.random(N) < 0.03] = None  # missing category: excluded and counted
    y = rng.integers(0, 2, N)
    score = np.clip(rng.random(N) * 0.6 + 0.3 * y + 0.2 * (sex == "Male"), 0, 1)
    return pd.DataFrame({"sex": sex, "race": race, "y": y, "score": score, "yhat": (score > 0.55).astype(int)})


def _fair_predictions(frame: pd.DataFrame) -> np.ndarray:
    """The higher-scoring half of each sex selected: equal selection rates by sex (impact ratio ~1), and better than
    the majority class (every second row regardless of score would be a degenerate model, whose verdict is REVIEW)."""
    share = frame.groupby("sex")["score"].rank(pct=True, method="first").to_numpy()
    return (share > 0.5).astype(int)


def _audit(frame: pd.DataFrame, prediction: np.ndarray) -> dict:
    return audit(y_true=frame["y"].to_numpy(), y_pred=prediction, y_score=frame["score"].to_numpy(),
                 sensitive=frame[["sex", "race"]], n_boot=20, seed=0).to_dict()


def audit_results(*, mitigations: list[dict] | None = None) -> dict:
    frame = _frame()
    return build_results(
        name="hiring", title=f"Hiring {SCRIPT}", audit=_audit(frame, frame["yhat"].to_numpy()),
        data={"source": "preds.csv", "label": "y", "positive_label": "1", "prediction": "yhat", "score": "score",
              "sensitive": ["sex", "race"], "rows_audited": N, "split": None},
        inputs=[{"role": "predictions", "path": "preds.csv", "sha256": "ab" * 32, "rows": N}],
        seeds={"bootstrap": 0}, command=None, created="2025-01-01T00:00:00+00:00", mitigations=mitigations,
    )


def _small_results() -> dict:
    """One column, no scores: a report.html with few figures (quick to render and print)."""
    frame = _frame()
    result = audit(y_true=frame["y"].to_numpy(), y_pred=frame["yhat"].to_numpy(), sensitive=frame[["sex"]], n_boot=0)
    return build_results(name="small", audit=result.to_dict(), data={"sensitive": ["sex"]}, inputs=[], seeds={},
                         created="2025-01-01T00:00:00+00:00")


def fairij_entry(frame: pd.DataFrame | None = None, **extra: object) -> dict:
    frame = _frame() if frame is None else frame
    return {"name": "fairij", "status": "ok", "group": "sex", "config": {"group": "sex"},
            "fairij": {"chosen_k": 40, "n_train": 1000},
            "after": _audit(frame, _fair_predictions(frame)),
            "after_model": {"test_accuracy": 0.81, "before_test_accuracy": 0.83, "changed": "the task prompt"},
            **extra}


# Reading the tables back --------------------------------------------------------------------------------------------

def table(page: str, table_id: str) -> list[list[str]]:
    """The body rows of the table with this id, as unescaped cell texts."""
    match = re.search(rf'<table[^>]*\bid="{re.escape(table_id)}"[^>]*>(.*?)</table>', page, re.S)
    assert match, f"no table {table_id}"
    body = re.search(r"<tbody>(.*?)</tbody>", match.group(1), re.S).group(1)
    rows = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


def first_number(cell: str) -> str:
    return cell.split()[0]


# The tables are the results' numbers ------------------------------------------------------------------------------

def test_tables_are_the_impact_ratios_of_results_json() -> None:
    results = audit_results()
    page = render_compliance(results)
    for i, s in enumerate(results["audit"]["slices"]):
        comp = s["compliance"]
        ff, ll144, scoring = (table(page, f"before-{kind}-{i}") for kind in ("ff", "ll144", "scoring"))
        assert [r[0] for r in ff] == [r["group"] for r in comp["table"]]
        for row, ff_row, ll_row, sc_row in zip(comp["table"], ff, ll144, scoring, strict=True):
            assert ff_row[1] == f"{row['n']:,}"
            assert ff_row[2] == fmt_num(row["selection_rate"])
            assert first_number(ff_row[3]) == fmt_num(row["impact_ratio"])
            assert f"[{fmt_num(row['impact_ratio_ci_low'])}, {fmt_num(row['impact_ratio_ci_high'])}]" in ff_row[3]
            assert ff_row[4] == ("pass" if row["passes_four_fifths"] else "FAIL")
            assert first_number(ll_row[4]) == fmt_num(row["ll144_impact_ratio"])
            assert ("under 2%" in ll_row[2]) == row["small_category"]
            assert sc_row[3] == fmt_num(row["scoring_rate"])
            assert first_number(sc_row[4]) == fmt_num(row["scoring_impact_ratio"])
        assert f"Rows excluded for a missing {' or '.join(s['columns'])}: {comp['excluded_rows']:,}." in html.unescape(
            re.sub(r"<[^>]+>", "", page))
    race = results["audit"]["slices"][1]["compliance"]
    assert race["excluded_rows"] > 0
    small = [r["group"] for r in race["table"] if r["small_category"]]
    assert small == ["Tiny"]
    assert "Categories under 2% of the rows: <strong>1</strong> (Tiny, " in page
    assert race["ll144_reference"] != "Tiny"


def test_predictions_audit_matches_fairlearn(tmp_path: Path) -> None:
    fairlearn = pytest.importorskip("fairlearn.metrics")
    frame = _frame(seed=5).dropna(subset=["race"]).replace({SCRIPT: "Other"})
    frame.to_csv(tmp_path / "preds.csv", index=False)
    out = tmp_path / "audit"
    code, _, err = run_cli("--quiet", "audit", "--predictions", str(tmp_path / "preds.csv"), "--label", "y",
                           "--prediction", "yhat", "--sensitive", "sex,race", "--n-boot", "0", "--out", str(out))
    assert code == 0, err
    code, stdout, err = run_cli("report", str(out), "--format", "compliance")
    assert code == 0, err
    assert str(out / "compliance.html") in stdout
    page = (out / "compliance.html").read_text(encoding="utf-8")
    slices = json.loads((out / "results.json").read_text())["audit"]["slices"]
    for i, s in enumerate(slices):
        columns = s["columns"]
        features = frame[columns[0]] if len(columns) == 1 else frame[columns]
        expected = fairlearn.demographic_parity_ratio(frame["y"], frame["yhat"], sensitive_features=features)
        rates = fairlearn.MetricFrame(metrics=fairlearn.selection_rate, y_true=frame["y"], y_pred=frame["yhat"],
                                      sensitive_features=features).by_group
        if len(columns) > 1:
            rates.index = [" × ".join(map(str, k)) for k in rates.index]
        rows = table(page, f"before-ff-{i}")
        ratios = {r[0]: float(first_number(r[3])) for r in rows}
        assert min(ratios.values()) == pytest.approx(expected, abs=5e-4), s["name"]
        assert set(ratios) == set(rates.index)
        for group, rate in rates.items():
            assert ratios[group] == pytest.approx(rate / rates.max(), abs=5e-4), (s["name"], group)
        assert [r for r in rows if "[" in r[3]] == []  # n_boot 0: no intervals shown


# Before and after -------------------------------------------------------------------------------------------------

def test_before_and_after_tables_for_each_ok_mitigation() -> None:
    frame = _frame()
    failed = {"name": "reprogram", "status": "failed", "group": "race", "error": f"diverged {SCRIPT}"}
    results = audit_results(mitigations=[fairij_entry(frame), failed, {"name": "fairij", "status": "not_run"}])
    page = render_compliance(results)
    assert 'id="before"' in page and 'id="after-0"' in page
    assert 'id="after-1"' not in page and 'id="after-2"' not in page
    before_sex = results["audit"]["slices"][0]["compliance"]["table"]
    after_sex = results["mitigations"][0]["after"]["slices"][0]["compliance"]["table"]
    after_rows = table(page, "after-0-ff-0")
    assert [first_number(r[3]) for r in after_rows] == [fmt_num(r["impact_ratio"]) for r in after_sex]
    assert [r[5] for r in after_rows] == [fmt_num(r["impact_ratio"]) for r in before_sex]  # the 'before' column
    assert [first_number(r[3]) for r in table(page, "before-ff-0")] == [fmt_num(r["impact_ratio"]) for r in before_sex]
    for i in range(3):  # every slice, after as well
        assert table(page, f"after-0-ll144-{i}") and table(page, f"after-0-scoring-{i}")

    verdicts = {r[0]: r[1:] for r in table(page, "verdict-table")}
    assert set(verdicts) == {"sex", "race", "sex × race"}
    assert verdicts["sex"][0].startswith("REVIEW") and verdicts["sex"][1].startswith("PASS")
    assert min(r["impact_ratio"] for r in before_sex) < 0.8 <= min(r["impact_ratio"] for r in after_sex)
    assert "After FairIJ repair of sex" in page
    assert f"FairReprogram of race: failed: diverged {ESCAPED}." in page
    assert "FairIJ repair: not run." in page


def test_no_mitigations_means_before_only() -> None:
    view = build_compliance_view(audit_results())
    assert [a.key for a in view.audits] == ["before"] and view.not_shown == ()
    page = render_compliance(audit_results())
    assert "After " not in page and "Impact ratio before" not in page


# Escaping, self-containment, printing ----------------------------------------------------------------------------

def test_user_strings_are_escaped() -> None:
    page = render_compliance(audit_results(mitigations=[fairij_entry()]))
    assert "<script" not in page.lower()
    assert ESCAPED in page
    assert f"Hiring {ESCAPED}" in page
    assert any(r[0] == SCRIPT for r in table(page, "before-ff-1"))  # the group itself, once unescaped


def test_print_stylesheet_and_self_contained() -> None:
    results = audit_results(mitigations=[fairij_entry()])
    page = render_compliance(results)
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    printing = style[style.index("@media print"):]
    for rule in ("@page", "nav.toc { display: none; }", "thead { display: table-header-group; }",
                 "break-inside: avoid", "color: #000 !important"):
        assert rule in printing, rule
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert "<link" not in page and "@import" not in page
    assert page == render_compliance(results)  # deterministic


def test_header_names_what_was_audited_and_the_file_hash(tmp_path: Path) -> None:
    results = audit_results()
    write_results(results, tmp_path / "results.json")
    code, _, err = run_cli("report", str(tmp_path), "--format", "compliance")
    assert code == 0, err
    page = (tmp_path / "compliance.html").read_text(encoding="utf-8")
    assert hashlib.sha256((tmp_path / "results.json").read_bytes()).hexdigest() in page
    for fact in ("hiring", "preds.csv", "1,500", "2025-01-01T00:00:00+00:00", str(results["fairprompt_version"]),
                 "predictions supplied by the user", "independent auditor", "screening heuristic", "decision threshold"):
        assert fact in page, fact
    assert not (tmp_path / "report.html").exists()


def test_default_format_still_writes_report_html(tmp_path: Path) -> None:
    write_results(_small_results(), tmp_path / "results.json")
    code, stdout, err = run_cli("report", str(tmp_path))
    assert code == 0, err
    assert (tmp_path / "report.html").is_file() and not (tmp_path / "compliance.html").exists()
    assert str(tmp_path / "report.html") in stdout


def test_api_is_exported_lazily_without_torch() -> None:
    code = ("import sys, fairprompt.report as r; assert 'fairprompt.report.compliance' not in sys.modules; "
            "r.render_compliance, r.write_compliance, r.write_pdf; assert 'torch' not in sys.modules; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_render_compliance_refuses_what_is_not_results() -> None:
    with pytest.raises(FairpromptError, match="schema"):
        render_compliance({"audit": {}})


# CLI error paths: exit 2, one line, nothing written ---------------------------------------------------------------

@pytest.mark.parametrize("content, fragment", [
    (None, "does not exist"),
    ("{not json", "not valid JSON"),
    ('{"schema": "something else"}', "not a fairprompt results file"),
])
def test_bad_results_file(tmp_path: Path, content: str | None, fragment: str) -> None:
    if content is not None:
        (tmp_path / "results.json").write_text(content)
    code, _, err = run_cli("report", str(tmp_path), "--format", "compliance", "--pdf")
    assert_user_error(code, err, "results.json", fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if content is None else ["results.json"])


def test_unknown_format(tmp_path: Path) -> None:
    write_results(audit_results(), tmp_path / "results.json")
    code, _, err = run_cli("report", str(tmp_path), "--format", "pdf")
    assert code == 2 and "'pdf' is not one of 'html', 'compliance'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


@pytest.fixture()
def no_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.delenv(pdf_module.CHROMIUM_ENV, raising=False)
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(pdf_module, "DEBIAN_CHROMIUM", str(tmp_path / "no" / "chromium"))


@pytest.mark.parametrize("fmt", ["compliance", "html"])
def test_pdf_without_chromium(tmp_path: Path, no_chromium: None, fmt: str) -> None:
    out = tmp_path / "r"
    write_results(audit_results(), out / "results.json")
    code, _, err = run_cli("report", str(out), "--format", fmt, "--pdf")
    assert_user_error(code, err, "Chromium", "apt-get install chromium", "FAIRPROMPT_CHROMIUM", "chromium-browser",
                      "google-chrome")
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_chromium_env_not_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r"
    write_results(audit_results(), out / "results.json")
    monkeypatch.setenv(pdf_module.CHROMIUM_ENV, str(tmp_path / "nowhere" / "chrome"))
    code, _, err = run_cli("report", str(out), "--format", "compliance", "--pdf")
    assert_user_error(code, err, "FAIRPROMPT_CHROMIUM", "not an executable")
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def _fake_chromium(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake-chromium"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("body, fragment", [
    ("echo 'crashed: no display' >&2; exit 3", "exit status 3: crashed: no display"),
    ("exit 0", "no PDF written"),
])
def test_chromium_failure_is_one_line_and_leaves_no_pdf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        body: str, fragment: str) -> None:
    out = tmp_path / "r"
    write_results(audit_results(), out / "results.json")
    (out / "compliance.pdf").write_bytes(b"%PDF-old")
    monkeypatch.setenv(pdf_module.CHROMIUM_ENV, str(_fake_chromium(tmp_path, body)))
    code, _, err = run_cli("report", str(out), "--format", "compliance", "--pdf")
    assert_user_error(code, err, "failed to print", fragment, "compliance.pdf was not written")
    assert (out / "compliance.pdf").read_bytes() == b"%PDF-old"  # the old PDF untouched
    assert sorted(p.name for p in out.iterdir()) == ["compliance.html", "compliance.pdf", "results.json"]


def test_write_pdf_needs_the_html(tmp_path: Path) -> None:
    with pytest.raises(FairpromptError, match="does not exist"):
        pdf_module.write_pdf(tmp_path / "missing.html", tmp_path / "x.pdf", chromium="/bin/true")
    assert not (tmp_path / "x.pdf").exists()


# The real thing ----------------------------------------------------------------------------------------------------

def _chromium_or_skip() -> str:
    try:
        return pdf_module.find_chromium()
    except FairpromptError as exc:
        pytest.skip(f"no Chromium to print with: {exc}")


def test_pdf_is_printed_by_chromium(tmp_path: Path) -> None:
    _chromium_or_skip()
    write_results(audit_results(mitigations=[fairij_entry()]), tmp_path / "results.json")
    code, stdout, err = run_cli("report", str(tmp_path), "--format", "compliance", "--pdf")
    assert code == 0, err
    data = (tmp_path / "compliance.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 10_000
    assert str(tmp_path / "compliance.pdf") in stdout
    assert len(re.findall(rb"/Type\s*/Page[^s]", data)) >= 3  # header, before, after
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_write_pdf_api_prints_the_report(tmp_path: Path) -> None:
    chromium = _chromium_or_skip()
    from fairprompt.report import write_pdf, write_report

    page = write_report(_small_results(), tmp_path)
    path = write_pdf(page, tmp_path / "report.pdf", chromium=chromium)
    assert path == tmp_path / "report.pdf" and path.read_bytes().startswith(b"%PDF-")
    assert os.access(path, os.R_OK)


def test_a_hung_chromium_is_stopped_with_its_children(tmp_path: Path) -> None:
    """A timeout ends Chromium's whole process group (its helpers too), leaves no PDF and is one line."""
    (tmp_path / "page.html").write_text("<p>x</p>", encoding="utf-8")
    marker = tmp_path / "child.pid"
    fake = _fake_chromium(tmp_path, f"sleep 60 & echo $! > {marker}; wait")
    with pytest.raises(FairpromptError, match="did not finish printing") as info:
        pdf_module.write_pdf(tmp_path / "page.html", tmp_path / "page.pdf", chromium=str(fake), timeout=1)
    assert "\n" not in str(info.value)
    child = int(marker.read_text())
    for _ in range(50):  # the kill is immediate; allow the kernel a moment to reap it
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as stat_file:
            if stat_file.read().split()[2] == "Z":
                break
        import time

        time.sleep(0.1)
    else:
        pytest.fail(f"Chromium's child process {child} is still running after the timeout")
    assert not (tmp_path / "page.pdf").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
