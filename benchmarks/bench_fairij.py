"""FairIJ on the embedded Adult-as-text task (issue 4's targets): cost, effect and fidelity, in one run.

Model and data: audits/adult_income.yaml as it ships: the frozen all-MiniLM-L6-v2 encoder with its trained
8-token task prompt and linear head (3,842 trainable numbers; the shipped or cached prompt), 2,000 training,
1,000 validation and 5,000 test rows; the group is ``sex``.  FairIJ runs with the spec defaults
(demographic parity, utility budget 0.01, at most 10% of the rows, damping 1e-3, k chosen on the validation
split by the one-step update's actual F); the test split is used only for the numbers printed here.

Parts (``--parts``, default all):

- ``cost``: on the 2,000 training rows, back to back: a bare training pass (forward, backward and AdamW step
  for every row, batch 32: the lower bound "one forward and backward pass per point" plus the optimizer);
  one epoch of fairprompt's trainer as the task prompt is tuned (that pass plus the validation pass that
  early stopping needs); the whole scoring step (exact per-row Jacobians of the training and validation
  rows, Gauss-Newton matrix, Cholesky solve, scores).  Ratios scoring / epoch and scoring / bare pass; the
  process's peak resident memory.
- ``effect``: test-split demographic parity difference (DP) and equalized-odds difference (EO) by sex, and
  accuracy, for: the un-repaired prompt; FairIJ ``ij`` (one-step update); FairIJ ``append`` (4 appended soft
  tokens trained on the down-weighted rows); the append control (the same 4 tokens trained on all rows,
  nothing down-weighted: capacity without re-weighting); reweighing (AIF360 ``Reweighing`` weights of
  sex x label, used to train the same 4 appended tokens); fairlearn's ``ThresholdOptimizer`` (demographic
  parity, fitted on the validation split's scores of the un-repaired prompt, applied to its test scores).
  95% CIs from 1,000 bootstrap resamples of the test rows, paired: every method is evaluated on the same
  resampled rows, so the DP reduction and the accuracy change have paired CIs.  Also the curve over k: the
  one-step update's test DP and accuracy at every grid point (the choice of k never sees these).
- ``fidelity``: 20 removal sets of 0.5-5% of the training rows (top-k and bottom-k by predicted influence on
  F, and two random draws, at k = 10, 20, 40, 70, 100), each removed in a paired retrain: AdamW fine-tuning
  of the task prompt and head from theta_hat for ``--verify-epochs`` epochs (default 1: 63 steps of batch
  32), beside a control run with the same seed and batch order that removes nothing; actual change = removal
  run minus control run.  Pearson r of predicted against actual change of the validation F, and the ratio
  actual / predicted.  Also the fidelity against an exact convex refit of the head alone: logistic
  regression on the frozen pooled features (prompt fixed at theta_hat, L2 1e-3), exact Newton refits
  without each set, against the IJ prediction of the same head-only model.

Run: ``.venv/bin/python benchmarks/bench_fairij.py [--parts cost,effect,fidelity] [--json PATH]``
(about an hour on 2 CPU cores; ``--quick`` runs every code path on a few hundred rows in a few minutes,
and its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import log as _log
from common import paired_table, write_json
from common import peak_mb as _peak_mb

ROOT = Path(__file__).resolve().parents[1]
GROUP = "sex"
SIZES = (10, 20, 40, 70, 100)      # removal-set sizes: 0.5% to 5% of 2,000 training rows
HEAD_L2 = 1e-3


# ------------------------------------------------------------------------------------------------ setup
class Setup:
    """The spec's model, rows and group labels (train, validation, test)."""

    def __init__(self, quick: bool) -> None:
        import yaml

        from fairprompt.spec import parse_spec
        from fairprompt.tasks import load_task

        raw = yaml.safe_load((ROOT / "audits" / "adult_income.yaml").read_text())
        self.spec = spec = parse_spec(raw, source="adult_income.yaml")
        self.task = task = load_task(spec)
        self.model, self.training = task.load_model()
        s, y, frame = task.splits, task.y, task.dataset.frame
        train, validation, test = s.train, s.validation, s.test
        from fairprompt.mitigation.fairij_method.repair import DEFAULT_APPEND_TRAINING

        self.append_training = DEFAULT_APPEND_TRAINING
        if quick:
            train, validation, test = train[:150], validation[:150], test[:200]
            self.append_training = replace(DEFAULT_APPEND_TRAINING, max_epochs=1, patience=1)
        self.index = {"train": train, "validation": validation, "test": test}
        self.y = {k: y[v] for k, v in self.index.items()}
        self.groups = {k: np.asarray(frame[GROUP].iloc[v].astype(str).to_numpy(), dtype=object) for k, v in self.index.items()}
        self.rows = {k: self.model.encode(task.pick(v), labels=self.y[k]) for k, v in self.index.items()}
        self.batch_size = spec.model.batch_size
        self.threshold = spec.model.threshold
        self.source = self.training.get("source", "")

    def scores(self, model: Any, split: str) -> np.ndarray:
        return model.predict_proba(self.rows[split], batch_size=self.batch_size)[:, 1]


