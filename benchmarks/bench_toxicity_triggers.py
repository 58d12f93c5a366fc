"""identity_toxicity: the FairReprogram trigger against the gap in harmless comments flagged as toxic, read
against its noise floor.

The model is audits/identity_toxicity.yaml's (frozen MiniLM with its shipped task prompt); the triggers are
trained by :func:`fairprompt.mitigation.reprogram` exactly as the spec trains them (its ``reprogram`` block:
training rows, chosen on the validation split by the spec's rule), or with the block's keys changed by ``--set
KEY=VALUE`` (a lever, named in the JSON; e.g. ``--set counterfactual=10 --set swap_terms=identity_toxicity``
trains against identity swaps built from the generator's own phrases).  Only train and validation rows are used
to train and choose.

The measure is the largest gap across the 17 identities in the share of harmless comments flagged as toxic
(favourable = not toxic, so it is the between-groups gap in the favourable true-positive rate: "FPR gap").  With
17 groups of 64 harmless test comments that gap is never zero, so each model's gap is read beside its **noise
floor** (:func:`fairprompt.metrics.noise_floor.permutation_floor`: the mean gap over 1,000 permutations of the
identities among the rows of each label).  The [4/7] target: the chosen trigger's excess over its floor is at
most half of the untriggered model's, at most 2 points of accuracy lost.  Paired bootstrap CIs (1,000 resamples,
all methods on the same rows) for the gaps and the accuracy change.  fairlearn's ThresholdOptimizer (it reads the
identity at prediction) is the group-aware reference.

``--final`` also measures the chosen trigger (beside the untriggered model and its control) on the final split
(17,408 comments, 512 per identity and label), once, recorded in the JSON's ``final_uses``.

Run: ``.venv/bin/python benchmarks/bench_toxicity_triggers.py --json docs/benchmarks/toxicity_triggers.json``
(``--quick``: a few hundred rows, one epoch, two lambdas; its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import DP_EO, N_BOOT, log, spec_repair, write_json

GAPS = {**DP_EO, "fpr_gap": "equal_opportunity_difference"}


class ToxicitySetup:
    """The spec's frozen model, its reprogram block, and the rows of each split it reads."""

    def __init__(self, *, final: bool, quick: bool) -> None:
        loaded = spec_repair("identity_toxicity.yaml")
        self.spec = spec = loaded.spec
        self.block, self.task, self.model, self.group = loaded.block, loaded.task, loaded.model, loaded.group
        task = self.task
        s, frame = task.splits, task.dataset.frame
        index = {"train": s.train, "validation": s.validation, "test": s.test}
        if final:
            index["final"] = s.final
        if quick:
            index = {k: v[: {"train": 300, "validation": 300}.get(k, 600)] for k, v in index.items()}
        self.index = index
        self.y = {k: task.y[v] for k, v in index.items()}
        self.groups = {k: frame[self.group].iloc[v].astype(str).to_numpy() for k, v in index.items()}
        self.rows = {k: task.split_rows(self.model, v) for k, v in index.items()}
        self.threshold = spec.model.threshold
        self.batch_size = spec.model.batch_size

    def scores(self, model: Any, split: str) -> np.ndarray:
        return self.task.predict(model, self.rows[split])


