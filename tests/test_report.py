"""The HTML report: rendered from results alone, escaped, self-contained, deterministic, written atomically."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairprompt.errors import FairpromptError
from fairprompt.metrics import audit
from fairprompt.report import Report, render_html, render_markdown, write_report
from fairprompt.report.results import build_results, dumps

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
TITLE = 'Hiring <img src=x onerror="alert(2)"> & co'


def _results(*, scores: bool, n_boot: int = 40, degenerate: bool = False, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = 1200
    sex = rng.choice(["Female", "Male"], n, p=[0.35, 0.65])
    race = rng.choice(["White", "Black", SCRIPT, "$x$"], n, p=[0.6, 0.25, 0.1, 0.05]).astype(object)
    race[rng.random(n) < 0.02] = None  # missing attribute: excluded from the race slices, counted
    y = rng.integers(0, 2, n)
    s = np.clip(rng.random(n) * 0.6 + 0.3 * y + 0.15 * (sex == "Male"), 0, 1)
    p = (s > 0.5).astype(int)
    if degenerate:
        y[race == "$x$"] = 1  # no negatives: FPR, TNR, balanced accuracy undefined
        p[race == SCRIPT] = 0  # nobody selected: PPV undefined
    result = audit(y_true=y, y_pred=p, y_score=s if scores else None,
                   sensitive=pd.DataFrame({"sex": sex, "race": race}), n_boot=n_boot, seed=seed)
    return build_results(
        name="t", title=TITLE, audit=result.to_dict(),
        data={"source": f"data/{SCRIPT}.csv", "label": "y", "positive_label": "1", "prediction": "yhat",
              "score": "p" if scores else None, "sensitive": ["sex", "race"], "rows_audited": n, "split": None},
        inputs=[{"role": "predictions", "path": f"data/{SCRIPT}.csv", "sha256": "ab" * 32, "rows": n}],
        seeds={"bootstrap": seed}, command=["fairprompt", "audit", "--name", SCRIPT], created="2025-01-01T00:00:00+00:00",
        model={"kind": "tabular", "name": SCRIPT, "params": {"C": 1.0}} if scores else None,
        spec={"name": SCRIPT, "audit": {"n_boot": n_boot}} if scores else None,
    )


@pytest.fixture(scope="module")
def scored() -> dict:
    return _results(scores=True)


@pytest.fixture(scope="module")
def scored_html(scored: dict) -> str:
    return render_html(scored)


@pytest.fixture(scope="module")
def unscored_html() -> str:
    return render_html(_results(scores=False, degenerate=True))


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def test_user_strings_are_escaped_everywhere(scored_html: str) -> None:
    assert SCRIPT not in scored_html
    assert "<script" not in scored_html.lower()  # the page has no scripts at all
    assert ESCAPED in scored_html
    assert "<img" not in scored_html and "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; &amp; co" in scored_html
    # Plot labels: matplotlib's SVG text carries the group name escaped, too.
    assert any(ESCAPED in svg for svg in _svgs(scored_html))
    assert any(">$x$<" in svg or "$x$" in svg for svg in _svgs(scored_html))  # no mathtext from user '$'


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
    # 3 slices (sex, race, sex × race) × (selection, TPR/FPR, calibration, ROC).
    assert html.count("<svg") == 12
    assert "Calibration by group" in html and "ROC curve by group" in html
    # The verdict follows the impact ratios: review exactly when a group falls below the threshold.
    for s in scored["audit"]["slices"]:
        threshold = s["compliance"]["impact_threshold"]
        below = any(r["impact_ratio"] is None or r["impact_ratio"] < threshold for r in s["compliance"]["table"])
        view = next(v for v in Report(scored).view.slices if v.name == s["name"])
        assert view.verdict.status == ("review" if below else "pass")
    # CIs are shown in the "value [low, high]" form and excluded rows are reported.
    sex = scored["audit"]["slices"][0]["groups"][0]
    assert f'{sex["selection_rate"]:.3f}</span> <span class="ci">[{sex["selection_rate_ci_low"]:.3f}, {sex["selection_rate_ci_high"]:.3f}]' in html
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
    html = render_html(_results(scores=False, n_boot=0))
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
    results = _results(scores=False, n_boot=0)
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