# ------------------------------------------------------------------------------------------------- cost
def part_cost(setup: Setup) -> dict[str, Any]:
    from fairprompt.mitigation.fairij_method.influence import score_prompt
    from fairprompt.mitigation.fairij_method.verify import fine_tune
    from fairprompt.models.text import text_forward
    from fairprompt.models.training import TrainConfig, train

    t = setup.spec.model.training
    config = TrainConfig(lr=t.lr, head_lr=t.head_lr, batch_size=t.batch_size, seed=0, max_epochs=1)  # the spec's
    _log("cost: one bare training pass (forward, backward, AdamW step per batch)")
    copy = setup.model.adapter_copy()
    start = time.perf_counter()
    steps = fine_tune(copy, setup.rows["train"], np.ones(len(setup.rows["train"])), epochs=1, config=config, l2=0.0)
    bare = time.perf_counter() - start
    _log("cost: one epoch of fairprompt's trainer (training pass + the validation pass early stopping needs)")
    copy = setup.model.adapter_copy()
    params = copy.task_parameters()
    for p in params:
        p.requires_grad_(True)
    history = train(model=copy, forward=text_forward, param_groups=[{"params": params[:1], "lr": t.lr},
                                                                    {"params": params[1:], "lr": t.head_lr}],
                    train_data=setup.rows["train"], validation_data=setup.rows["validation"], config=config)
    epoch = history.epochs[0]["seconds"]
    del copy
    _log("cost: scoring")
    start = time.perf_counter()
    scores = score_prompt(model=setup.model, train_rows=setup.rows["train"], validation_rows=setup.rows["validation"],
                          groups=setup.groups["validation"], measure="demographic_parity", damping=1e-3, batch_size=32)
    scoring = time.perf_counter() - start
    return {"train_rows": len(setup.rows["train"]), "validation_rows": len(setup.rows["validation"]),
            "bare_pass_seconds": bare, "bare_pass_steps": steps, "epoch_seconds": epoch, "scoring_seconds": scoring,
            "jacobian_seconds": scores.jacobian_seconds, "solve_seconds": scores.seconds,
            "ratio_scoring_to_epoch": scoring / epoch, "ratio_scoring_to_bare_pass": scoring / bare,
            "parameters": scores.p, "peak_rss_mb": _peak_mb(), "threads": torch.get_num_threads()}


