"""Every method's accuracy-fairness frontier on the same Adult rows (issue 15, "The peers on the same rows").

Rows and model: audits/adult_income.yaml as it ships (the frozen all-MiniLM-L6-v2 encoder, its trained 8-token
task prompt and head: the un-repaired model; 2,000 train, 1,000 validation, 5,000 test rows; the 10,000 final
rows only behind ``--final``).  Gaps by sex: demographic parity difference (DP) and equalized odds difference
(EO), both measured for every point; a method that takes a measure is run once per measure (``--measure``).

Each method's grid (benchmarks/frontier_methods.py, module constants, set before any test number was seen) is
fitted on the training rows (validation only where the method itself selects on it: early stopping of the
appended tokens, FairIJ's and FairReprogram's own rules); every grid point is evaluated on validation and test
(score and decision kept in the cache); each method's operating point is chosen on validation by its own rule
(the repairs) or by the peers' rule (the smallest validation gap with at most 1 point of validation accuracy
lost against the method's control, tie -> more accurate).  The chosen points get paired bootstrap CIs (1,000
resamples of the test rows, every method on the same resamples), and each prompt method's chosen point is
compared with every group-blind peer's step hull read at its test accuracy.

Every (method, setting, measure) result is cached under ``--cache`` (keyed by the method's settings, the rows'
hash and the task prompt's cache key), so an interrupted run resumes.  ``--final`` also evaluates the chosen
points on the final rows and appends one entry to the JSON's ``final_uses`` (kept across reruns).

Run: ``.venv/bin/python benchmarks/bench_frontier.py --measure both --json docs/benchmarks/frontier_adult.json
--page docs/benchmarks/frontier.md --plot docs/benchmarks/frontier_adult.svg --shared "..."`` (hours on 2 CPU
cores; ``--quick`` runs every method on tiny rows and grids in a few minutes, and its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import log, paired_table, peak_mb
from frontier_methods import METHODS, PEER_MAX_DROP, Method, fairij_rule, grid_values
from frontier_setup import MEASURES, ROOT, SPEC, FrontierSetup, Scores

from fairprompt.cache import cache_dir, cache_key
from fairprompt.metrics.frontier import FrontierPoint, read_at, step_hull
from fairprompt.metrics.point import group_gap

CACHE_VERSION = 1
SPLITS = ("validation", "test")


# -------------------------------------------------------------------------------------------------- cache
class Cache:
    """One npz (scores and decisions per split) + one json (timings) per key, written atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def load(self, key: str) -> tuple[dict[str, Any], dict[str, Scores]] | None:
        meta, arrays = self.directory / f"{key}.json", self.directory / f"{key}.npz"
        if not (meta.exists() and arrays.exists()):
            return None
        with np.load(arrays) as data:
            scores = {split: Scores(score=data[f"{split}_score"] if f"{split}_score" in data else None,
                                    decision=data[f"{split}_decision"])
                      for split in {name.split("_")[0] for name in data.files}}
        return json.loads(meta.read_text()), scores

    def save(self, key: str, meta: dict[str, Any], scores: dict[str, Scores]) -> None:
        arrays = {f"{s}_decision": v.decision for s, v in scores.items()}
        arrays |= {f"{s}_score": v.score for s, v in scores.items() if v.score is not None}
        tmp = self.directory / f"{key}.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(self.directory / f"{key}.npz")
        tmp = self.directory / f"{key}.tmp.json"
        tmp.write_text(json.dumps(meta, indent=1, default=float))
        tmp.replace(self.directory / f"{key}.json")

    def json(self, key: str) -> dict[str, Any] | None:
        path = self.directory / f"{key}.rule.json"
        return json.loads(path.read_text()) if path.exists() else None

    def save_json(self, key: str, value: dict[str, Any]) -> None:
        tmp = self.directory / f"{key}.tmp.json"
        tmp.write_text(json.dumps(value, indent=1, default=float))
        tmp.replace(self.directory / f"{key}.rule.json")


