"""The FairReprogram section of the report: rendered from a results.json ``mitigations`` block alone, escaped,
self-contained, deterministic; FairIJ entries and reports without mitigations render as before."""

from __future__ import annotations

import base64
import copy
import json
import re

import pytest

from fairprompt.errors import FairpromptError
from fairprompt.report import Report, render_html, render_markdown
from fairprompt.report.reprogram_view import png_data_uri
from fairprompt.results import dumps
from report_factories import (
    ESCAPED,
    LAMBDAS,
    PNG,
    SCRIPT,
    audit_results,
    fairij_entry,
    html_section,
    inline_svgs,
    reprogram_entry,
    text_model,
)


@pytest.fixture(scope="module")
def before() -> dict:
    return audit_results(scores=False, n_boot=20, model=text_model())


@pytest.fixture(scope="module")
def border(before: dict) -> dict:
    results = copy.deepcopy(before)
    results["mitigations"] = [reprogram_entry(before, kind="border")]
    return results


@pytest.fixture(scope="module")
def border_html(border: dict) -> str:
    return render_html(border)


def test_reprogram_section_shows_what_ran(border: dict, border_html: str) -> None:
    html = border_html
    assert '<a href="#mitigation-0">FairReprogram of sex</a>' in html  # contents
    assert "<a href=\"#mitigation-0\">FairReprogram</a> of <code>sex</code>: chosen λ = 4;" in html_section(html, "summary")
    assert html.index('id="compliance"') < html.index('id="mitigation-0"') < html.index('id="provenance"')
    section = html_section(html, "mitigation-0")
    assert section.startswith('>\n<h2>FairReprogram of <code>sex</code></h2>')
    assert "Chosen λ = 4: a border trigger, to reduce the gap between groups of <code>sex</code>." in section
    for fact in ("Trigger</th>\n      <td>border (4 pixels wide)",
                 "pixel border: a learned frame around every image; image model",
                 "Objective</th>\n      <td>adversary", "with gradient projection", "<code>demographic_parity</code>",
                 "between-groups demographic parity gap of sex on the selection rows",
                 "Tuning</th>\n      <td>trained on the training split, chosen on the validation split",
                 "2,000 rows to train each trigger; 1,000 rows to choose λ; groups Female, " + ESCAPED,
                 "Trainable parameters</th>\n      <td>1,920 of 22,717,828 (0.0085%)", "backbone 22,713,216 parameters, frozen",
                 "λ grid</th>\n      <td>0, 1, 4, 16", "Accuracy budget</th>\n      <td>0.02",
                 "Chosen</th>\n      <td>λ = 4", "the smallest selection gap among those", "Rule met</th>\n      <td>yes",
                 "accuracy 0.845 → 0.838, gap 0.209 → 0.061", "3 epochs, batch size 64, learning rate 0.05",
                 "adversary learning rate 0.01, adversary hidden units 16", "Seed</th>\n      <td>7",
                 "Before-audit</th>\n      <td>computed in this run", "Task prompt (not changed)</th>",
                 "loaded from the cache", "cache key 5d322a2b5d32…"):
        assert fact in section, fact
    assert "RULE NOT MET" not in section
    # the triggered model on the test split
    assert "Test accuracy</th>\n      <td>0.860 → 0.842" in section and "change −0.018 on the same 1,200 test rows" in section
    assert "unchanged (checked)" in section and "Task adapter</th>\n      <td>unchanged (checked)" in section
    # no FairIJ-only parts
    assert "Flagged training rows" not in section and "Predicted and actual change" not in section


def test_reprogram_view(border: dict) -> None:
    m = Report(border).view.mitigations[0]
    r = m.reprogram
    assert m.name == "reprogram" and m.ok and m.chosen_text == "λ = 4" and m.curve is None and m.top_flagged == ()
    assert r.chosen_lambda == 4.0 and r.rule_met is True and r.trigger_kind == "border" and r.objective == "adversary"
    assert [p.lam for p in r.points] == list(LAMBDAS) and [p.chosen for p in r.points] == [False, False, True, False]
    assert r.chosen.accuracy == 0.838 and r.before.gap == 0.209 and r.accuracy_floor == pytest.approx(0.825)
    assert [p.name for p in r.diverged] == ["λ = 16"] and r.trigger.image_uri == PNG
    assert [b.is_reprogram for b in r.baselines] == [False, False, True]