# ----------------------------------------------------------------------------------------------- effect
def part_effect(setup: Setup, state: dict[str, Any]) -> dict[str, Any]:
    from fairprompt.mitigation import AppendTraining, FairIJConfig, fairij, train_appended_prompt
    from fairprompt.mitigation.baselines import reweighing_weights, threshold_optimizer

    model, rows, groups = setup.model, setup.rows, setup.groups
    base_test = setup.scores(model, "test")
    base_validation = setup.scores(model, "validation")
    thr = setup.threshold
    predictions = {"un-repaired prompt": (base_test >= thr).astype(int)}
    info: dict[str, Any] = {}
    common = dict(model=model, train_rows=rows["train"], validation_rows=rows["validation"],
                  validation_groups=groups["validation"])
    a = setup.append_training
    config = FairIJConfig(seed=0, append_training=AppendTraining(max_epochs=a.max_epochs, patience=a.patience,
                                                                 batch_size=a.batch_size, lr=a.lr))

    _log("effect: fairij ij (scoring, grid)")
    start = time.perf_counter()
    r_ij = fairij(config=replace(config, mode="ij"), keep_scores=True, **common)
    info["FairIJ ij"] = {"seconds": time.perf_counter() - start, "chosen_k": r_ij.chosen_k, "timings": r_ij.timings,
                         "influence": {k: v for k, v in r_ij.influence.items() if k != "fairness_detail"},
                         "validation_before": r_ij.before, "validation_after": r_ij.after, "curve": r_ij.curve,
                         "trainable": "task prompt and head (one-step update)"}
    state["scores"], state["result"] = r_ij.scores, r_ij
    predictions["FairIJ ij"] = (setup.scores(r_ij.repaired_model, "test") >= thr).astype(int)

    _log("effect: fairij append")
    start = time.perf_counter()
    r_app = fairij(config=replace(config, mode="append"), scores=r_ij.scores, **common)
    info["FairIJ append"] = {"seconds": time.perf_counter() - start, "chosen_k": r_app.chosen_k, "timings": r_app.timings,
                             "validation_before": r_app.before, "validation_after": r_app.after,
                             "epochs": len(r_app.append["history"]["epochs"]) if r_app.append else None,
                             "best_epoch": r_app.append["history"]["best_epoch"] if r_app.append else None,
                             "trainable": "4 appended tokens (1,536 numbers)"}
    predictions["FairIJ append"] = (setup.scores(r_app.repaired_model, "test") >= thr).astype(int)

    _log("effect: append control (nothing down-weighted)")
    start = time.perf_counter()
    control, _, _ = train_appended_prompt(model=model, train_rows=rows["train"], validation_rows=rows["validation"], seed=0,
                                       config=setup.append_training)
    info["append control"] = {"seconds": time.perf_counter() - start, "trainable": "4 appended tokens, all rows weight 1"}
    predictions["append control"] = (setup.scores(control, "test") >= thr).astype(int)

    _log("effect: AIF360 reweighing through the appended tokens")
    weights = reweighing_weights(groups=groups["train"], labels=setup.y["train"])  # = AIF360's (tests/test_baselines.py)
    start = time.perf_counter()
    rew, _, _ = train_appended_prompt(model=model, train_rows=rows["train"], validation_rows=rows["validation"],
                                      weights=weights, seed=0, config=setup.append_training)
    info["reweighing (AIF360)"] = {"seconds": time.perf_counter() - start,
                                   "weights": sorted({round(float(w), 4) for w in weights}),
                                   "trainable": "4 appended tokens, rows weighted by AIF360 Reweighing"}
    predictions["reweighing (AIF360)"] = (setup.scores(rew, "test") >= thr).astype(int)

    _log("effect: ThresholdOptimizer")
    predictions["ThresholdOptimizer (fairlearn)"] = threshold_optimizer(
        fit_scores=base_validation, fit_labels=setup.y["validation"], fit_groups=groups["validation"], scores=base_test,
        groups=groups["test"], seed=0)
    info["ThresholdOptimizer (fairlearn)"] = {"trainable": "group-specific randomized thresholds on the un-repaired "
                                              "scores, fitted on the validation split; uses sex at prediction time"}
    table = paired_table(setup.y["test"], groups["test"], predictions, base="un-repaired prompt")

    state["base_test_pred"] = predictions["un-repaired prompt"]
    return {"table": table, "methods": info, "test_rows": int(setup.y["test"].size)}