def judged(setup: ToxicitySetup, split: str, predictions: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Paired bootstrap against the untriggered model, each method's noise floor, and the target's check."""
    from fairlearn.metrics import equalized_odds_difference

    from fairprompt.metrics import paired_bootstrap
    from fairprompt.metrics.noise_floor import permutation_floor

    y, g = setup.y[split], setup.groups[split]
    table = paired_bootstrap(y_true=y, groups=g, predictions=predictions, base="untriggered", gaps=GAPS,
                             n_boot=N_BOOT, seed=0)
    before = None
    for method, p in predictions.items():
        assert abs(table[method]["eo"] - equalized_odds_difference(y, p, sensitive_features=g)) < 1e-12
        floor = permutation_floor(y_true=y, y_pred=p, groups=g, disparity_name=GAPS["fpr_gap"], n_perm=N_BOOT, seed=0)
        row = table[method]
        row["fpr_gap_floor"] = floor
        row["flagged_harmless"] = float(np.mean(p[y == 1] == 0))
        if method == "untriggered":
            before = floor
        assert before is not None
        row["excess_share_of_untriggered"] = (floor["excess"] / before["excess"]) if before["excess"] > 0 else None
        row["target_met"] = bool(row["excess_share_of_untriggered"] is not None
                                 and row["excess_share_of_untriggered"] <= 0.5 and row["accuracy_change"] >= -0.02)
    return table


def run(setup: ToxicitySetup, *, changes: dict[str, Any], quick: bool, final: bool) -> dict[str, Any]:
    from fairprompt.mitigation import reprogram
    from fairprompt.mitigation.baselines import threshold_optimizer

    config = replace(setup.block.config(), **changes)
    if quick:
        config = replace(config, epochs=1, lambdas=(0.0, max(config.lambdas)), max_rows=None)
    log(f"config: {config}")
    start = time.perf_counter()
    swapped_rows: dict[str, Any] = {"train": None, "validation": None}
    for split, needed in (("train", config.counterfactual > 0), ("validation", config.selection == "swap_flips")):
        if needed:  # the split's rows with the generator's identity phrases swapped, as the spec's repair builds them
            from fairprompt.swaps import SwapTerms

            swapped, _ = SwapTerms.load(str(config.swap_terms)).swap(setup.task.pick(setup.index[split]), seed=config.seed)
            swapped_rows[split] = setup.model.encode(swapped, labels=setup.y[split])
    result = reprogram(model=setup.model, train_rows=setup.rows["train"], validation_rows=setup.rows["validation"],
                       train_groups=setup.groups["train"], validation_groups=setup.groups["validation"], config=config,
                       threshold=setup.threshold, batch_size=setup.batch_size, counterfactual_rows=swapped_rows["train"],
                       validation_counterfactual_rows=swapped_rows["validation"])
    seconds = time.perf_counter() - start
    log(f"trained in {seconds / 60:.1f} min; chosen lambda {result.chosen_lambda:g}")
    lambdas = [float(p["lambda"]) for p in result.points]
    chosen = lambdas.index(float(result.chosen_lambda))
    t = setup.threshold
    fit_scores = setup.scores(setup.model, "validation")

    def predictions_on(split: str, indices: list[int]) -> dict[str, np.ndarray]:
        before = setup.scores(setup.model, split)
        out = {"untriggered": (before >= t).astype(int)}
        for i in indices:
            name = "lambda = 0 control" if lambdas[i] == 0.0 else f"lambda {lambdas[i]:g}"
            out[name] = (setup.scores(result.triggered_models[i], split) >= t).astype(int)
        fitted = threshold_optimizer(fit_scores=fit_scores, fit_labels=setup.y["validation"],
                                     fit_groups=setup.groups["validation"], scores=before, groups=setup.groups[split],
                                     constraints="equalized_odds", seed=0)
        out["ThresholdOptimizer (equalized_odds)"] = np.asarray(fitted).astype(int)
        return out

    summary = result.to_dict()
    for point in summary["points"]:
        point.pop("history", None)
    out: dict[str, Any] = {
        "changes": changes, "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()},
        "seconds": seconds, "chosen_lambda": result.chosen_lambda, "rule_met": result.rule_met,
        "parameters": result.parameters, "tuning": result.tuning, "selection_points": summary["points"],
        "warnings": result.warnings,
        "test": judged(setup, "test", predictions_on("test", list(range(len(lambdas))))),
    }
    if final:
        control = [lambdas.index(0.0)] if 0.0 in lambdas and chosen != lambdas.index(0.0) else []
        out["final"] = judged(setup, "final", predictions_on("final", [*control, chosen]))
    return out


def print_report(out: dict[str, Any]) -> None:
    r = out["run"]
    print("\nselection rows (validation): lambda | accuracy | gap | decisions flipped by identity swaps")
    for p in r["selection_points"]:
        flips = p.get("swap_flip_rate")
        print(f"  {p['lambda']:g} | {p['accuracy']:.4f} | {p['gap']:.3f} | "
              f"{'—' if flips is None else f'{100 * flips:.1f}%'}{' (chosen)' if p['chosen'] else ''}")
    for split in ("test", "final"):
        if split not in r:
            continue
        print(f"\n{split} ({out['rows'][split]} rows); chosen lambda {r['chosen_lambda']:g} (rule met: {r['rule_met']}); "
              f"changes {r['changes'] or 'none (the spec block)'}; {r['seconds'] / 60:.1f} min to train")
        print("| method | FPR gap [CI] | its noise floor (95%) | excess | excess / untriggered | accuracy | change [CI] "
              "| flagged harmless | EO | target |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for m, row in r[split].items():
            f, a = row["fpr_gap_floor"], row["accuracy_change_ci"]
            share = row["excess_share_of_untriggered"]
            print(f"| {m} | {row['fpr_gap']:.3f} [{row['fpr_gap_ci'][0]:.3f}, {row['fpr_gap_ci'][1]:.3f}] | "
                  f"{f['floor']:.3f} ({f['floor_quantile']:.3f}) | {f['excess']:+.3f} | "
                  f"{'n/a' if share is None else f'{share:.2f}'} | {row['accuracy']:.4f} | "
                  f"{100 * row['accuracy_change']:+.2f} pt [{100 * a[0]:+.2f}, {100 * a[1]:+.2f}] | "
                  f"{row['flagged_harmless']:.3f} | {row['eo']:.3f} | {'met' if row['target_met'] else '—'} |")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one key of the spec's reprogram block (JSON value), e.g. --set lambdas=[0,1]")
    parser.add_argument("--final", action="store_true", help="also measure the chosen trigger on the final split")
    parser.add_argument("--quick", action="store_true", help="a few hundred rows: checks the code paths")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    parser.add_argument("--shared", default="nothing noted", help="what shared the cores during the run")
    args = parser.parse_args(argv)
    changes: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        parsed = _value(value)
        changes[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    torch.manual_seed(0)
    start = time.perf_counter()
    previous = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    setup = ToxicitySetup(final=args.final, quick=args.quick)
    command = " ".join(["benchmarks/bench_toxicity_triggers.py", *(argv if argv is not None else sys.argv[1:])])
    out: dict[str, Any] = {"command": command, "quick": args.quick, "threads": torch.get_num_threads(),
                           "shared": args.shared, "group": setup.group, "n_boot": N_BOOT,
                           "rows": {k: int(v.size) for k, v in setup.y.items()},
                           "final_uses": previous.get("final_uses", [])}
    out["run"] = run(setup, changes=changes, quick=args.quick, final=args.final)
    if args.final:
        out["final_uses"].append({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command})
    write_json(out, args.json, start=start)
    print_report(out)
    print(f"\ntotal {out['seconds'] / 60:.1f} min, peak RSS {out['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