def test_reprogram_before_after_and_baselines(border: dict, border_html: str) -> None:
    section = html_section(border_html, "mitigation-0")
    table = section.split('<table class="comparison">')[1].split("</table>")[0]
    rows = border["mitigations"][0]["comparison"]
    dp = next(r for r in rows if r["slice"] == "sex" and r["metric"] == "demographic_parity_difference")
    assert (f'{dp["before"]:.3f}</span> <span class="ci">[{dp["before_ci_low"]:.3f}, {dp["before_ci_high"]:.3f}]' in table
            and f'{dp["after"]:.3f}</span> <span class="ci">[{dp["after_ci_low"]:.3f}, {dp["after_ci_high"]:.3f}]' in table)
    change = round(dp["after"] - dp["before"], 3)
    assert f"{'−' if change < 0 else '+' if change > 0 else '±'}{abs(change):.3f}" in table
    assert ">Overall</th>" in table and "Equalized odds difference" in table
    baselines = section.split('<table class="groups baselines">')[1].split("</table>")[0]
    assert baselines.count("<tr") == 4  # header + 3 methods
    assert ('<tr class="chosen"><th scope="row">FairReprogram (lambda 4)<small class="note">the chosen trigger</small></th>\n'
            '      <td class="num">0.842</td><td class="num">−0.018</td>\n'
            '      <td class="num">0.061</td><td class="num">—</td></tr>') in baselines
    assert ("ThresholdOptimizer (demographic_parity)" in baselines
            and '<td class="num">0.830</td><td class="num">−0.030</td>' in baselines)
    assert f"fitted on the validation scores {ESCAPED}" in baselines


def test_reprogram_lambda_table_and_warnings(border_html: str) -> None:
    section = html_section(border_html, "mitigation-0")
    table = section.split('<table class="groups lambdas">')[1].split("</table>")[0]
    assert table.count("<tr") == 6  # header, the untriggered model, 4 lambdas
    assert ('<tr class="untriggered"><th scope="row">untriggered model</th><td class="num">0.845</td>'
            '<td class="num">0.209</td><td class="num">0.209</td><td class="num">0.167</td>') in table
    assert ('<tr class="chosen"><th scope="row">λ = 4</th><td class="num">0.838</td><td class="num">0.061</td>'
            '<td class="num">0.061</td><td class="num">0.072</td><td class="num">3</td><td class="num">21.0 s</td>'
            '<td>yes</td><td>★ chosen</td><td class="diverged">—</td><td class="one-class">—</td></tr>') in table
    assert '<th scope="row">λ = 0 (control)</th><td class="num">0.851</td>' in table
    assert (f'<th scope="row">λ = 16</th><td class="num">0.791</td><td class="num">0.083</td><td class="num">0.083</td>'
            f'<td class="num">0.094</td><td class="num">1</td><td class="num">20.0 s</td><td>no</td><td></td>'
            f'<td class="diverged">lambda 16: the loss is not finite at epoch 2 {ESCAPED}</td>') in table
    assert table.count("★ chosen") == 1
    warnings = section.split('<div class="warnings" role="note">')[1].split("</div>")[0]
    assert f"<li>lambda 16: the loss is not finite at epoch 2 {ESCAPED}</li>" in warnings
    # files and timings
    for text in ("reprogram/trigger.safetensors", "reprogram/reprogram.json", "chosen trigger (JSON)", "trigger folder",
                 "Training every λ and choosing</th><td class=\"num\">5 min 10 s", "Mean epoch at the chosen λ = 4",
                 "6 min 40 s", "<span class=\"mono\">max_accuracy_drop</span> = 0.02"):
        assert text in section, text


def test_reprogram_pareto_figure(border_html: str) -> None:
    section = html_section(border_html, "mitigation-0")
    svgs = inline_svgs(section)
    assert len(svgs) == 1 and 'id="mitigation-0-pareto"' in section
    assert "Accuracy–fairness trade-off over λ (selection rows)" in section
    svg = svgs[0]
    for text in (">λ=0<", ">λ=1<", ">λ=4<", ">λ=16<", ">untriggered<", ">one trigger per λ<", ">Pareto front<",
                 ">chosen λ = 4<", ">untriggered model<", ">diverged (last good trigger)<", ">accuracy floor of the rule<",
                 ">accuracy (selection rows)<", "demographic parity gap of sex (selection rows; lower is fairer)"):
        assert text in svg, text
    assert "stroke-dasharray" in svg  # the accuracy floor is dash-dot: reads in black and white
    caption = section.split('id="mitigation-0-pareto"')[1].split("</figure>")[0]
    assert "The star marks the chosen λ = 4" in caption and "trained on the training split" in caption
    ids = re.findall(r'\sid="([^"]+)"', border_html)
    assert len(ids) == len(set(ids)) and any(i.startswith("fpmit0-pareto-") for i in ids)
    assert set(re.findall(r'(?:url\(#|href="#)([^")]+)', border_html)) <= set(ids)
    # 3 slices × 2, the model's training curve, the Pareto plot, the first screen's trade-off
    assert border_html.count("<svg") == 9


