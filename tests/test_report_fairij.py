"""The FairIJ section of the report: rendered from a results.json ``mitigations`` block alone, escaped, deterministic."""

from __future__ import annotations

import copy
import json
import re

import pytest

from fairprompt.errors import FairpromptError
from fairprompt.report import Report, render_html, render_markdown
from fairprompt.report.view import repair_views
from fairprompt.results import dumps, parse_results
from report_factories import ESCAPED, SCRIPT, audit_results, fairij_entry, html_section, inline_svgs, text_model


@pytest.fixture(scope="module")
def before() -> dict:
    return audit_results(scores=False, n_boot=20, model=text_model())


@pytest.fixture(scope="module")
def repaired(before: dict) -> dict:
    results = copy.deepcopy(before)
    results["mitigations"] = [fairij_entry(before)]
    return results


@pytest.fixture(scope="module")
def repaired_html(repaired: dict) -> str:
    return render_html(repaired)




def test_fairij_section_shows_what_ran_and_the_before_after(repaired: dict, repaired_html: str) -> None:
    html = repaired_html
    assert '<a href="#mitigation-0">FairIJ repair of sex</a>' in html  # contents
    assert html.index('id="compliance"') < html.index('id="mitigation-0"') < html.index('id="provenance"')
    section = html_section(html, "mitigation-0")
    assert section.startswith('>\n<h2>FairIJ repair of <code>sex</code></h2>')
    assert "Chosen k = 10 (5.0% of the training rows)" in section
    for fact in ("Mode</th>\n      <td>ij", "one-step IJ update of the task prompt and head", "demographic parity",
                 "Selection</th>\n      <td>actual", "lowest actual validation F", "Utility budget</th>\n      <td>0.01",
                 "k = 10 of 200 training rows (5.0%)", "requested 0.001, used 0.01", "raised automatically",
                 "generalised Gauss-Newton", "effective rank 180 of 3,842 parameters", "validation",
                 "the test split is used only by the after-audit", "cache key 5d322a2b5d32…"):
        assert fact in section, fact
    # before/after on the TEST split, headline disparities with both intervals, and the change
    table = section.split('<table class="comparison">')[1].split("</table>")[0]
    rows = repaired["mitigations"][0]["comparison"]
    dp = next(r for r in rows if r["slice"] == "sex" and r["metric"] == "demographic_parity_difference")
    assert (f'{dp["before"]:.3f}</span> <span class="ci">[{dp["before_ci_low"]:.3f}, {dp["before_ci_high"]:.3f}]' in table
            and f'{dp["after"]:.3f}</span> <span class="ci">[{dp["after_ci_low"]:.3f}, {dp["after_ci_high"]:.3f}]' in table)
    change = round(dp["after"] - dp["before"], 3)
    assert f"{'−' if change < 0 else '+' if change > 0 else '±'}{abs(change):.3f}" in table
    assert "Demographic parity difference" in table and "Equal opportunity difference" in table
    assert ">Overall</th>" in table and "Accuracy" in table
    assert "closer to ideal" in table or "further from ideal" in table
    assert "Test accuracy</th>\n      <td>0.760 → 0.751" in section and "change −0.009 on the same 1,200 test rows" in section
    assert "backbone frozen" in section and "unchanged (checked)" in section
    # predicted against actual (one-step) change on the validation split
    changes = section.split('<table class="inline changes">')[1].split("</table>")[0]
    assert "F: demographic parity gap of sex" in changes and "U: validation loss" in changes
    assert ("<td class=\"num\">0.2100</td><td class=\"num\">−0.0500</td>"
            "<td class=\"num\">−0.0440</td><td class=\"num\">0.1660</td>") in changes
    assert "+0.0090" in changes and "+0.0095" in changes
    # flagged rows by group and label, the repaired column first
    assert section.index("<code>sex</code> (the repaired column): 10 of 110") < section.index("<code>race</code>: 3 of 60")
    assert "favourable (1)" in section and "unfavourable (0)" in section and "22.5%" in section
    # files and timings
    assert "fairij/fairij_adapter" in section and "influence.csv" in section and "fairij/fairij.json" in section
    assert "Scoring (influence of every training row)" in section and "3.4 s" in section and "7.5 s" in section


def test_fairij_curve_figure(repaired_html: str) -> None:
    section = html_section(repaired_html, "mitigation-0")
    svgs = inline_svgs(section)
    assert len(svgs) == 1 and 'id="mitigation-0-curve"' in section
    svg = svgs[0]
    for text in (">training rows down-weighted (k)<", ">F: demographic parity gap of sex<", ">U: validation loss<",
                 ">actual (one-step IJ update)<", ">predicted (first order)<", ">chosen k = 10<",
                 ">U before + utility budget<", ">% of the 200 training rows<"):
        assert text in svg, text
    assert "stroke-dasharray" in svg  # predicted is dashed: reads in black and white
    ids = re.findall(r'\sid="([^"]+)"', repaired_html)
    assert len(ids) == len(set(ids)) and any(i.startswith("fpmit0-") for i in ids)
    assert set(re.findall(r'(?:url\(#|href="#)([^")]+)', repaired_html)) <= set(ids)
    assert repaired_html.count("<svg") == 9  # 3 slices × 2, the training curve, the FairIJ curve, the first screen's trade-off


