"""colored_digits: each FairReprogram trigger's gain beyond its lambda = 0 control, with CIs by source digit.

The model is audits/colored_digits.yaml's frozen fixture CNN (group = tint).  The triggers are trained with
:func:`fairprompt.mitigation.reprogram` exactly as the spec trains them (its ``reprogram`` block: trained on a
seeded half of the validation split, chosen on the other half by the spec's rule), for a border and a patch and
for demographic parity (DP) and equalized odds (EO).

The held-out images are measured with counterfactual copies: the generator's ``every_tint`` renders every test
(and final) source image in each tint, the copies differing from their source in the tint alone
(:mod:`fairprompt.datasets.colored_digits`), so the 179 test digits give 358 rows, each tint on every digit.
Copies of one digit are not independent, so every CI comes from a paired bootstrap by source digit
(:func:`fairprompt.metrics.paired_bootstrap` with ``clusters = source_index``, 1,000 resamples): all methods on
the same resampled digits.  For each trigger the table gives its gap, its accuracy, and its gain beyond the
control, ``control gap - trigger gap``, with that paired CI; the chosen trigger's gain must have a CI above zero.
fairlearn's ThresholdOptimizer (fitted on the untriggered model's validation scores; it reads the tint at
prediction) is the group-aware reference.

Only the test split is read unless ``--final``: then the chosen triggers (no other) are also measured on the
final split's copies, once, and the run is recorded in the JSON's ``final_uses``.

Run: ``.venv/bin/python benchmarks/bench_digits_triggers.py --json docs/benchmarks/digits_triggers.json``
(``--quick``: one epoch and two lambdas, to check the code paths; its numbers mean nothing).
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

CASES = ("border_eo", "border_dp", "patch_eo", "patch_dp")
MEASURES = {"dp": "demographic_parity", "eo": "equalized_odds"}


class DigitsSetup:
    """The spec's frozen CNN, its tuning rows (train, validation) and the held-out splits' counterfactual copies."""

    def __init__(self, *, final: bool) -> None:
        from fairprompt.datasets import colored_digits
        from fairprompt.models.image import ImageRows

        loaded = spec_repair("colored_digits.yaml")
        self.spec = spec = loaded.spec
        self.block, self.task, self.model, self.group = loaded.block, loaded.task, loaded.model, loaded.group
        task = self.task
        s, frame = task.splits, task.dataset.frame
        self.rows = {name: task.split_rows(self.model, index) for name, index in
                     (("train", s.train), ("validation", s.validation))}
        self.groups = {name: frame[self.group].iloc[index].astype(str).to_numpy() for name, index in
                       (("train", s.train), ("validation", s.validation))}
        self.labels = {"validation": task.y[s.validation]}
        held_out = ("test", "final") if final else ("test",)
        copies = colored_digits.generate(**spec.data.options, every_tint=held_out)
        n = len(task.images)
        if not np.array_equal(copies.images[:n], task.images):
            raise RuntimeError("the counterfactual copies' source rows differ from the spec's images")
        self.held_out: dict[str, dict[str, Any]] = {}
        for name in held_out:
            part = copies.split(name)
            self.held_out[name] = {"rows": ImageRows(part.images, part.y), "y": part.y,
                                   "groups": part.frame["group"].astype(str).to_numpy(),
                                   "digits": part.frame["source_index"].to_numpy(),
                                   "sources": int(part.frame["source_index"].nunique())}
        self.threshold = spec.model.threshold
        self.batch_size = spec.model.batch_size

    def decisions(self, model: Any, split: str) -> np.ndarray:
        return (self.task.predict(model, self.held_out[split]["rows"]) >= self.threshold).astype(int)


def gains_table(setup: DigitsSetup, split: str, predictions: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Paired by-digit bootstrap against the control (gains) and against the untriggered model (changes)."""
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    from fairprompt.metrics import paired_bootstrap

    h = setup.held_out[split]
    common = dict(y_true=h["y"], groups=h["groups"], predictions=predictions, gaps=DP_EO, n_boot=N_BOOT, seed=0,
                  clusters=h["digits"])
    vs_control = paired_bootstrap(base="lambda = 0 control", **common)
    vs_before = paired_bootstrap(base="untriggered", **common)
    table: dict[str, dict[str, Any]] = {}
    for method, p in predictions.items():
        c, b = vs_control[method], vs_before[method]
        assert abs(c["dp"] - demographic_parity_difference(h["y"], p, sensitive_features=h["groups"])) < 1e-12
        assert abs(c["eo"] - equalized_odds_difference(h["y"], p, sensitive_features=h["groups"])) < 1e-12
        row = {"accuracy": c["accuracy"], "accuracy_ci": c["accuracy_ci"],
               "accuracy_change_vs_untriggered": b["accuracy_change"],
               "accuracy_change_vs_untriggered_ci": b["accuracy_change_ci"]}
        for key in DP_EO:
            row[key] = c[key]
            row[f"{key}_ci"] = c[f"{key}_ci"]
            row[f"{key}_gain_vs_control"] = 0.0 - c[f"{key}_change"]
            row[f"{key}_gain_vs_control_ci"] = sorted(0.0 - x for x in c[f"{key}_change_ci"])
            row[f"{key}_relative_change_vs_untriggered"] = b[f"{key}_relative_change"]
            row[f"{key}_relative_change_vs_untriggered_ci"] = b[f"{key}_relative_change_ci"]
        table[method] = row
    return table