def test_border_trigger_is_inlined_as_png(border_html: str) -> None:
    section = html_section(border_html, "mitigation-0")
    assert f'<img class="trigger" src="{PNG}" alt="The chosen border trigger, 32 × 32 pixels">' in section
    assert "Trigger settings: <span class=\"mono\">image_size</span> = 32, <span class=\"mono\">width</span> = 4" in section
    # self-contained: the only src is the inline PNG; no external resources
    assert re.findall(r'\ssrc="([^"]*)"', border_html) == [PNG]
    assert "<link" not in border_html.lower() and 'href="http' not in border_html and "@import" not in border_html
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', border_html))
    assert "img.trigger" in border_html  # the FairReprogram CSS is included


@pytest.mark.parametrize("uri", [
    "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",  # another media type
    "javascript:alert(1)",
    'data:image/png;base64,iVBORw0KGgo" onerror="alert(1)',  # an attribute break-out
    "data:image/png;base64,iVBOR w0KGgo=",  # not base64
    "data:image/png;base64," + base64.b64encode(b"GIF89a not a png").decode(),  # base64, but not a PNG
    "https://example.com/trigger.png",
])
def test_invalid_image_uri_is_not_inlined(before: dict, uri: object) -> None:
    results = copy.deepcopy(before)
    entry = reprogram_entry(before, kind="patch")
    entry["reprogram"]["trigger"]["image_png"] = uri
    results["mitigations"] = [entry]
    html = render_html(results)
    section = html_section(html, "mitigation-0")
    assert "<img" not in html and "image not shown" in section
    assert 'onerror="' not in html and "javascript:" not in html and "example.com" not in html
    assert png_data_uri(uri) is None and png_data_uri(PNG) == PNG


def test_patch_trigger(before: dict) -> None:
    results = copy.deepcopy(before)
    results["mitigations"] = [reprogram_entry(before, kind="patch")]
    section = html_section(render_html(results), "mitigation-0")
    assert "Trigger</th>\n      <td>patch (8 × 8 pixels, bottom right corner)" in section
    assert f'<img class="trigger" src="{PNG}" alt="The chosen patch trigger, 32 × 32 pixels">' in section
    assert "a square over one corner" in section


def test_hard_trigger_shows_its_words(before: dict) -> None:
    results = copy.deepcopy(before)
    results["mitigations"] = [reprogram_entry(before, kind="hard", chosen=1.0)]
    html = render_html(results)
    section = html_section(html, "mitigation-0")
    assert "Chosen λ = 1: a hard trigger" in section
    assert ("Trigger</th>\n      <td>hard (5 words)" in section
            and "hard prompt: vocabulary words added to every input; text model" in section)
    assert "The trigger is these 5 vocabulary words" in section
    assert (f'<p class="trigger-words"><code>equal</code> <code>fair</code> <code>{ESCAPED}</code> <code>##ness</code> '
            "<code>$x$</code></p>") in section
    assert f'<pre class="example">equal fair {ESCAPED} ##ness $x$</pre>' in section
    assert "Token ids: 5020, 4189, 100, 2791, 1002" in section
    assert "the selector over the candidate words is what trains" in section
    assert "<img" not in html and "nearest words" not in section.lower()
    assert '<tr class="chosen"><th scope="row">λ = 1</th>' in section and "chosen λ = 1<" in inline_svgs(section)[0]