def part_curve(setup: Setup, state: dict[str, Any]) -> list[dict[str, Any]]:
    """The one-step update's test DP, EO and accuracy at every grid point of the fairij ij run (never used to choose)."""
    from fairprompt.mitigation.fairij_method.influence import ij_update
    from fairprompt.mitigation.fairij_method.selection import alphas_for, set_task_parameters

    r_ij = _ij_result(setup, state)
    model, groups, thr = setup.model, setup.groups, setup.threshold
    base = state.get("base_test_pred")
    if base is None:
        base = (setup.scores(model, "test") >= thr).astype(int)
    predictions = {"un-repaired prompt": base}
    _log("curve: test values over k (one-step update)")
    scores = r_ij.scores
    I_F, I_U = scores.influence_fairness, scores.influence_utility
    order = np.argsort(I_F, kind="stable")[: int((I_F < 0).sum())]
    scratch = model.adapter_copy()
    theta_hat = [p.detach().clone() for p in scratch.task_parameters()]
    curve = []
    for point in r_ij.curve:
        k = point["k"]
        alphas = alphas_for(k, order, I_F, I_U, n=scores.n, graded=False, budget=r_ij.utility_budget)
        set_task_parameters(scratch, theta_hat if k == 0 else ij_update(scores=scores, alphas=alphas))
        pred = (setup.scores(scratch, "test") >= thr).astype(int)
        row = paired_table(setup.y["test"], groups["test"], {"base": predictions["un-repaired prompt"], "k": pred},
                           base="base")["k"]
        curve.append({"k": k, "fraction": point["fraction"], "validation_F": point["actual_F"],
                      "validation_U": point["actual_U"], "chosen": point["chosen"], "test_dp": row["dp"],
                      "test_eo": row["eo"], "test_accuracy": row["accuracy"]})
    return curve


def _ij_result(setup: Setup, state: dict[str, Any]) -> Any:
    """The fairij ij result with its scores, from the effect part or computed now."""
    from fairprompt.mitigation import FairIJConfig, fairij

    if state.get("result") is None:
        _log("scoring (fairij ij)")
        state["result"] = fairij(model=setup.model, train_rows=setup.rows["train"], validation_rows=setup.rows["validation"],
                                 validation_groups=setup.groups["validation"], config=FairIJConfig(mode="ij", seed=0),
                                 keep_scores=True)
    return state["result"]


# --------------------------------------------------------------------------------------------- fidelity
def removal_sets(I_F: np.ndarray, *, sizes: tuple[int, ...], seed: int = 0) -> list[tuple[str, np.ndarray]]:
    n = I_F.size
    order = np.argsort(I_F, kind="stable")
    rng = np.random.default_rng(seed)
    sets = []
    for k in sizes:
        for name, rows in (("top", order[:k]), ("bottom", order[::-1][:k]),
                           ("random", rng.choice(n, k, replace=False)), ("random", rng.choice(n, k, replace=False))):
            alphas = np.zeros(n)
            alphas[rows] = 1.0
            sets.append((f"{name}-{k}", alphas))
    return sets


def _pearson(a: list[float], b: list[float]) -> float:
    return float(np.corrcoef(np.asarray(a), np.asarray(b))[0, 1])