def run_case(setup: DigitsSetup, case: str, *, quick: bool, final: bool) -> dict[str, Any]:
    from fairprompt.mitigation import reprogram
    from fairprompt.mitigation.baselines import threshold_optimizer

    trigger, measure = case.split("_")
    config = replace(setup.block.config(), trigger=trigger, measure=MEASURES[measure])
    if quick:
        config = replace(config, epochs=1, lambdas=(0.0, max(config.lambdas)))
    log(f"{case}: {config}")
    start = time.perf_counter()
    result = reprogram(model=setup.model, train_rows=setup.rows["train"], validation_rows=setup.rows["validation"],
                       train_groups=setup.groups["train"], validation_groups=setup.groups["validation"], config=config,
                       threshold=setup.threshold, batch_size=setup.batch_size)
    seconds = time.perf_counter() - start
    lambdas = [float(p["lambda"]) for p in result.points]
    chosen = lambdas.index(float(result.chosen_lambda))
    validation_scores = setup.task.predict(setup.model, setup.rows["validation"])

    def predictions_on(split: str, indices: list[int]) -> dict[str, np.ndarray]:
        h = setup.held_out[split]
        out = {"untriggered": setup.decisions(setup.model, split)}
        out["lambda = 0 control"] = setup.decisions(result.triggered_models[lambdas.index(0.0)], split)
        for i in indices:
            if lambdas[i] != 0.0:
                out[f"lambda {lambdas[i]:g}"] = setup.decisions(result.triggered_models[i], split)
        fitted = threshold_optimizer(fit_scores=validation_scores, fit_labels=setup.labels["validation"],
                                     fit_groups=setup.groups["validation"],
                                     scores=setup.task.predict(setup.model, h["rows"]), groups=h["groups"],
                                     constraints=config.measure, seed=0)
        out[f"ThresholdOptimizer ({config.measure})"] = np.asarray(fitted).astype(int)
        return out

    summary = result.to_dict()
    for point in summary["points"]:
        point.pop("history", None)
    out: dict[str, Any] = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()},
        "seconds": seconds, "chosen_lambda": result.chosen_lambda, "rule_met": result.rule_met,
        "parameters": result.parameters, "tuning": result.tuning, "selection_points": summary["points"],
        "test": gains_table(setup, "test", predictions_on("test", list(range(len(lambdas))))),
    }
    if final:  # the chosen trigger only (beside its control, the untriggered model and the group-aware reference)
        out["final"] = gains_table(setup, "final", predictions_on("final", [chosen]))
    return out


def _ci(pair: list[float], scale: float = 1.0, fmt: str = "+.3f") -> str:
    return f"[{scale * pair[0]:{fmt}}, {scale * pair[1]:{fmt}}]"


def print_report(out: dict[str, Any]) -> None:
    for case, r in out["cases"].items():
        key = case.split("_")[1]
        for split in ("test", "final"):
            if split not in r:
                continue
            h = out["held_out"][split]
            print(f"\n{case} on {split} ({h['rows']} rows = {h['sources']} digits x each tint); chosen lambda "
                  f"{r['chosen_lambda']:g} (rule met: {r['rule_met']}); {r['seconds']:.0f} s for the grid")
            print(f"| method | {key.upper()} [CI] | gain vs control [CI] | change vs untriggered [CI] | accuracy | "
                  "accuracy change [CI] |")
            print("|---|---|---|---|---|---|")
            for m, t in r[split].items():
                mark = " (chosen)" if m == f"lambda {r['chosen_lambda']:g}" else ""
                rel, rel_ci = t[f"{key}_relative_change_vs_untriggered"], t[f"{key}_relative_change_vs_untriggered_ci"]
                rel_txt = "n/a" if rel is None else f"{rel:+.0%} {_ci(rel_ci, 100, '+.0f')}%"
                print(f"| {m}{mark} | {t[key]:.3f} {_ci(t[f'{key}_ci'], fmt='.3f')} | {t[f'{key}_gain_vs_control']:+.3f} "
                      f"{_ci(t[f'{key}_gain_vs_control_ci'])} | {rel_txt} | {t['accuracy']:.3f} | "
                      f"{100 * t['accuracy_change_vs_untriggered']:+.1f} pt "
                      f"{_ci(t['accuracy_change_vs_untriggered_ci'], 100, '+.1f')} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("--final", action="store_true", help="also measure the chosen triggers on the final split")
    parser.add_argument("--quick", action="store_true", help="one epoch, two lambdas: checks the code paths")
    parser.add_argument("--json", type=Path, default=None, help="write every number here (after each case)")
    parser.add_argument("--shared", default="nothing noted", help="what shared the cores during the run")
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if set(cases) - set(CASES):
        parser.error(f"unknown case(s) {', '.join(sorted(set(cases) - set(CASES)))}; use {', '.join(CASES)}")
    torch.manual_seed(0)
    start = time.perf_counter()
    previous = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    setup = DigitsSetup(final=args.final)
    command = " ".join(["benchmarks/bench_digits_triggers.py", *(argv if argv is not None else sys.argv[1:])])
    out: dict[str, Any] = {
        "command": command, "quick": args.quick, "threads": torch.get_num_threads(), "shared": args.shared,
        "group": setup.group, "n_boot": N_BOOT, "bootstrap": "paired, by source digit (clusters = source_index)",
        "held_out": {name: {"rows": int(h["y"].size), "sources": h["sources"]} for name, h in setup.held_out.items()},
        "final_uses": previous.get("final_uses", []), "cases": {},
    }

    for case in cases:
        out["cases"][case] = run_case(setup, case, quick=args.quick, final=args.final)
        log(f"{case} done")
        write_json(out, args.json, start=start)
    if args.final:
        out["final_uses"].append({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
                                  "cases": cases})
        write_json(out, args.json, start=start)
    print_report(out)
    print(f"\ntotal {out['seconds'] / 60:.1f} min, peak RSS {out['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