def test_soft_trigger_shows_nearest_words_not_as_the_trigger(before: dict) -> None:
    results = copy.deepcopy(before)
    results["mitigations"] = [reprogram_entry(before, kind="soft", chosen=16.0, rule_met=False)]
    html = render_html(results)
    section = html_section(html, "mitigation-0")
    assert "RULE NOT MET" in section and "Rule met</th>\n      <td>no" in section
    assert ("The star marks the chosen λ = 16: no λ &gt; 0 stayed within the accuracy budget, "
            "so the most accurate λ of the grid was taken.") in section
    assert "Trigger</th>\n      <td>soft (3 tokens of dimension 384)" in section
    assert "A soft trigger is 3 continuous vectors of dimension 384, not words." in section
    assert "<strong>nearest words, not the trigger</strong>" in section
    nearest = section.split('<table class="inline trigger-nearest">')[1].split("</table>")[0]
    assert "Nearest vocabulary words" in nearest
    assert '<td class="num">1</td><td><code>neutral</code></td><td class="num">0.912</td>' in nearest
    assert f'<td class="num">2</td><td><code>{ESCAPED}</code></td><td class="num">1.204</td>' in nearest
    assert '<td class="num">3</td><td><code>[unused7]</code></td><td class="num">—</td>' in nearest
    assert "The trigger is these" not in section and "<img" not in html
    md = render_markdown(results)
    assert "- Nearest vocabulary words (not the trigger itself): neutral \\<script\\>alert(1)\\</script\\> \\[unused7\\]" in md


def test_conditional_trigger_and_rate_anchor_are_described(before: dict) -> None:
    results = copy.deepcopy(before)
    entry = reprogram_entry(before, kind="conditional")
    entry["config"] |= {"objective": "surrogate", "projection": False, "anchor": 10.0, "bottleneck": 8}
    entry["reprogram"]["config"] |= {"objective": "surrogate", "projection": False, "anchor": 10.0, "bottleneck": 8}
    results["mitigations"] = [entry]
    section = html_section(render_html(results), "mitigation-0")
    assert "conditional (5 tokens of dimension 384, written per input through a bottleneck of 8)" in section
    assert "written for each input by a small generator that reads it" in section
    assert "with the rate anchor 10: + λ × 10 × (the batch&#39;s mean P(favourable) minus the untriggered" in section


def test_user_strings_are_escaped(before: dict) -> None:
    results = copy.deepcopy(before)
    entries = [reprogram_entry(before, kind=kind) for kind in ("border", "hard", "soft")]
    entries[0]["group"] = SCRIPT
    entries[0]["reprogram"]["warnings"].append(f"a warning {SCRIPT}")
    entries[1]["reprogram"]["tuning"]["how"] = f"how {SCRIPT}"
    entries[2]["reprogram"]["rule"] = f"rule {SCRIPT}"
    results["mitigations"] = entries
    html = render_html(results)
    assert SCRIPT not in html and "<script" not in html.lower()
    first = html_section(html, "mitigation-0")
    assert f"<h2>FairReprogram of <code>{ESCAPED}</code></h2>" in first
    assert f"<li>a warning {ESCAPED}</li>" in first
    assert f"demographic parity gap of {ESCAPED}" in first  # the group in the gap's name
    assert f"reprogram &#39;{ESCAPED}&#39;" in first  # the command, shell-quoted
    assert f"<code>{ESCAPED}</code>" in html_section(html, "mitigation-1")  # a word of the hard trigger
    assert f"how {ESCAPED}" in html_section(html, "mitigation-1") and f"rule {ESCAPED}" in html_section(html, "mitigation-2")
    assert any(ESCAPED in svg for svg in inline_svgs(first))  # the group in the plot's axis label, escaped by matplotlib
    md = render_markdown(results)
    assert SCRIPT not in md and "a warning \\<script\\>" in md


def test_failed_and_not_run(before: dict) -> None:
    results = copy.deepcopy(before)
    results["mitigations"] = [
        {"name": "reprogram", "status": "failed", "config": {"trigger": "border", "measure": "equalized_odds"},
         "group": "sex", "error": f"reprogram.lambdas must be non-negative {SCRIPT}", "created": "2025-01-01T00:10:00+00:00",
         "command": None},
        {"name": "reprogram", "status": "not_run", "config": {"trigger": "soft"}, "group": "race"},
    ]
    html = render_html(results)
    failed, not_run = html_section(html, "mitigation-0"), html_section(html, "mitigation-1")
    assert "<h2>FairReprogram of <code>sex</code> <span class=\"badge review\">FAILED</span></h2>" in failed
    assert f"reprogram.lambdas must be non-negative {ESCAPED}" in failed and "Nothing was repaired" in failed
    assert "<svg" not in failed and "<img" not in failed and 'class="comparison"' not in failed
    assert "What ran" not in failed and '<span class="mono">trigger</span> = border' in failed
    assert "NOT RUN" in not_run and "has no result" in not_run and "<svg" not in not_run
    assert "(failed)</a>" in html and "FairReprogram of race (not run)</a>" in html
    assert html.count("<svg") == render_html(before).count("<svg") == 7  # the before-audit is all there
    md = render_markdown(results)
    assert "## FairReprogram of sex" in md and "**FAILED**: reprogram.lambdas must be non-negative" in md
    assert "## FairReprogram of race" in md and "**Not run**" in md and SCRIPT not in md