def head_only(setup: Setup, scores: Any, sets: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """IJ against exact convex refits of the head alone (logistic regression on the pooled features at theta_hat)."""
    from fairprompt.mitigation.fairij_method.influence import (
        fairness_surrogate,
        fit_logistic,
        influence_scores,
        logistic_margins,
        prompt_margins,
    )

    d = setup.model.head().in_features
    k_d = setup.model.task_prompt_embedding().numel()
    features = scores.train_margins.J[:, k_d + d:k_d + 2 * d].numpy()
    validation = prompt_margins(model=setup.model, rows=setup.rows["validation"])
    features_v = validation.J[:, k_d + d:k_d + 2 * d].numpy()
    y, yv, gv = setup.y["train"], setup.y["validation"], setup.groups["validation"]
    w, b = fit_logistic(features=features, labels=y, l2=HEAD_L2)

    def F(weight: np.ndarray, bias: float) -> float:
        return fairness_surrogate(validation=logistic_margins(features=features_v, weight=weight, bias=bias), labels=yv,
                                  groups=gv, measure="demographic_parity").value

    head = influence_scores(train=logistic_margins(features=features, weight=w, bias=b), train_labels=y,
                            validation=logistic_margins(features=features_v, weight=w, bias=b), validation_labels=yv,
                            groups=gv, l2=HEAD_L2, damping=1e-10)
    base = F(w, b)
    checks = []
    for name, alphas in sets:
        w2, b2 = fit_logistic(features=features, labels=y, weights=1 - alphas, l2=HEAD_L2, init=(w, b))
        checks.append({"set": name, "predicted_dF": float(alphas @ head.influence_fairness), "actual_dF": F(w2, b2) - base})
    return {"l2": HEAD_L2, "checks": checks, "pearson": _pearson([c["predicted_dF"] for c in checks],
                                                                 [c["actual_dF"] for c in checks]),
            "slope": _slope(checks)}


def _slope(checks: list[dict[str, Any]]) -> float:
    """Least-squares slope through the origin of actual on predicted change (1 = the right size)."""
    p = np.array([c["predicted_dF"] for c in checks])
    a = np.array([c["actual_dF"] for c in checks])
    return float(p @ a / (p @ p))


def part_fidelity(setup: Setup, state: dict[str, Any], *, epochs: int, sizes: tuple[int, ...]) -> dict[str, Any]:
    from fairprompt.mitigation.fairij_method.verify import verify

    result = _ij_result(setup, state)
    sets = removal_sets(result.influence_fairness, sizes=sizes)
    _log(f"fidelity: head-only exact refits ({len(sets)} sets)")
    convex = head_only(setup, result.scores, sets)
    _log(f"fidelity: {len(sets)} paired retrains + control, {epochs} epochs each")
    progress = lambda what, done, total: _log(f"  {what}: {done}/{total}")  # noqa: E731
    check = verify(model=setup.model, train_rows=setup.rows["train"], validation_rows=setup.rows["validation"],
                   validation_groups=setup.groups["validation"], result=result, epochs=epochs,
                   alphas=[a for _, a in sets], progress=progress)
    checks = [{"set": name, **c} for (name, _), c in zip(sets, check.checks, strict=True)]
    predicted = [c["predicted_dF"] for c in checks]
    actual = [c["actual_dF"] for c in checks]
    by_kind = {}
    for kind in ("top", "bottom", "random"):
        chosen = [c for c in checks if c["set"].startswith(kind)]
        by_kind[kind] = {"sets": len(chosen), "mean_predicted_dF": float(np.mean([c["predicted_dF"] for c in chosen])),
                         "mean_actual_dF": float(np.mean([c["actual_dF"] for c in chosen]))}
    return {"method": check.method, "epochs": epochs, "steps": check.steps, "baseline": check.baseline,
            "control_drift": check.control_drift, "checks": checks, "pearson": _pearson(predicted, actual),
            "spearman": _spearman(predicted, actual), "slope": _slope(checks), "by_kind": by_kind,
            "seconds": check.seconds, "head_only": convex, "damping": result.influence.get("damping")}


def _spearman(a: list[float], b: list[float]) -> float:
    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return _pearson(list(ra), list(rb))


# ---------------------------------------------------------------------------------------------- printing
def _f(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def _ci(c: list[float], digits: int = 3) -> str:
    return f"[{c[0]:.{digits}f}, {c[1]:.{digits}f}]"


def print_report(out: dict[str, Any]) -> None:
    if "cost" in out:
        c = out["cost"]
        print(f"\nCost ({c['train_rows']} training rows, {c['parameters']} parameters, {c['threads']} threads)")
        print(f"  one bare training pass (forward, backward, step; {c['bare_pass_steps']} steps): {c['bare_pass_seconds']:.1f} s")
        print(f"  one trainer epoch (training pass + validation pass): {c['epoch_seconds']:.1f} s")
        print(f"  scoring every training row: {c['scoring_seconds']:.1f} s (per-row Jacobians of the training and "
              f"validation rows {c['jacobian_seconds']:.1f} s, curvature, solve and scores {c['solve_seconds']:.1f} s)")
        print(f"  ratio scoring / trainer epoch: {c['ratio_scoring_to_epoch']:.2f}x; scoring / bare training pass: "
              f"{c['ratio_scoring_to_bare_pass']:.2f}x; peak RSS {c['peak_rss_mb']:.0f} MB")
    if "effect" in out:
        e = out["effect"]
        print(f"\nEffect on the test split ({e['test_rows']} rows), group sex, 95% paired bootstrap CIs")
        print("| method | test DP [CI] | DP change [CI] | test EO [CI] | accuracy | accuracy change [CI] |")
        print("|---|---|---|---|---|---|")
        for m, r in e["table"].items():
            print(f"| {m} | {_f(r['dp'])} {_ci(r['dp_ci'])} | {r['dp_relative_change']:+.0%} "
                  f"[{r['dp_relative_change_ci'][0]:+.0%}, {r['dp_relative_change_ci'][1]:+.0%}] | {_f(r['eo'])} "
                  f"{_ci(r['eo_ci'])} | {_f(r['accuracy'])} | {r['accuracy_change']:+.4f} {_ci(r['accuracy_change_ci'], 4)} |")
    if "curve" in out:
        print("\nOne-step update over k (k chosen on validation; the test values are never used for the choice):")
        print("| k | validation F | validation U | test DP | test EO | test accuracy |")
        print("|---|---|---|---|---|---|")
        for p in out["curve"]:
            mark = " (chosen)" if p["chosen"] else ""
            print(f"| {p['k']}{mark} | {_f(p['validation_F'], 4)} | {_f(p['validation_U'], 4)} | {_f(p['test_dp'])} | "
                  f"{_f(p['test_eo'])} | {_f(p['test_accuracy'])} |")
    if "fidelity" in out:
        f = out["fidelity"]
        print(f"\nFidelity: {len(f['checks'])} removal sets, paired retrains ({f['method']})")
        print(f"  Pearson r(predicted, actual dF) = {f['pearson']:.3f}, Spearman {f['spearman']:.3f}, "
              f"slope actual/predicted {f['slope']:.2f}; control drift of F {f['control_drift']['fairness']:+.5f}")
        for kind, v in f["by_kind"].items():
            print(f"  {kind}: mean predicted dF {v['mean_predicted_dF']:+.5f}, mean actual {v['mean_actual_dF']:+.5f}")
        h = f["head_only"]
        print(f"  head alone, exact convex refits (L2 {h['l2']:g}): Pearson r = {h['pearson']:.4f}, slope {h['slope']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="cost,effect,fidelity,curve")
    parser.add_argument("--verify-epochs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a few hundred rows: checks the code paths, not the numbers")
    parser.add_argument("--json", type=Path, default=None, help="also write every number as JSON here (after each part)")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"cost", "effect", "fidelity", "curve"}
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; use cost, effect, fidelity, curve")
    torch.manual_seed(0)
    start = time.perf_counter()
    setup = Setup(args.quick)
    out: dict[str, Any] = {"model": setup.source, "quick": args.quick, "cpu_count": os.cpu_count(),
                           "command": " ".join(["benchmarks/bench_fairij.py", *(argv if argv is not None else sys.argv[1:])])}
    state: dict[str, Any] = {}
    sizes = tuple(max(2, k // 10) for k in SIZES) if args.quick else SIZES
    runners = {"cost": lambda: part_cost(setup), "effect": lambda: part_effect(setup, state),
               "fidelity": lambda: part_fidelity(setup, state, epochs=args.verify_epochs, sizes=sizes),
               "curve": lambda: part_curve(setup, state)}
    for part in parts:
        out[part] = runners[part]()
        write_json(out, args.json, start=start)
    print_report(out)
    print(f"\ntotal {out['seconds'] / 60:.1f} min, peak RSS {out['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