def test_fairij_user_strings_are_escaped(repaired_html: str) -> None:
    html = repaired_html
    assert SCRIPT not in html and "<script" not in html.lower()
    section = html_section(html, "mitigation-0")
    top = section.split('<table class="groups flagged">')[1].split("</table>")[0]
    assert f"<td>{ESCAPED}</td>" in top  # a group value of a flagged row
    assert f'<td class="feature">{ESCAPED}</td>' in top  # a feature value
    assert f"<th scope=\"row\">{ESCAPED}</th>" in section  # a group in the flagged-by-group table
    assert f"reports/{ESCAPED}/results.json" in section  # before_audit
    assert f"fairij &#39;{ESCAPED}&#39;" in section  # the command, shell-quoted
    assert f"largest gap between {ESCAPED} and Female" in section


def test_top_flagged_rows_are_capped(repaired_html: str) -> None:
    section = html_section(repaired_html, "mitigation-0")
    top = section.split('<table class="groups flagged">')[1].split("</table>")[0]
    assert top.count("<tr>") == 21  # header + 20 rows of the 25 recorded
    assert "The 20 flagged rows" in section and "of 25 recorded" in section
    assert ">1000</td>" in top and ">1019</td>" in top and ">1020</td>" not in top
    assert "<th scope=\"col\" class=\"feature\">workclass</th>" in top and "<th scope=\"col\">race</th>" in top


def test_fairij_render_is_deterministic_and_from_json_alone(repaired: dict, repaired_html: str) -> None:
    assert render_html(repaired) == repaired_html
    assert render_html(json.loads(dumps(repaired))) == repaired_html


def test_failed_mitigation_keeps_the_before_audit(before: dict) -> None:
    results = copy.deepcopy(before)
    results["mitigations"] = [{"name": "fairij", "status": "failed", "config": {"mode": "ij", "measure": "demographic_parity"},
                               "group": "sex", "error": f"the one-step update diverged; raise fairij damping {SCRIPT}",
                               "created": "2025-01-01T00:10:00+00:00", "command": None}]
    html = render_html(results)
    section = html_section(html, "mitigation-0")
    assert "FAILED" in section and f"the one-step update diverged; raise fairij damping {ESCAPED}" in section
    assert "Nothing was repaired" in section and "<svg" not in section and 'class="comparison"' not in section
    assert "(failed)</a>" in html and "<strong>failed</strong>" in html_section(html, "summary")
    # the before-audit is all there: the same sections and figures as without the mitigation
    plain = render_html(before)
    assert html.count("<svg") == plain.count("<svg") == 7
    assert (html_section(html, "slice-0") == html_section(plain, "slice-0")
            and html_section(html, "model") == html_section(plain, "model"))
    md = render_markdown(results)
    assert "## FairIJ repair of sex" in md and "**FAILED**: the one-step update diverged" in md and SCRIPT not in md


def test_not_run_and_partial_entries_render(before: dict) -> None:
    results = copy.deepcopy(before)
    partial = fairij_entry(before)
    for key in ("comparison", "after_model", "flagged_by_group", "outputs"):
        partial.pop(key)
    f = partial["fairij"]
    for key in ("influence", "top_flagged", "timings", "before", "predicted_change"):
        f.pop(key)
    f["curve"] = [{"k": 0}, {"k": 3, "predicted_dF": None, "actual_F": None}]  # nothing to plot
    f["mode"] = "append"
    f["append"] = {"tokens": 2, "init": "random", "training": {"max_epochs": 2},
                   "history": {"epochs": [{"epoch": 1, "train_loss": 0.5, "val_loss": 0.6},
                                          {"epoch": 2, "train_loss": 0.4, "val_loss": 0.55}], "best_epoch": 2}}
    f["verification"] = {"epochs": 3, "steps": 12, "method": "paired fine-tuning", "pearson_fairness": 0.93,
                         "control_drift": {"fairness": 0.001, "utility": -0.002}, "seconds": 61.0,
                         "checks": [{"rows": 5, "predicted_dF": -0.01, "actual_dF": -0.012, "predicted_dU": 0.001,
                                     "actual_dU": 0.0015}]}
    results["mitigations"] = [
        {"name": "fairij", "status": "not_run", "config": {"mode": "append"}, "group": "race"},
        partial,
        {"name": "fairij", "status": "ok", "fairij": None, "comparison": None, "flagged_by_group": None},
        {"name": "something_else", "status": "not_run"},
    ]
    html = render_html(results)
    assert "NOT RUN" in html_section(html, "mitigation-0") and "has no result" in html_section(html, "mitigation-0")
    section = html_section(html, "mitigation-1")
    assert "Chosen k = 10" in section and "No training row was flagged" in section
    assert ("2 tokens, init random, up to 2 epochs" in section
            and "the repaired model instead trains appended tokens" in section.lower())
    assert section.count("<svg") == 1 and "Appended tokens: training curve" in section  # no curve points: no curve figure
    assert "Verification by paired fine-tuning" in section and "0.930" in section and "−0.0120" in section
    assert "records no chosen k" in html_section(html, "mitigation-2")
    assert 'id="mitigation-3"' in html and "Something else" in html
    assert render_markdown(results).count("## ") >= 5
    assert render_html(json.loads(dumps(results))) == html