def test_partial_entry_with_nulls_renders(before: dict) -> None:
    results = copy.deepcopy(before)
    partial = reprogram_entry(before, kind="border", rule_met=False)
    r = partial["reprogram"]
    for key in ("tuning", "parameters", "before", "artifacts"):
        r.pop(key)
    r["trigger"] = {"kind": "border", "image_png": None}
    r["points"] = [{"lambda": 1.0, "accuracy": None, "gap": None, "pareto": None, "chosen": None, "history": None},
                   {"lambda": 4.0, "accuracy": 0.8, "gap": None}]
    r["config"] = None
    for key in ("comparison", "after_model", "baselines", "outputs"):
        partial[key] = None
    results["mitigations"] = [
        partial,
        {"name": "reprogram", "status": "ok", "reprogram": None, "config": None},
        {"name": "reprogram", "status": "ok", "reprogram": {"trigger_kind": "hard", "points": [], "trigger": {"kind": "hard"},
                                                            "chosen_lambda": None, "warnings": ["3"]}},
    ]
    html = render_html(results)
    first = html_section(html, "mitigation-0")
    assert "RULE NOT MET" in first and "Rule met</th>\n      <td>no" in first
    assert ("No λ &gt; 0 kept the selection accuracy within the accuracy budget without predicting one class, so no "
            "fairness trigger met the rule; "
            "λ = 4, the most accurate λ of the grid, was taken.") in first
    assert "No picture of the trigger was recorded." in first and "<svg" not in first  # nothing to plot
    assert "No before/after comparison was recorded." in first and "No baselines were recorded." in first
    assert '<th scope="row">λ = 1</th><td class="num">—</td><td class="num">—</td>' in first
    assert ("records no chosen λ" in html_section(html, "mitigation-1")
            and "No λ points were recorded." in html_section(html, "mitigation-1"))
    third = html_section(html, "mitigation-2")
    assert "The trigger's words were not recorded." in third and "<li>3</li>" in third
    assert render_html(json.loads(dumps(results))) == html
    assert render_markdown(results).count("## FairReprogram") == 3


@pytest.mark.parametrize(("change", "key"), [
    (lambda r: r["trigger"].update(image_png=12345), r"mitigations\[0\].reprogram.trigger.image_png"),
    (lambda r: r["points"].append(None), r"mitigations\[0\].reprogram.points\[\d+\]"),
    (lambda r: r.update(points="x"), r"mitigations\[0\].reprogram.points"),
    (lambda r: r.update(chosen_lambda="n/a"), r"mitigations\[0\].reprogram.chosen_lambda"),
    (lambda r: r.update(warnings=[None, 3]), r"mitigations\[0\].reprogram.warnings\[0\]"),
])
def test_malformed_entries_are_one_line_errors_naming_the_key(before: dict, change, key: str) -> None:
    """Values of the wrong type (once rendered as best they could) are refused as a whole, naming the key."""
    results = copy.deepcopy(before)
    entry = reprogram_entry(before, kind="patch")
    change(entry["reprogram"])
    results["mitigations"] = [entry]
    with pytest.raises(FairpromptError, match=rf"key '{key}'") as caught:
        render_html(results)
    assert "\n" not in str(caught.value)


def test_render_is_deterministic_and_from_json_alone(border: dict, border_html: str) -> None:
    assert render_html(border) == border_html
    assert render_html(json.loads(dumps(border))) == border_html


def test_fairij_and_reprogram_side_by_side(before: dict) -> None:
    fairij_only = copy.deepcopy(before)
    fairij_only["mitigations"] = [fairij_entry(before)]
    both = copy.deepcopy(before)
    both["mitigations"] = [fairij_entry(before), reprogram_entry(before, kind="hard")]
    html, fairij_html = render_html(both), render_html(fairij_only)
    # the FairIJ section is the same as without the FairReprogram entry beside it
    assert html_section(html, "mitigation-0") == html_section(fairij_html, "mitigation-0")
    assert "FairIJ repair of <code>sex</code>" in html_section(html, "mitigation-0") and "Chosen k = 10" in html
    assert "FairReprogram of <code>sex</code>" in html_section(html, "mitigation-1")
    assert html.count("<svg") == 10  # 3 slices × 2, training curve, FairIJ curve, Pareto plot, first-screen trade-off
    # a report with FairIJ alone carries no FairReprogram CSS or markup
    assert "img.trigger" not in fairij_html and "FairReprogram" not in fairij_html and "img.trigger" in html
    md = render_markdown(both)
    assert md.index("## FairIJ repair of sex") < md.index("## FairReprogram of sex")
    assert md.split("## FairReprogram of sex")[0] == render_markdown(fairij_only) + "\n"


