"""The report's first screen (what was audited, found, changed, and whether it helped), the accuracy-fairness
plot, the model card and the provenance section: from results.json alone, escaped, offline, deterministic."""

from __future__ import annotations

import copy
import json
import re

import pytest

from fairprompt.report import Report, render_html
from fairprompt.report.format import fmt_points
from fairprompt.report.repair_plots import accuracy_fairness_figure
from fairprompt.report.summary_view import TradeoffPoint
from fairprompt.results import dumps
from report_factories import ESCAPED, SCRIPT, audit_results, fairij_entry, html_section, inline_svgs, reprogram_entry, text_model


def _between(audit: dict, slice_name: str, metric: str) -> dict:
    s = next(s for s in audit["slices"] if s["name"] == slice_name)
    return next(d for d in s["disparities"] if d["metric"] == metric and d["convention"] == "between_groups")


def _text(value: float | None, low: float | None, high: float | None) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


@pytest.fixture(scope="module")
def before() -> dict:
    return audit_results(scores=False, n_boot=20, model=text_model())


@pytest.fixture(scope="module")
def repaired(before: dict) -> dict:
    results = copy.deepcopy(before)
    results["mitigations"] = [reprogram_entry(before, kind="border")]
    return results


@pytest.fixture(scope="module")
def repaired_html(repaired: dict) -> str:
    return render_html(repaired)


def test_first_screen_comes_first_and_says_before_and_after(repaired: dict, repaired_html: str) -> None:
    html = repaired_html
    # At the very top: after the title, before the contents and every other section.
    assert html.index('id="at-a-glance"') < html.index('class="toc"') < html.index('id="summary"')
    glance = html_section(html, "at-a-glance")
    assert "<dt>Model</dt>" in glance and "Frozen all-MiniLM-L6-v2 + 8-token soft prompt" in glance
    assert "<dt>Data</dt>" in glance and f"data/{ESCAPED}.csv" in glance and "1,200 rows audited" in glance
    race = next(s for s in repaired["audit"]["slices"] if s["name"] == "race")
    names = ", ".join(g["group"].replace("<", "&lt;").replace(">", "&gt;") for g in race["groups"])
    assert f"<code>race</code>: {names}" in glance and ESCAPED in names
    assert "intersection <code>sex × race</code>" in glance
    # The headline is the reprogram entry's configured measure and group: demographic parity of sex.
    b = _between(repaired["audit"], "sex", "demographic_parity_difference")
    a = _between(repaired["mitigations"][0]["after"], "sex", "demographic_parity_difference")
    before_text, after_text = _text(b["value"], b["ci_low"], b["ci_high"]), _text(a["value"], a["ci_low"], a["ci_high"])
    assert "Demographic parity difference by sex on the audited rows: the gap FairReprogram was configured to reduce" in glance
    sentence = (f"Demographic parity difference by sex: {before_text} → {after_text} after FairReprogram (λ = 4), "
                "−1.8 pt test accuracy.")
    assert sentence in glance
    # The table: before and after with both intervals, the change, the accuracy cost and the four-fifths verdicts.
    table = glance.split('<table class="glance">')[1].split("</table>")[0]
    assert 'After <a href="#mitigation-0">FairReprogram (λ = 4)</a>' in table
    assert f'{a["value"] - b["value"]:+.3f}'.replace("-", "−") in table
    assert "0.860" in table and "0.842" in table and "−1.8 pt, within the 2.0 pt budget" in table
    assert table.count('class="badge ') == 2 and "lowest impact ratio" in table
    assert "<dt>Changed</dt><dd><a href=\"#mitigation-0\">FairReprogram (λ = 4)</a> of <code>sex</code>: done" in glance


def test_tradeoff_plot_has_one_point_per_method(repaired: dict, repaired_html: str) -> None:
    glance = html_section(repaired_html, "at-a-glance")
    svgs = inline_svgs(glance)
    assert len(svgs) == 1 and 'id="at-a-glance-tradeoff"' in glance
    svg = svgs[0]
    # The model before, the repaired model and the ThresholdOptimizer baseline, each named; the untriggered model
    # and the chosen trigger of `baselines` are the before and after points already, so not drawn twice.
    for text in ("before (as audited)", "after FairReprogram (λ = 4)", "ThresholdOptimizer", "test accuracy",
                 "Demographic parity difference by sex (lower is fairer)"):
        assert text in svg, text
    assert "untriggered" not in svg and "lambda 4" not in svg
    points = Report(repaired).view.summary.points
    assert [p.kind for p in points] == ["before", "after", "baseline"]
    assert points[2].disparity == 0.04 and points[2].accuracy == 0.83 and points[1].accuracy == 0.842
    # The caption carries the baseline's description, escaped.
    assert f"fitted on the validation scores {ESCAPED}" in glance and SCRIPT not in repaired_html