# ------------------------------------------------------------------------------------------------ metrics
def metrics(setup: FrontierSetup, split: str, s: Scores) -> dict[str, Any]:
    """Accuracy, DP and EO by sex of the decisions, and whether they predict one class (every row the same
    decision, or at least 99% of a group of at least 20 rows with both labels present)."""
    y, g, d = setup.y(split), setup.groups(split), s.decision
    one_class = bool(np.unique(d).size < 2)
    for group in np.unique(g):
        member = g == group
        if member.sum() >= 20 and np.unique(y[member]).size == 2 and max(d[member].mean(), 1 - d[member].mean()) >= 0.99:
            one_class = True
    return {"accuracy": float((d == y).mean()),
            **{k: float(group_gap(y_true=y, y_pred=d, groups=g, measure=m)) for k, m in MEASURES.items()},
            "positive_rate": float(d.mean()), "one_class": one_class}


# ------------------------------------------------------------------------------------------------ running
class Runner:
    """Runs each method's grid for each measure through the cache, and picks each method's operating point."""

    def __init__(self, setup: FrontierSetup, cache: Cache, *, keep_fitted: bool) -> None:
        self.setup, self.cache, self.keep_fitted = setup, cache, keep_fitted
        self.results: dict[str, tuple[dict[str, Any], dict[str, Scores]]] = {}
        self.fitted: dict[str, Any] = {}
        self.rules: dict[str, dict[str, Any]] = {}

    def identity(self, method: Method, value: Any, measure: str) -> tuple[Method, Any, str | None]:
        """The fit a grid point really is: shared controls are fitted once (FairIJ k = 0 is the un-repaired model,
        Reweighing t = 0 is FairIJ append's k = 0 control: the same 4 tokens, all weights 1)."""
        if method.name in ("fairij_ij", "fairij_ij_accuracy") and value == 0:
            return METHODS["unrepaired"], None, None
        if method.name == "fairij_ij_accuracy":       # the same one-step updates, another rule
            return METHODS["fairij_ij"], value, METHODS["fairij_ij"].trained_for(value, measure)
        if method.name == "reweighing" and value == 0:
            return METHODS["fairij_append"], 0, None
        return method, value, method.trained_for(value, measure)

    def key(self, method: Method, value: Any, trained_for: str | None) -> str:
        s = self.setup
        return cache_key({"version": CACHE_VERSION, "method": method.name, "setting": value, "trained_for": trained_for,
                          "trains": method.trains, "score": method.score, "settings": method.settings, "rows": s.rows_key,
                          "task_prompt": s.task_prompt_key, "quick": s.quick, "spec": SPEC})

    def fairij_rule(self, measure: str, *, accuracy: bool = False) -> dict[str, Any]:
        """FairIJ's choice of k: [3/7]'s rule, or (``accuracy``) the accuracy rule of [4/7]."""
        if (measure, accuracy) not in self.rules:
            s = self.setup
            identity = {"version": CACHE_VERSION, "rule": "fairij", "measure": measure, "rows": s.rows_key,
                        "task_prompt": s.task_prompt_key, "quick": s.quick, "spec": SPEC}
            key = cache_key(identity | {"accuracy_rule": True} if accuracy else identity)
            rule = self.cache.json(key)
            if rule is None:
                rule = fairij_rule(s, measure, accuracy=accuracy)
                self.cache.save_json(key, rule)
            self.rules[(measure, accuracy)] = rule
        return self.rules[(measure, accuracy)]

    def point(self, method: Method, value: Any, measure: str, splits: tuple[str, ...]) -> tuple[dict[str, Any],
                                                                                            dict[str, Scores], bool]:
        """One grid point's meta and scores on ``splits``, from the cache or fitted now; and whether it was cached."""
        fit_method, fit_value, trained_for = self.identity(method, value, measure)
        key = self.key(fit_method, fit_value, trained_for)
        meta, scores = self.results.get(key) or self.cache.load(key) or ({}, {})
        missing = [s for s in splits if s not in scores]
        cached = not missing
        if missing:
            predictor = self.fitted.get(key)
            if predictor is None:
                log(f"{fit_method.name} {fit_method.setting_name}={fit_value} ({trained_for or 'any measure'}): fitting")
                tick = time.perf_counter()
                predictor = fit_method.fit(self.setup, fit_value, trained_for or measure)
                meta.setdefault("fit_seconds", []).append(time.perf_counter() - tick)
                if self.keep_fitted:
                    self.fitted[key] = predictor
            for split in missing:
                tick = time.perf_counter()
                scores[split] = predictor(split)
                meta.setdefault("predict_seconds", {})[split] = time.perf_counter() - tick
            if "final" in missing and "validation" in scores:   # a refit for the final rows must be the same model
                again = predictor("validation")
                meta["refit_validation_decisions_changed"] = int((again.decision != scores["validation"].decision).sum())
            meta |= {"method": fit_method.name, "setting": fit_value, "trained_for": trained_for}
            self.cache.save(key, meta, scores)
        self.results[key] = (meta, scores)
        return meta, scores, cached

    def run(self, method: Method, measure: str) -> list[dict[str, Any]]:
        """Every grid point of ``method`` for ``measure``, with validation and test metrics, and the chosen flag."""
        rule = self.fairij_rule(measure, accuracy=method.name == "fairij_ij_accuracy") \
            if method.name.startswith("fairij") else None
        points = []
        for value in grid_values(method, quick=self.setup.quick, rule=rule):
            fit_value = measure if method.name == "threshold_optimizer" else value
            meta, scores, cached = self.point(method, fit_value, measure, SPLITS)
            points.append({"method": method.name, "setting": fit_value, "setting_name": method.setting_name,
                           "measure": measure, "trained_for": self.identity(method, fit_value, measure)[2],
                           **{split: metrics(self.setup, split, scores[split]) for split in SPLITS},
                           "fit_seconds": float(sum(meta.get("fit_seconds", [0.0]))),
                           "predict_seconds": meta.get("predict_seconds", {}), "cached": cached})
        chosen = self.choose(method, points, measure, rule)
        for i, p in enumerate(points):
            p["chosen"] = i == chosen
        return points

    def choose(self, method: Method, points: list[dict[str, Any]], measure: str, rule: dict[str, Any] | None) -> int:
        gap = "dp" if measure == "demographic_parity" else "eo"
        if method.name.startswith("fairij"):
            return next(i for i, p in enumerate(points) if p["setting"] == rule["chosen_k"])
        if method.name.startswith("reprogram"):
            from fairprompt.mitigation.reprogram_method.selection import choose

            config = next(m for m in self.setup.spec.mitigations if m.name == "reprogram").config()
            base = self.point(METHODS["unrepaired"], None, measure, SPLITS)[1]["validation"]
            index, _ = choose([{"lambda": p["setting"], "accuracy": p["validation"]["accuracy"],
                                "gap": p["validation"][gap]} for p in points],
                              base_accuracy=metrics(self.setup, "validation", base)["accuracy"],
                              max_accuracy_drop=config.max_accuracy_drop)
            return index
        if method.role == "peer" or (method.role == "group-aware" and len(points) > 1):
            return peer_choice(points, gap=gap, control=method.control)
        return 0


