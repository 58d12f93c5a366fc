"""The FairIJ section of the report: rendered from a results.json ``mitigations`` block alone, escaped, deterministic."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest

from fairprompt.errors import FairpromptError
from fairprompt.metrics import audit
from fairprompt.report import Report, render_html, render_markdown
from fairprompt.results import dumps
from fairprompt.report.view import repair_views
from fairprompt.results import parse_results

from test_report import ESCAPED, SCRIPT, _results, _svgs, _text_model

HEADLINE = ("demographic_parity_difference", "disparate_impact", "equal_opportunity_difference",
            "equalized_odds_difference", "accuracy_difference")


def _after_audit(before: dict, seed: int = 1) -> dict:
    """An after-audit of the same rows (different predictions), as the pipeline writes it."""
    rng = np.random.default_rng(seed)
    n = before["n_rows"]
    sex = rng.choice(["Female", "Male"], n, p=[0.35, 0.65])
    race = rng.choice(["White", "Black", SCRIPT, "$x$"], n, p=[0.6, 0.25, 0.1, 0.05]).astype(object)
    y = rng.integers(0, 2, n)
    p = (rng.random(n) * 0.6 + 0.3 * y > 0.45).astype(int)
    return audit(y_true=y, y_pred=p, sensitive=pd.DataFrame({"sex": sex, "race": race}), n_boot=20, seed=seed).to_dict()


def _comparison(before: dict, after: dict) -> list[dict]:
    """The ``comparison`` rows of a mitigation entry (the layout of docs/results-schema.md)."""
    def index(a: dict) -> dict:
        out = {(s["name"], d["metric"]): d for s in a["slices"] for d in s["disparities"]
               if d["convention"] == "between_groups" and d["metric"] in HEADLINE}
        out |= {("overall", "accuracy"): o for o in a["overall"] if o["metric"] == "accuracy"}
        return out

    b, a = index(before), index(after)
    return [{"slice": key[0], "metric": key[1], "ideal": a[key].get("ideal", 1.0), "before": b[key]["value"],
             "before_ci_low": b[key]["ci_low"], "before_ci_high": b[key]["ci_high"], "after": a[key]["value"],
             "after_ci_low": a[key]["ci_low"], "after_ci_high": a[key]["ci_high"],
             "change": None if b[key]["value"] is None or a[key]["value"] is None else a[key]["value"] - b[key]["value"]}
            for key in a if key in b]


CURVE = [  # k, predicted dF, predicted dU, actual F, actual U (F0 = 0.21, U0 = 0.52; budget 0.01)
    (0, 0.0, 0.0, 0.21, 0.52), (2, -0.012, 0.001, 0.197, 0.5215), (4, -0.025, 0.003, 0.183, 0.524),
    (7, -0.04, 0.006, 0.171, 0.527), (10, -0.05, 0.009, 0.166, 0.5295), (14, -0.066, 0.014, 0.158, 0.535),
    (20, -0.08, 0.02, None, None),  # a diverged step: no actual values
]


def _fairij(*, chosen_k: int = 10, mode: str = "ij", top: int = 25) -> dict:
    n = 200
    curve = [{"k": k, "fraction": k / n, "weight_removed": float(k), "predicted_dF": dF, "predicted_dU": dU,
              "actual_F": F, "actual_U": U, "actual_dF": None if F is None else F - 0.21,
              "actual_dU": None if U is None else U - 0.52, "feasible_predicted": dU <= 0.01,
              "feasible_actual": U is not None and U - 0.52 <= 0.01, "chosen": k == chosen_k}
             for k, dF, dU, F, U in CURVE]
    chosen = next(p for p in curve if p["chosen"])
    top_flagged = [{
        "rank": i + 1, "row_id": 1000 + i, "I_F": -0.01 + i * 0.0003, "I_U": 0.0004 * (i % 3), "weight": 0.0,
        "group": SCRIPT if i == 0 else "Female", "groups": {"sex": SCRIPT if i == 0 else "Female", "race": "White"},
        "label": ">50K" if i % 2 else "<=50K", "favourable": bool(i % 2),
        "features": {"age": str(30 + i), "workclass": SCRIPT if i == 0 else "Private", "occupation": None},
    } for i in range(top)]
    return {
        "method": "fairij", "mode": mode, "measure": "demographic_parity", "selection": "actual",
        "rule": "lowest actual validation F after the one-step IJ update among grid points whose actual validation U "
                "rose by at most utility_budget (k = 0 always qualifies; ties go to the smaller k)",
        "weighting": "alpha_i = 1 (row removed) on the top-k rows with I_F < 0, 0 elsewhere", "graded": False,
        "utility_budget": 0.01, "max_fraction": 0.1, "seed": 0, "n_train": n, "chosen_k": chosen_k,
        "chosen_fraction": chosen_k / n, "flagged_rows": chosen_k, "removed_weight": float(chosen_k),
        "predicted_change": {"fairness": chosen["predicted_dF"], "utility": chosen["predicted_dU"]},
        "one_step_change": {"fairness": chosen["actual_dF"], "utility": chosen["actual_dU"]},
        "before": {"fairness": 0.21, "utility": 0.52}, "after": {"fairness": chosen["actual_F"], "utility": chosen["actual_U"]},
        "curve": curve,
        "influence": {"measure": "demographic_parity", "fairness": 0.21, "utility": 0.52,
                      "curvature": "generalised Gauss-Newton (damped Cholesky)", "damping": 0.01,
                      "damping_requested": 0.001, "damping_raised": True, "l2": 0.0, "n": n, "p": 3842,
                      "eigen": {"largest": 2.5, "smallest": 1e-12, "effective_rank": 180, "rank_threshold": 1e-6,
                                "above_damping": 95},
                      "mean_gradient_norm": 0.046, "seconds": 3.2, "jacobian_seconds": 2.9,
                      "fairness_detail": {"gaps": [{"rows": "(all rows)", "group_means": {"Female": 0.11, SCRIPT: 0.32},
                                                    "pair": [SCRIPT, "Female"]}], "smooth": False, "favourable_class": 1}},
        "top_flagged": top_flagged,
        "append": None, "artifacts": {"adapter": "fairij/fairij_adapter", "record": "fairij/fairij.json"},
        "timings": {"scoring_seconds": 3.4, "jacobian_seconds": 2.9, "selection_seconds": 1.25, "repair_seconds": 0.01,
                    "total_seconds": 4.66},
        "verification": None, "split_used_for_selection": "validation",
    }


def _mitigation(results: dict, **fairij) -> dict:
    after = _after_audit(results["audit"])
    f = _fairij(**fairij)
    return {
        "name": "fairij", "status": "ok",
        "config": {"measure": "demographic_parity", "mode": f["mode"], "utility_budget": 0.01, "max_fraction": 0.1,
                   "group": None, "damping": 0.001, "graded": False, "selection": "actual", "append_tokens": 4,
                   "append_training": {"max_epochs": 10, "patience": 3, "batch_size": 32, "lr": 0.03}, "seed": 0,
                   "verify": False, "verify_epochs": 3},
        "group": "sex", "created": "2025-01-01T00:10:00+00:00", "command": ["fairprompt", "mitigate", "fairij", SCRIPT],
        "before_audit": f"reused from reports/{SCRIPT}/results.json (created 2025-01-01T00:00:00+00:00)",
        "task_prompt": {"source": "cache", "cache_key": "5d322a2b" * 8},
        "fairij": f,
        "flagged_by_group": [
            {"column": "race", "group": "White", "label": 1, "train_rows": 60, "flagged_rows": 3, "removed_weight": 3.0},
            {"column": "sex", "group": "Female", "label": 0, "train_rows": 50, "flagged_rows": 1, "removed_weight": 1.0},
            {"column": "sex", "group": "Female", "label": 1, "train_rows": 20, "flagged_rows": 0, "removed_weight": 0.0},
            {"column": "sex", "group": SCRIPT, "label": 1, "train_rows": 40, "flagged_rows": 9, "removed_weight": 9.0},
        ],
        "after": after,
        "after_model": {"test_rows": 1200, "threshold": 0.5, "test_accuracy": 0.7512, "test_auc": 0.77,
                        "before_test_accuracy": 0.76, "before_test_auc": 0.7689, "accuracy_change": 0.7512 - 0.76,
                        "auc_change": 0.77 - 0.7689, "changed": "task prompt and head (one-step IJ update); backbone frozen",
                        "backbone_sha256": "92e037d4" + "0" * 56, "backbone_unchanged": True},
        "comparison": _comparison(results["audit"], after),
        "outputs": {"influence_csv": "influence.csv", "artifact_dir": "fairij",
                    "artifacts": {"adapter": "fairij/fairij_adapter", "record": "fairij/fairij.json"}},
        "seconds": 7.5,
    }


@pytest.fixture(scope="module")
def before() -> dict:
    return _results(scores=False, n_boot=20, model=_text_model())


@pytest.fixture(scope="module")
def repaired(before: dict) -> dict:
    results = copy.deepcopy(before)
    results["mitigations"] = [_mitigation(before)]
    return results


@pytest.fixture(scope="module")
def repaired_html(repaired: dict) -> str:
    return render_html(repaired)


def _section(html: str, anchor: str) -> str:
    return html.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


def test_fairij_section_shows_what_ran_and_the_before_after(repaired: dict, repaired_html: str) -> None:
    html = repaired_html
    assert '<a href="#mitigation-0">FairIJ repair of sex</a>' in html  # contents
    assert html.index('id="compliance"') < html.index('id="mitigation-0"') < html.index('id="provenance"')
    section = _section(html, "mitigation-0")
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
    assert "<td class=\"num\">0.2100</td><td class=\"num\">−0.0500</td><td class=\"num\">−0.0440</td><td class=\"num\">0.1660</td>" in changes
    assert "+0.0090" in changes and "+0.0095" in changes
    # flagged rows by group and label, the repaired column first
    assert section.index("<code>sex</code> (the repaired column): 10 of 110") < section.index("<code>race</code>: 3 of 60")
    assert "favourable (1)" in section and "unfavourable (0)" in section and "22.5%" in section
    # files and timings
    assert "fairij/fairij_adapter" in section and "influence.csv" in section and "fairij/fairij.json" in section
    assert "Scoring (influence of every training row)" in section and "3.4 s" in section and "7.5 s" in section


def test_fairij_curve_figure(repaired_html: str) -> None:
    section = _section(repaired_html, "mitigation-0")
    svgs = _svgs(section)
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
    section = _section(html, "mitigation-0")
    top = section.split('<table class="groups flagged">')[1].split("</table>")[0]
    assert f"<td>{ESCAPED}</td>" in top  # a group value of a flagged row
    assert f'<td class="feature">{ESCAPED}</td>' in top  # a feature value
    assert f"<th scope=\"row\">{ESCAPED}</th>" in section  # a group in the flagged-by-group table
    assert f"reports/{ESCAPED}/results.json" in section  # before_audit
    assert f"fairij &#39;{ESCAPED}&#39;" in section  # the command, shell-quoted
    assert f"largest gap between {ESCAPED} and Female" in section


def test_top_flagged_rows_are_capped(repaired_html: str) -> None:
    section = _section(repaired_html, "mitigation-0")
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
    section = _section(html, "mitigation-0")
    assert "FAILED" in section and f"the one-step update diverged; raise fairij damping {ESCAPED}" in section
    assert "Nothing was repaired" in section and "<svg" not in section and 'class="comparison"' not in section
    assert "(failed)</a>" in html and "<strong>failed</strong>" in _section(html, "summary")
    # the before-audit is all there: the same sections and figures as without the mitigation
    plain = render_html(before)
    assert html.count("<svg") == plain.count("<svg") == 7
    assert _section(html, "slice-0") == _section(plain, "slice-0") and _section(html, "model") == _section(plain, "model")
    md = render_markdown(results)
    assert "## FairIJ repair of sex" in md and "**FAILED**: the one-step update diverged" in md and SCRIPT not in md


def test_not_run_and_partial_entries_render(before: dict) -> None:
    results = copy.deepcopy(before)
    partial = _mitigation(before)
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
    assert "NOT RUN" in _section(html, "mitigation-0") and "has no result" in _section(html, "mitigation-0")
    section = _section(html, "mitigation-1")
    assert "Chosen k = 10" in section and "No training row was flagged" in section
    assert "2 tokens, init random, up to 2 epochs" in section and "the repaired model instead trains appended tokens" in section.lower()
    assert section.count("<svg") == 1 and "Appended tokens: training curve" in section  # no curve points: no curve figure
    assert "Verification by paired fine-tuning" in section and "0.930" in section and "−0.0120" in section
    assert "records no chosen k" in _section(html, "mitigation-2")
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
    entry = _mitigation(before)
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