def test_failed_and_not_run_mitigations_are_on_the_first_screen(before: dict) -> None:
    results = copy.deepcopy(before)
    results["mitigations"] = [
        {"name": "fairij", "status": "failed", "config": {"measure": "equal_opportunity", "group": "race"}, "group": "race",
         "error": f"the one-step update diverged; raise fairij damping {SCRIPT}", "created": "2025-01-01T00:10:00+00:00"},
        {"name": "reprogram", "status": "not_run", "config": {"trigger": "soft"}, "group": "sex"},
    ]
    html = render_html(results)
    glance = html_section(html, "at-a-glance")
    # The failed entry's configured measure and group pick the headline even though it never ran.
    assert "Equal opportunity difference by race" in glance
    assert '<span class="badge review">FAILED</span>' in glance
    assert f"the one-step update diverged; raise fairij damping {ESCAPED}" in glance
    assert (f"FairIJ repair of race failed: the one-step update diverged; raise fairij damping {ESCAPED}. "
            "Nothing was repaired.") in glance
    assert '<span class="badge neutral">NOT RUN</span>' in glance and "FairReprogram of sex was not run." in glance
    assert "<svg" not in glance  # no repaired model: nothing to plot
    assert html.count("<svg") == render_html(before).count("<svg")
    card = html_section(html, "card")
    assert f"FairIJ repair of race failed: the one-step update diverged; raise fairij damping {ESCAPED}." in card
    assert "FairReprogram of sex was not run." in card and "Fix the cause of the failed FairIJ repair of race" in card


def test_without_mitigations_the_largest_gap_is_the_headline(before: dict) -> None:
    html = render_html(before)
    glance = html_section(html, "at-a-glance")
    candidates = [(abs(d["value"]), s["name"], d["metric"]) for s in before["audit"]["slices"] if len(s["columns"]) == 1
                  for d in s["disparities"] if d["convention"] == "between_groups" and d["value"] is not None
                  and d["metric"] in ("demographic_parity_difference", "equalized_odds_difference")]
    _, slice_name, metric = max(candidates)
    title = {"demographic_parity_difference": "Demographic parity difference",
             "equalized_odds_difference": "Equalized odds difference"}[metric]
    assert (f"{title} by {slice_name} on the audited rows: the largest demographic parity or equalized odds difference "
            "of a single sensitive column") in glance
    assert "nothing: no repair was run" in glance and "<svg" not in glance and "After " not in glance
    assert '<th scope="row">As audited' in glance and ">Change</th>" not in glance  # nothing changed: no change column
    assert 'href="#at-a-glance"' in html and 'href="#card"' in html
    assert Report(before).view.summary.has_plot is False


def test_fairij_headline_and_repaired_point(before: dict) -> None:
    results = copy.deepcopy(before)
    results["mitigations"] = [fairij_entry(before)]
    summary = Report(results).view.summary
    assert summary.headline.metric == "demographic_parity_difference" and summary.headline.slice == "sex"
    after = summary.rows_table[1]
    assert after.method == "FairIJ repair (k = 10)" and after.accuracy == 0.7512
    assert fmt_points(after.accuracy_change) == "−0.9 pt" and after.within_budget is None  # fairij has no accuracy budget
    assert [p.kind for p in summary.points] == ["before", "after"] and summary.has_plot


def test_rule_not_met_is_a_note_and_a_caveat(before: dict) -> None:
    results = copy.deepcopy(before)
    results["mitigations"] = [reprogram_entry(before, kind="soft", rule_met=False)]
    html = render_html(results)
    glance = html_section(html, "at-a-glance")
    assert "rule not met: no λ &gt; 0 kept the accuracy within the budget" in glance
    card = html_section(html, "card")
    assert "FairReprogram of sex: the operating-point rule was not met" in card
    assert "widen the λ grid or the accuracy budget" in card
    assert f"FairReprogram of sex: lambda 16: the loss is not finite at epoch 2 {ESCAPED}" in card  # its warnings


def test_model_card_headings_and_contents(repaired: dict, repaired_html: str) -> None:
    card = html_section(repaired_html, "card")
    for heading in ("Model details", "Intended use", "Factors", "Metrics and thresholds",
                    "Evaluation, training and tuning data", "Quantitative analyses", "Ethical considerations",
                    "Caveats and recommendations"):
        assert f">{heading}</h3>" in card, heading
    # Intended use is unknown to fairprompt: said so, the assumptions listed, a labelled placeholder from the spec.
    assert "fairprompt cannot know what the model is for" in card
    assert "[To be completed by the model owner] Intended use (no spec with a title or description was recorded)" in card
    assert "<td>y = 1" in card and "Assumed: the labels" in card
    # Factors: each sensitive column with its groups (escaped), the intersection.
    assert "Sensitive column race" in card and ESCAPED in card and "Intersection sex × race" in card
    # Metrics and thresholds from audit.config and the bootstrap; the repair's settings.
    assert "impact ratio ≥ 0.8" in card and "30 rows" in card and "95% percentile bootstrap" in card
    assert "20 resamples" in card and "measure demographic_parity, max_accuracy_drop 0.02" in card
    # Data: evaluation, training (model splits) and the repair's tuning rows.
    assert "96 train · 48 validation · 300 test" in card
    assert "trained on the training split, chosen on the validation split" in card and "2,000 rows to fit" in card
    # Quantitative analyses: one compact table per slice with intervals.
    assert card.count('<table class="groups card">') == 3 and card.count('class="ci"') > 10
    assert "Repaired variant: FairReprogram" in card and "backbone unchanged (checked)" in card