def peer_choice(points: list[dict[str, Any]], *, gap: str, control: Any) -> int:
    """The peers' rule: the smallest validation gap among the points that lose at most PEER_MAX_DROP of validation
    accuracy against the control (or, without one, the most accurate point) and do not predict one class;
    tie -> the more accurate.  None eligible: the control."""
    v = [p["validation"] for p in points]
    reference = next((i for i, p in enumerate(points) if p["setting"] == control), None)
    if reference is None:
        reference = max(range(len(points)), key=lambda i: v[i]["accuracy"])
    bar = v[reference]["accuracy"] - PEER_MAX_DROP - 1e-12
    eligible = [i for i in range(len(points)) if v[i]["accuracy"] >= bar and not v[i]["one_class"]]
    return min(eligible, key=lambda i: (v[i][gap], -v[i]["accuracy"])) if eligible else reference


# ----------------------------------------------------------------------------------------------- summaries
def frontier_points(points: list[dict[str, Any]], split: str) -> list[FrontierPoint]:
    return [FrontierPoint(method=p["method"], setting=p["setting"], split=split, accuracy=p[split]["accuracy"],
                          gaps={"dp": p[split]["dp"], "eo": p[split]["eo"]}, chosen=p["chosen"])
            for p in points if split in p]


def summaries(points: list[dict[str, Any]], measures: list[str], split: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per measure: each method's step hull on ``split``, and each prompt method's chosen point against every
    group-blind peer's hull read at its accuracy."""
    hulls: dict[str, Any] = {}
    matched: dict[str, Any] = {}
    for measure in measures:
        gap = "dp" if measure == "demographic_parity" else "eo"
        mine = [p for p in points if p["measure"] == measure and split in p]
        by_method = {m: [p for p in mine if p["method"] == m] for m in dict.fromkeys(p["method"] for p in mine)}
        hull = {m: step_hull(frontier_points(ps, split), gap=gap) for m, ps in by_method.items()}
        hulls[gap] = {m: {"accuracies": list(h.accuracies), "gaps": list(h.gaps)} for m, h in hull.items()}
        matched[gap] = {}
        for m, ps in by_method.items():
            if METHODS[m].role not in ("prompt", "reference"):
                continue
            chosen = next(p for p in ps if p["chosen"])
            accuracy = chosen[split]["accuracy"]
            matched[gap][m] = {"setting": chosen["setting"], "accuracy": accuracy, "gap": chosen[split][gap],
                               "peers": {peer: read_at(hull[peer], accuracy) for peer in by_method
                                         if METHODS[peer].role == "peer"}}
    return hulls, matched


def chosen_table(setup: FrontierSetup, runner: Runner, points: list[dict[str, Any]], measures: list[str],
                 split: str) -> dict[str, Any]:
    """Paired bootstrap CIs (1,000 resamples of ``split``'s rows, every method on the same resamples) of each
    method's chosen point against the un-repaired model."""
    out = {}
    for measure in measures:
        predictions = {}
        for p in points:
            if p["measure"] == measure and p["chosen"]:
                scores = runner.point(METHODS[p["method"]], p["setting"], measure, (split,))[1]
                predictions[p["method"]] = scores[split].decision
        out["dp" if measure == "demographic_parity" else "eo"] = paired_table(
            setup.y(split), setup.groups(split), predictions, base="unrepaired")
    return out


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "HEAD") + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


