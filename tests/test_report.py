"""The HTML report: rendered from results alone, escaped, self-contained, deterministic, written atomically."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fairprompt.errors import FairpromptError
from fairprompt.report import Report, render_html, render_markdown, write_report
from fairprompt.results import dumps
from report_factories import BASELINE_MODEL, ESCAPED, IMAGE_MODEL, SCRIPT, audit_results, html_section, inline_svgs, text_model


@pytest.fixture(scope="module")
def scored() -> dict:
    return audit_results(scores=True)


@pytest.fixture(scope="module")
def scored_html(scored: dict) -> str:
    return render_html(scored)


@pytest.fixture(scope="module")
def unscored_html() -> str:
    return render_html(audit_results(scores=False, degenerate=True))


def test_user_strings_are_escaped_everywhere(scored_html: str) -> None:
    assert SCRIPT not in scored_html
    assert "<script" not in scored_html.lower()  # the page has no scripts at all
    assert ESCAPED in scored_html
    assert "<img" not in scored_html and "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; &amp; co" in scored_html
    # The model section: backbone name, example input, column names and the cache path are user strings.
    model = scored_html.split('id="model"')[1].split("</section>")[0]
    assert f"Frozen {ESCAPED}-encoder + 8-token soft prompt" in model
    assert f"name: {ESCAPED}." in model and f"<code>{ESCAPED}</code>" in model and f"/cache/{ESCAPED}" in model
    # Plot labels: matplotlib's SVG text carries the group name escaped, too.
    assert any(ESCAPED in svg for svg in inline_svgs(scored_html))
    assert any(">$x$<" in svg or "$x$" in svg for svg in inline_svgs(scored_html))  # no mathtext from user '$'


def test_self_contained_no_external_resources(scored_html: str) -> None:
    tags = re.findall(r"<[^>]*>", scored_html)
    assert 'src="http' not in scored_html
    assert not [t for t in tags if re.search(r"\s(src|srcset|data|action|formaction)\s*=", t)]
    assert "<link" not in scored_html.lower()
    assert "@import" not in scored_html
    assert set(re.findall(r"url\((.)", scored_html)) <= {"#"}
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', scored_html))
    # Element ids are unique across figures and every reference resolves.
    ids = re.findall(r'\sid="([^"]+)"', scored_html)
    assert len(ids) == len(set(ids))
    refs = set(re.findall(r'(?:url\(#|href="#)([^")]+)', scored_html))
    assert refs <= set(ids)


def test_sections_figures_and_verdict(scored: dict, scored_html: str) -> None:
    html = scored_html
    assert 'id="summary"' in html and "Verdict summary" in html
    assert 'id="compliance"' in html and "not a legal verdict" in html
    assert 'id="provenance"' in html and "ab" * 32 in html
    assert scored["audit"]["bootstrap"]["note"].replace("'", "&#39;") in html
    assert "@media print" in html
    # 3 slices (sex, race, sex × race) × (selection, TPR/FPR, calibration, ROC), and the model's training curve.
    assert html.count("<svg") == 13
    assert "Calibration by group" in html and "ROC curve by group" in html
    # The verdict follows the impact ratios: review exactly when a group falls below the threshold.
    for s in scored["audit"]["slices"]:
        threshold = s["compliance"]["impact_threshold"]
        below = any(r["impact_ratio"] is None or r["impact_ratio"] < threshold for r in s["compliance"]["table"])
        view = next(v for v in Report(scored).view.slices if v.name == s["name"])
        assert view.verdict.status == ("review" if below else "pass")
    # CIs are shown in the "value [low, high]" form and excluded rows are reported.
    sex = scored["audit"]["slices"][0]["groups"][0]
    assert (f'{sex["selection_rate"]:.3f}</span> <span class="ci">'
            f'[{sex["selection_rate_ci_low"]:.3f}, {sex["selection_rate_ci_high"]:.3f}]') in html
    race = scored["audit"]["slices"][1]
    assert race["excluded_rows"] > 0 and f'{race["excluded_rows"]:,} rows' in html
    assert race["compliance"]["four_fifths_reference"] is not None


def test_byte_identical_and_from_json_alone(scored: dict, scored_html: str) -> None:
    assert render_html(scored) == scored_html
    assert render_html(json.loads(dumps(scored))) == scored_html


def test_without_scores_and_with_undefined_metrics(unscored_html: str) -> None:
    html = unscored_html
    assert html.count("<svg") == 6  # selection and TPR/FPR per slice; no calibration or ROC
    assert "Calibration by group" not in html and "ROC curve by group" not in html
    assert "AUC" not in html.split('id="compliance"')[0].split("Overall metrics")[1]
    # Undefined values read as a dash with the reason as a title and a footnote.
    assert 'title="no rows with a negative true label"' in html
    assert 'title="no rows predicted positive"' in html
    assert "— means undefined: no rows with a negative true label" in html
    assert SCRIPT not in html and ESCAPED in html


def test_no_bootstrap() -> None:
    html = render_html(audit_results(scores=False, n_boot=0))
    assert "bootstrap disabled" in html and 'class="ci"' not in html


def test_markdown_summary(scored: dict) -> None:
    md = render_markdown(scored)
    assert md.startswith("# Hiring \\<img src=x onerror=\"alert(2)\"\\> \\& co\n")
    assert SCRIPT not in md and "\\<script\\>alert(1)\\</script\\>" in md
    assert "| sex |" in md and "not a legal verdict" in md
    report = Report(scored)
    assert report.json() == dumps(scored) and report.markdown() == md


def test_write_report_is_atomic(scored: dict, scored_html: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "reports" / "t"
    path = write_report(scored, out)
    assert path == out / "report.html"
    assert path.read_text(encoding="utf-8") == scored_html
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]  # no temporary files left

    # A failure while rendering leaves the previous report untouched and no temporary file.
    def boom(self: Report) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr(Report, "html", boom)
    with pytest.raises(RuntimeError):
        write_report(scored, out)
    assert path.read_text(encoding="utf-8") == scored_html
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]


def test_minimal_results_render(tmp_path: Path) -> None:
    results = audit_results(scores=False, n_boot=0)
    for key in ("inputs", "packages", "seeds", "command", "model", "spec", "created", "data"):
        results.pop(key)
    for key in ("bootstrap", "config", "metric_descriptions"):
        results["audit"].pop(key)
    html = render_html(results)
    assert 'id="summary"' in html and "not recorded" in html
    (tmp_path / "results.json").write_text(dumps(results), encoding="utf-8")
    assert Report.load(tmp_path).html() == html


def test_rejects_non_results() -> None:
    with pytest.raises(FairpromptError, match="schema"):
        render_html({"title": "x"})
    with pytest.raises(FairpromptError, match="newer"):
        render_html({"schema": "fairprompt.results", "schema_version": 99, "audit": {}})


def test_model_section_shows_facts_curve_and_reference() -> None:
    results = audit_results(scores=False, n_boot=0, model=text_model())
    html = render_html(results)
    assert '<a href="#model">Model</a>' in html  # contents
    assert "Frozen all-MiniLM-L6-v2 + 8-token soft prompt" in html_section(html, "summary")
    model = html_section(html, "model")
    assert html.index('id="model"') < html.index('id="slice-0"')  # after the summary, before the group tables
    for fact in ("Backbone", "weights sha256 92e037d40000…", "22,713,216", "3,842 of 22,717,058 (0.017%)",
                 "The backbone&#39;s weights never change", "8-token soft prompt", "mean over attended positions",
                 "up to 128 tokens", "3 columns", "<code>age</code>", "sensitive columns left out of the text",
                 '<pre class="example">age: 39. workclass: State-gov.</pre>', "96 train · 48 validation · 300 test",
                 "seeded draw stratified by label (seed 0)", "not improved by more than 0.0001",
                 "early stopping (validation loss stopped improving)", "Epochs run</th>\n      <td>3",
                 "Best epoch</th>\n      <td>2", "validation loss 0.5493", "0.0895", "7.6 s",
                 "loaded from the cache", "cache key 5d322a2b5d32…"):
        assert fact in model, fact
    # Test accuracy and AUC beside the reference logistic regression's, and their difference.
    scores = model.split('<table class="scores">')[1].split("</table>")[0]
    assert scores.index("0.760") < scores.index("0.769") < scores.index("0.800") < scores.index("0.829")
    assert "logistic_regression (scikit-learn), same training rows and columns" in scores
    assert "−0.040" in scores and "−0.060" in scores
    # The training curve: one inline SVG with axis labels, the best epoch, and ids of its own.
    svgs = inline_svgs(model)
    assert len(svgs) == 1 and 'id="model-training"' in model
    assert all(text in svgs[0] for text in (">epoch<", ">loss<", ">accuracy<", ">training<", ">validation<", ">best epoch (2)<"))
    assert "stroke-dasharray" in svgs[0]  # validation is dashed: reads in black and white
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)) and any(i.startswith("fpmodel-") for i in ids)
    assert set(re.findall(r'(?:url\(#|href="#)([^")]+)', html)) <= set(ids)
    assert render_html(json.loads(dumps(results))) == html  # deterministic, from JSON alone
    assert html.count("<svg") == 7  # 3 slices × 2 plots + the training curve


def test_model_section_in_markdown() -> None:
    md = render_markdown(audit_results(scores=False, n_boot=0, model=text_model(backbone="enc_<b>")))
    section = md.split("## Model", 1)[1]
    assert "**Frozen enc\\_\\<b\\> + 8-token soft prompt**" in section
    assert "- Trainable parameters: 3,842 of 22,717,058 (0.017%)" in section
    assert "- Splits: 96 train · 48 validation · 300 test" in section
    assert "- Task prompt from: loaded from the cache" in section
    assert "accuracy 0.760, AUC 0.769; reference: accuracy 0.800, AUC 0.829" in section
    assert "<b>" not in md


def test_baseline_model_keeps_the_key_value_display() -> None:
    results = audit_results(scores=False, n_boot=0, model=BASELINE_MODEL)
    html = render_html(results)
    assert 'id="model"' not in html and "#model" not in html
    summary = html_section(html, "summary")
    assert '<span class="mono">train_accuracy</span>: 0.8123' in summary
    assert '<span class="mono">features</span>: [&#34;age&#34;, &#34;education&#34;]' in summary
    assert html.count("<svg") == 6
    md = render_markdown(results)
    assert "- Model: kind = logistic\\_regression" in md and "## Model" not in md


def test_no_model_renders() -> None:
    html = render_html(audit_results(scores=False, n_boot=0))
    assert 'id="model"' not in html and "not recorded (predictions were supplied)" in html
    assert "## Model" not in render_markdown(audit_results(scores=False, n_boot=0))


@pytest.mark.parametrize("model", [
    {"kind": "frozen_text"},
    {"kind": "frozen_text", "backbone": "m", "task_prompt": "none",
     "training": {"source": "trained classifier used as it is (task_prompt: none)"}, "test_accuracy": 0.7, "test_auc": None},
    {"kind": "frozen_text", "backbone": None, "text": None, "splits": None, "training": {"history": {"epochs": []}},
     "reference": None, "trainable_share": None, "test_accuracy": float("nan")},
    {"kind": "frozen_text", "training": {"history": {"epochs": [{"epoch": 1, "train_loss": 0.7}], "best_epoch": 9}}},
    IMAGE_MODEL,
    {"kind": "frozen_image", "training": {"epochs": 1, "curve": [{"epoch": 1, "validation_accuracy": 0.5}], "from_cache": True}},
])
def test_partial_model_blocks_render(model: dict) -> None:
    results = audit_results(scores=False, n_boot=0, model=model)
    html = render_html(results)
    assert 'id="model"' in html and "Frozen " in html_section(html, "model")
    assert "## Model" in render_markdown(results)
    assert html.count("<svg") in (6, 7)


@pytest.mark.parametrize(("model", "key"), [
    ({"kind": "frozen_text", "splits": []}, "model.splits"),
    ({"kind": "frozen_text", "training": {"history": {"epochs": [{"epoch": "x"}]}}}, r"model.training.history.epochs\[0\].epoch"),
    ({"kind": "frozen_text", "reference": "lr"}, "model.reference"),
    ({"kind": "frozen_text", "trainable_share": "n/a"}, "model.trainable_share"),
    ({"kind": "frozen_image", "training": {"epochs": [{"epoch": 1}]}}, "model.training.epochs"),
    ({"kind": "a_new_kind"}, "model"),
])
def test_malformed_model_blocks_are_one_line_errors_naming_the_key(model: dict, key: str) -> None:
    """A model block of the wrong shape (once rendered as best it could) is refused as a whole, naming the key."""
    with pytest.raises(FairpromptError, match=rf"key '{key}'") as caught:
        audit_results(scores=False, n_boot=0, model=model)
    assert "\n" not in str(caught.value)


def test_image_model_section() -> None:
    html = render_html(audit_results(scores=False, n_boot=0, model=IMAGE_MODEL))
    section = html_section(html, "model")
    assert "Frozen fixture-cnn classifier" in section and "300 of 30,300 (0.99%)" in section
    assert "2 min 05 s" in section and "trained in this run" in section and "1,000 train · 500 test" in section
    assert "28 × 28 pixels" in section and "0.900" in section
    assert ">accuracy<" in inline_svgs(section)[0] and ">loss<" in inline_svgs(section)[0]


def test_slice_figures_are_drawn_once_and_the_same_when_drawn_again(scored: dict, scored_html: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A run renders its report after the audit and after each repair: the before-audit's figures are kept, not
    drawn again, and a kept figure is byte for byte the one a fresh drawing makes."""
    import fairprompt.report.plots as plots

    drawn: list[int] = []
    original = plots._draw_slice
    monkeypatch.setattr(plots, "_draw_slice", lambda s, **kw: drawn.append(kw["index"]) or original(s, **kw))
    assert render_html(scored) == scored_html and drawn == []  # every slice of this record was drawn before
    changed = json.loads(dumps(scored))
    changed["audit"]["slices"][0]["groups"][0]["selection_rate"] = 0.5
    render_html(changed)
    assert drawn == [0]  # only the changed slice is drawn again
    plots._DRAWN.clear()
    assert render_html(scored) == scored_html and drawn == [0, 0, 1, 2]