def test_model_card_without_a_model_says_so_and_flags_undefined_rates() -> None:
    results = audit_results(scores=False, degenerate=True)
    html = render_html(results)
    card = html_section(html, "card")
    assert "the predictions were supplied to fairprompt, which knows nothing of how they were made" in card
    assert "The model is not recorded: the audit covers these predictions only." in card
    assert "no spec with a title or description was recorded" in card
    # NaN metrics with their reasons, and the groups they concern, escaped.
    assert "undefined (no rows with a negative true label)" in card and "undefined (no rows predicted positive)" in card
    assert f"of {ESCAPED}" in card and SCRIPT not in html
    glance = html_section(html, "at-a-glance")
    assert "not recorded: the predictions were supplied" in glance


def test_small_groups_are_caveats(before: dict) -> None:
    results = copy.deepcopy(before)
    slices = results["audit"]["slices"]
    group = slices[1]["groups"][0]
    group["small_group"], group["n"] = True, 7
    card = html_section(render_html(results), "card")
    assert f"race: 1 group with fewer than 30 rows ({group['group'].replace('<', '&lt;').replace('>', '&gt;')}, n=7)" in card
    assert "Collect more rows for the small groups" in card and "SMALL" in card


def test_provenance_has_inputs_packages_seeds_spec_and_command(repaired: dict, repaired_html: str) -> None:
    prov = html_section(repaired_html, "provenance")
    assert "ab" * 32 in prov and f"data/{ESCAPED}.csv" in prov
    assert all(f'<td class="mono">{name}</td>' in prov for name in repaired["packages"])
    assert '<span class="mono">bootstrap</span> = 0' in prov
    assert f"fairprompt audit --name &#39;{ESCAPED}&#39;" in prov
    assert "2025-01-01T00:00:00+00:00" in prov and repaired["fairprompt_version"] in prov
    scored = audit_results(scores=True)
    scored["spec"]["title"] = f"Hiring {SCRIPT}"
    html = render_html(scored)
    spec = html_section(html, "provenance").split('<pre class="spec">')[1].split("</pre>")[0]
    assert spec == f"name: {ESCAPED}\naudit:\n  n_boot: 40\ntitle: Hiring {ESCAPED}\n"  # YAML, escaped
    # The model card's placeholder for the intended use quotes the spec's title, plainly labelled.
    assert (f"[To be completed by the model owner] Intended use of “Hiring {ESCAPED}” (from the spec&#39;s title)"
            in html_section(html, "card"))


def test_new_sections_are_offline_unique_and_deterministic(repaired: dict, repaired_html: str) -> None:
    html = repaired_html
    assert "<script" not in html.lower() and 'src="http' not in html and "<link" not in html.lower()
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert set(re.findall(r'(?:url\(#|href="#)([^")]+)', html)) <= set(ids)
    assert render_html(json.loads(dumps(repaired))) == html


def test_accuracy_fairness_figure_reads_in_black_and_white() -> None:
    points = [TradeoffPoint("before (as audited)", "before", 0.2, 0.84, 0.18, 0.22, 0.83, 0.85),
              TradeoffPoint("after $x$ <b>", "after", 0.12, 0.83, 0.1, 0.14),
              TradeoffPoint("ThresholdOptimizer", "baseline", 0.01, 0.81)]
    svg = str(accuracy_fairness_figure(points=points, x_label="DP difference by sex", y_label="test accuracy",
                                       ideal=0.0, prefix="t-"))
    assert "after $x$ &lt;b&gt;" in svg and "<b>" not in svg  # names drawn literally (no mathtext), escaped
    assert "ThresholdOptimizer" in svg and "ideal (0)" in svg and "interval" in svg
    # Methods differ by marker shape and fill, not colour alone: no colour outside the grey scale.
    colours = set(re.findall(r"#([0-9a-fA-F]{6})", svg))
    assert colours and all(c[0:2] == c[2:4] == c[4:6] for c in (c.lower() for c in colours)), colours
    assert svg == str(accuracy_fairness_figure(points=points, x_label="DP difference by sex", y_label="test accuracy",
                                               ideal=0.0, prefix="t-"))
