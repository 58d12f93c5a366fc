"""benchmarks/bench_frontier.py's pieces: the peers' operating-point rule, the cache, and (slow) a --quick run of
one cheap peer, with and without --final (final numbers and final_uses only behind the flag, kept across reruns)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))   # the benchmark scripts import each other by module name

from bench_frontier import Cache, peer_choice  # noqa: E402
from frontier_setup import Scores  # noqa: E402


def _point(setting: float | None, accuracy: float, dp: float, one_class: bool = False) -> dict:
    return {"setting": setting, "validation": {"accuracy": accuracy, "dp": dp, "eo": 0.0, "one_class": one_class}}


def test_peer_rule_smallest_gap_within_one_point_of_the_control() -> None:
    points = [_point(None, 0.850, 0.20), _point(0.1, 0.845, 0.10), _point(0.05, 0.842, 0.06),
              _point(0.01, 0.838, 0.01), _point(0.005, 0.841, 0.06)]
    assert peer_choice(points, gap="dp", control=None) == 2          # 0.838 loses 1.2 points; tie 0.06 -> more accurate
    points[2]["validation"]["one_class"] = True                      # a one-class point is never chosen
    assert peer_choice(points, gap="dp", control=None) == 4


def test_peer_rule_without_a_control_and_when_nothing_qualifies() -> None:
    points = [_point(0.1, 0.80, 0.05), _point(1.0, 0.83, 0.20), _point(3.0, 0.60, 0.0, one_class=True)]
    assert peer_choice(points, gap="dp", control=0.0) == 1           # no control in the grid: the most accurate point
    points[1]["validation"]["one_class"] = True
    assert peer_choice(points, gap="dp", control=1.0) == 1           # nothing eligible: the control


def test_cache_round_trip_keeps_decisions_only_points(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    scores = {"validation": Scores(score=np.array([0.2, 0.7]), decision=np.array([0, 1])),
              "test": Scores(score=None, decision=np.array([1, 1, 0]))}
    cache.save("k", {"fit_seconds": [1.0]}, scores)
    meta, loaded = cache.load("k")
    assert meta == {"fit_seconds": [1.0]} and loaded["test"].score is None
    np.testing.assert_array_equal(loaded["validation"].score, [0.2, 0.7])
    np.testing.assert_array_equal(loaded["test"].decision, [1, 1, 0])
    assert cache.load("other") is None and not list(tmp_path.glob("*.tmp*"))


def _run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "frontier.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_frontier.py"), "--quick", "--measure", "dp",
                    "--only", "eg_tabular", "--cache", str(tmp_path / "cache"), "--json", str(out), "--page",
                    str(tmp_path / "frontier.md"), "--plot", str(tmp_path / "frontier.svg"), *extra],
                   check=True, cwd=ROOT, capture_output=True, text=True)
    return json.loads(out.read_text())


@pytest.mark.slow
def test_quick_run_reads_final_only_behind_the_flag(tmp_path: Path) -> None:
    (tmp_path / "frontier.json").write_text(json.dumps({"final_uses": [{"utc": "earlier", "command": "x"}]}))
    first = _run(tmp_path)
    assert "final" not in first["rows"] and "final" not in first["chosen"]
    assert not any("final" in p for p in first["points"])
    assert first["final_uses"] == [{"utc": "earlier", "command": "x"}]          # kept, nothing added
    chosen = [p for p in first["points"] if p["chosen"]]
    assert {p["method"] for p in chosen} == {"unrepaired", "eg_tabular"} and len(first["grids"]["eg_tabular"]["grid"]) >= 10
    assert first["chosen"]["test"]["dp"]["eg_tabular"]["dp_ci"][0] <= first["chosen"]["test"]["dp"]["eg_tabular"]["dp"]
    assert "eg_tabular" in first["matched"]["test"]["dp"]["unrepaired"]["peers"]
    assert (tmp_path / "frontier.svg").read_text().startswith("<?xml")
    assert "Accuracy-fairness frontiers" in (tmp_path / "frontier.md").read_text()

    second = _run(tmp_path, "--final")                                          # resumes from the cache
    assert all(p["cached"] for p in second["points"])
    assert [u["utc"] for u in second["final_uses"]][0] == "earlier" and len(second["final_uses"]) == 2
    assert second["final_uses"][1]["methods"] == ["unrepaired", "eg_tabular"]
    finals = [p for p in second["points"] if "final" in p]
    assert finals and all(p["chosen"] for p in finals)
    assert set(second["chosen"]["final"]["dp"]) == {"unrepaired", "eg_tabular"}