# ------------------------------------------------------------------------------------------------------ main
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", choices=("dp", "eo", "both"), default="both")
    parser.add_argument("--only", default="", help=f"a comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--quick", action="store_true", help="tiny rows and grids: checks the code paths, not the numbers")
    parser.add_argument("--final", action="store_true", help="also evaluate the chosen points on the final rows "
                                                             "(recorded in the JSON's final_uses)")
    parser.add_argument("--cache", type=Path, default=None, help="cache directory (default: the user cache)")
    parser.add_argument("--json", type=Path, default=None, help="write every number here (after each method)")
    parser.add_argument("--page", type=Path, default=None, help="write the Markdown page here at the end")
    parser.add_argument("--plot", type=Path, default=None, help="write the frontier plot (SVG or PNG) here at the end")
    parser.add_argument("--shared", default="nothing noted", help="what shared the cores during the run")
    parser.add_argument("--named", default="", help="the one prompt method named, before the final run, for the "
                                                    "comparison with the peers (recorded in final_uses)")
    args = parser.parse_args(argv)
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(only) - set(METHODS))
    if args.named and args.named not in METHODS:
        parser.error(f"unknown --named method {args.named}; use one of {', '.join(METHODS)}")
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; use {', '.join(METHODS)}")
    args.methods = ["unrepaired", *[m for m in METHODS if m in only and m != "unrepaired"]] if only else list(METHODS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    measures = [MEASURES[m] for m in (("dp", "eo") if args.measure == "both" else (args.measure,))]
    torch.manual_seed(0)
    start = time.perf_counter()
    command = " ".join(["benchmarks/bench_frontier.py", *(argv if argv is not None else sys.argv[1:])])
    load = os.getloadavg()
    setup = FrontierSetup(quick=args.quick, final=args.final)
    cache = Cache(args.cache or cache_dir("bench_frontier"))
    setup.embedding_cache = cache.directory
    runner = Runner(setup, cache, keep_fitted=args.final)
    previous = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
    out: dict[str, Any] = {
        "benchmark": "benchmarks/bench_frontier.py", "spec": SPEC, "quick": args.quick, "command": command,
        "git_commit": git_commit(), "model": setup.source, "task_prompt_key": setup.task_prompt_key,
        "rows": setup.sizes(), "rows_sha256": setup.rows_key, "group": "sex", "measures": measures,
        "host": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "shared": args.shared,
                 "load_average_at_start": list(load)},
        "peer_rule": METHODS["eg_tabular"].rule, "grids": {}, "methods": {}, "points": [],
        "final_uses": previous.get("final_uses", []),
    }

    def save() -> None:
        out["seconds"] = time.perf_counter() - start
        out["peak_rss_mb"] = peak_mb()
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            tmp = args.json.with_suffix(".tmp")
            tmp.write_text(json.dumps(out, indent=1, default=float))
            tmp.replace(args.json)

    for name in args.methods:
        method = METHODS[name]
        tick = time.perf_counter()
        points = [p for measure in measures if measure in method.measures for p in runner.run(method, measure)]
        out["points"] += points
        out["grids"][name] = {"setting": method.setting_name, "grid": list(method.grid),
                              "run": {m: [p["setting"] for p in points if p["measure"] == m] for m in measures}}
        out["methods"][name] = {"title": method.title, "role": method.role, "rule": method.rule, "trains": method.trains,
                                "score": method.score, "takes_measure": method.takes_measure,
                                "wall_seconds_this_run": time.perf_counter() - tick,
                                "fit_and_predict_seconds_recorded": float(sum(
                                    p["fit_seconds"] + sum(p["predict_seconds"].values())
                                    for p in {(p["setting"], p["trained_for"]): p for p in points}.values())),
                                "all_cached": all(p["cached"] for p in points)}
        if name.startswith("fairij"):
            out["methods"][name]["rule_detail"] = {m: runner.fairij_rule(m, accuracy=name == "fairij_ij_accuracy")
                                                   for m in measures}
        log(f"{name}: {out['methods'][name]['wall_seconds_this_run']:.0f} s")
        hulls, matched = summaries(out["points"], measures, "test")
        out |= {"hulls": {"test": hulls}, "matched": {"test": matched},
                "chosen": {"test": chosen_table(setup, runner, out["points"], measures, "test")}}
        save()

    if args.final:
        final_points: list[dict[str, Any]] = []
        for p in out["points"]:
            if p["chosen"]:
                meta, scores, _ = runner.point(METHODS[p["method"]], p["setting"], p["measure"], ("validation", "final"))
                p["final"] = metrics(setup, "final", scores["final"])
                p["final"]["refit_validation_decisions_changed"] = meta.get("refit_validation_decisions_changed", 0)
                final_points.append(p)
        # only the chosen points are read on the final rows, so there are no step hulls on them
        out["chosen"]["final"] = chosen_table(setup, runner, out["points"], measures, "final")
        out["final_uses"].append({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
                                  "git_commit": out["git_commit"], "methods": args.methods, "measures": measures,
                                  "named_prompt_method": args.named or None,
                                  "final_rows": setup.sizes()["final"], "final_rows_sha256": setup.final_key})
    save()
    if args.page or args.plot:
        from frontier_report import write_page, write_plot

        if args.plot:
            write_plot(out, args.plot)
        if args.page:
            write_page(out, args.page, plot=args.plot, json_path=args.json)
    log(f"total {out['seconds'] / 60:.1f} min, peak RSS {out['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