@pytest.mark.parametrize(("change", "key"), [
    (lambda f, e: f["curve"].append({"k": 3, "actual_F": "x"}), r"mitigations\[0\].fairij.curve\[\d+\].actual_F"),
    (lambda f, e: f.update(verification={"checks": [None]}), r"mitigations\[0\].fairij.verification.checks\[0\]"),
    (lambda f, e: e.update(flagged_by_group=[None, 3]), r"mitigations\[0\].flagged_by_group\[0\]"),
    (lambda f, e: e.update(status=None), r"mitigations\[0\]"),
    (lambda f, e: e.update(unknown=1), r"mitigations\[0\].unknown"),
])
def test_malformed_entries_are_one_line_errors_naming_the_key(before: dict, change, key: str) -> None:
    """Values of the wrong type (once rendered as best they could) are refused as a whole, naming the key."""
    results = copy.deepcopy(before)
    entry = fairij_entry(before)
    change(entry["fairij"], entry)
    results["mitigations"] = [entry]
    with pytest.raises(FairpromptError, match=rf"key '{key}'") as caught:
        render_html(results)
    assert "\n" not in str(caught.value)


def test_no_mitigations_no_fairij_section(before: dict) -> None:
    html = render_html(before)
    assert "FairIJ" not in html and 'id="mitigation-' not in html and "Repairs" not in html and "Mitigation sections" not in html
    assert "FairIJ" not in render_markdown(before)
    assert render_html(before | {"mitigations": []}) == html
    assert render_markdown(before | {"mitigations": []}) == render_markdown(before)
    assert Report(before).view.mitigations == () and repair_views(parse_results(before)) == ()


def test_fairij_markdown(repaired: dict) -> None:
    md = render_markdown(repaired)
    section = md.split("## FairIJ repair of sex", 1)[1]
    assert "- Mode: ij" in section and "- Chosen: k = 10 of 200 training rows (5.0%)" in section
    assert "- Damping: requested 0.001, used 0.01" in section
    assert "- Test accuracy: 0.760 → 0.751 (change −0.009 on the same 1,200 test rows)" in section
    assert "| sex | Demographic parity difference |" in section and "| overall | Accuracy |" in section
    assert SCRIPT not in md


def test_fairij_grid_table_shows_the_one_class_marks_and_warnings(before: dict) -> None:
    results = copy.deepcopy(before)
    entry = fairij_entry(before)
    mark = f"sex = Female: 100.0% of its 80 rows get the positive decision {SCRIPT}"
    warning = f"k = 20, which the rule would otherwise choose, predicts one class ({SCRIPT}), so it was not chosen; k = 10 was"
    marked = [p["k"] for p in entry["fairij"]["curve"] if p["k"] > entry["fairij"]["chosen_k"]][:2]
    for point in entry["fairij"]["curve"]:
        point["one_class"] = mark if point["k"] in marked else None
    entry["fairij"]["warnings"] = [warning]
    results["mitigations"] = [entry]
    section = html_section(render_html(parse_results(results)), "mitigation-0")
    table = section.split('<table class="groups grid">')[1].split("</table>")[0]
    assert table.count("<tr") == 1 + len(entry["fairij"]["curve"]) and table.count("★ chosen") == 1
    escaped = mark.replace(SCRIPT, ESCAPED)
    assert table.count(f'<td class="one-class">⚠ {escaped}</td>') == len(marked) == 2
    assert f"after the one-step update at k = {', '.join(str(k) for k in marked)}, the validation decisions" in section
    warnings = section.split('<div class="warnings" role="note">')[1].split("</div>")[0]
    assert f"<li>{warning.replace(SCRIPT, ESCAPED)}</li>" in warnings and SCRIPT not in section
    assert f"- Warning: {warning}".split(" (")[0] in render_markdown(parse_results(results))
    # without marks or warnings: the table, no mark, no warning box
    plain = html_section(render_html(parse_results(copy.deepcopy(before) | {"mitigations": [fairij_entry(before)]})),
                         "mitigation-0")
    assert '<table class="groups grid">' in plain and "⚠" not in plain and '<div class="warnings"' not in plain