def test_no_mitigations_unchanged(before: dict) -> None:
    html = render_html(before)
    assert "FairReprogram" not in html and "img.trigger" not in html and "Mitigation sections" not in html
    assert render_html(before | {"mitigations": []}) == html
    assert render_markdown(before | {"mitigations": []}) == render_markdown(before)
    assert Report(before).view.mitigations == ()


def test_reprogram_markdown(border: dict) -> None:
    md = render_markdown(border)
    section = md.split("## FairReprogram of sex", 1)[1]
    for line in ("- Trigger: border (4 pixels wide)", "- Objective: adversary", "- Fairness measure: demographic parity",
                 "- Trainable parameters: 1,920 of 22,717,828 (0.0085%)", "- Chosen: λ = 4", "- Rule met: yes",
                 "- On the selection rows: accuracy 0.845 → 0.838, gap 0.209 → 0.061",
                 "- Warning: lambda 16: the loss is not finite at epoch 2 \\<script\\>alert(1)\\</script\\>",
                 "- Test accuracy: 0.860 → 0.842 (change −0.018 on the same 1,200 test rows)",
                 "| sex | Demographic parity difference |",
                 "| FairReprogram (lambda 4) | 0.842 | −0.018 | 0.061 | — |",
                 "| ThresholdOptimizer (demographic\\_parity) | 0.830 | −0.030 | 0.040 | 0.120 |"):
        assert line in section, line
    assert SCRIPT not in md


def test_reprogram_table_marks_one_class_points(before: dict) -> None:
    results = copy.deepcopy(before)
    entry = reprogram_entry(before, kind="border")
    mark = f"sex = Male: 99.5% of its 200 rows get the negative decision {SCRIPT}"
    entry["reprogram"]["points"][-1]["one_class"] = mark
    entry["reprogram"]["before"]["one_class"] = mark
    results["mitigations"] = [entry]
    section = html_section(render_html(results), "mitigation-0")
    table = section.split('<table class="groups lambdas">')[1].split("</table>")[0]
    escaped = mark.replace(SCRIPT, ESCAPED)
    assert table.count(f'<td class="one-class">⚠ {escaped}</td>') == 2 and SCRIPT not in section
    assert table.count('<td class="one-class">—</td>') == len(entry["reprogram"]["points"]) - 1
    assert "⚠ One class: the decisions of λ = 16 on the selection rows predict one class" in section


def test_reprogram_table_shows_swap_flips_and_the_counterfactual_term(before: dict) -> None:
    """With selection: swap_flips the λ table gains a column of the decisions flipped by identity swaps (the value
    the rule minimised); the objective names the counterfactual term.  Without them, neither appears."""
    results = copy.deepcopy(before)
    entry = reprogram_entry(before, kind="border")
    entry["reprogram"]["config"] |= {"objective": "surrogate", "counterfactual": 100.0, "swap_terms": "identity_toxicity",
                                     "selection": "swap_flips", "projection": False}
    entry["reprogram"]["before"]["swap_flip_rate"] = 0.125
    for i, p in enumerate(entry["reprogram"]["points"]):
        p["swap_flip_rate"] = 0.1 - 0.02 * i
    results["mitigations"] = [entry]
    section = html_section(render_html(results), "mitigation-0")
    table = section.split('<table class="groups lambdas">')[1].split("</table>")[0]
    assert '<th scope="col" class="num">Decisions flipped by identity swaps</th>' in table
    assert '<td class="num">0.167</td><td class="num">12.5%</td>' in table  # the untriggered model's row
    assert '<td class="num">0.072</td><td class="num">6.0%</td><td class="num">3</td>' in table  # λ = 4, the third
    assert ("with the counterfactual term 100: + λ × 100 × the mean squared change of P(favourable) when each row&#39;s "
            "identity phrases are swapped (identity_toxicity)") in section
    plain = html_section(render_html({**before, "mitigations": [reprogram_entry(before, kind="border")]}), "mitigation-0")
    assert "Decisions flipped by identity swaps" not in plain and "counterfactual term" not in plain
