"""The decision trigger shipped with fairprompt for ``audits/llm_decisions.yaml`` (the embedded SmolLM2, the paper's
prompt), and how to rebuild it: ``make trigger-artifact-llm_decisions``.

The build follows the protocol of :mod:`fairprompt.decision_repair`: one trigger per lambda of :data:`LAMBDAS`
(:data:`SETTINGS` otherwise) on the 40 training scenarios of the seeded split (all 135 variants to sample from), each
scored on the 10 choose scenarios (their one-factor variants), and the one with the lowest mean absolute
discrimination score among those keeping the scenarios' order (Spearman >= 0.9) is shipped, with the choose
scenarios' table.  The held-out scenarios are not read.  About 10 minutes per lambda on 2 CPU cores.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.decision_trigger_method.training import DecisionTriggerSettings, train_decision_trigger

SHIPPED = Path(__file__).resolve().parents[2] / "artifacts" / "decision_triggers"
LAMBDAS = (30.0, 300.0)
SETTINGS = DecisionTriggerSettings(tokens=5, steps=100, variants_per_step=7, lr=3e-3, seed=0)
NAMES = ("llm_decisions",)


def shipped_trigger(name: str = "llm_decisions") -> Path:
    """The directory of a shipped trigger (it may not exist yet)."""
    if name not in NAMES:
        raise FairpromptError(f"no shipped decision trigger {name!r}; use one of {', '.join(NAMES)}")
    return SHIPPED / name


def build(name: str = "llm_decisions", *, root: Path = SHIPPED, split_seed: int = 0) -> dict[str, Any]:
    """Train, choose on the choose scenarios and write ``root/name`` (module docstring); returns its record."""
    import time

    import torch

    from fairprompt.decision_audit import PAPER_PROMPT, discrim_eval_rows
    from fairprompt.decision_repair import MIN_SPEARMAN, UNREPAIRED, best_repair, compare_part
    from fairprompt.mitigation.decision_trigger_method.artifact import save_decision_trigger
    from fairprompt.mitigation.decision_trigger_method.scoring import score_repairs
    from fairprompt.models.causal_lm import FrozenCausalLM

    shipped_trigger(name)
    lm = FrozenCausalLM.load(prompt=PAPER_PROMPT)
    train, train_subset = discrim_eval_rows(scenarios="train", variants="all", split_seed=split_seed)
    choose, choose_subset = discrim_eval_rows(scenarios="choose", variants="one_factor", split_seed=split_seed)
    began = time.perf_counter()
    trained = {}
    for lam in LAMBDAS:
        print(f"training the trigger at lambda {lam:g}", flush=True)
        trained[f"lambda_{lam:g}"] = train_decision_trigger(lm, rows=train, settings=replace(SETTINGS, lam=lam))
    scores = score_repairs(lm, texts=choose["text"].tolist(), triggers={k: t.trigger for k, t in trained.items()})
    part = compare_part(choose, scores)
    chosen, rule = best_repair(part, list(trained), MIN_SPEARMAN)
    assert chosen is not None
    table = {k: {x: v[x] for x in ("mean_abs", "spearman", "yes_rate", "mean_score")}
             for k, v in part["repairs"].items()}
    record = {"name": name, "chosen": chosen, "rule": rule, "lambdas": list(LAMBDAS), "settings": asdict(SETTINGS),
              "split": train_subset["split"], "trained_on": {"scenarios": train_subset["scenario_ids"],
                                                             "rows": train_subset["rows"]},
              "chosen_on": {"scenarios": choose_subset["scenario_ids"], "rows": choose_subset["rows"],
                            "table": table, "unrepaired": UNREPAIRED},
              "training": {k: t.to_dict() | {"losses": None, "anchors": None, "spreads": None,
                                             "unrepaired_spreads": None} for k, t in trained.items()},
              "seconds": time.perf_counter() - began, "torch": torch.__version__}
    save_decision_trigger(lm, trained[chosen].trigger, root, name, record=record)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Rebuild a shipped decision trigger")
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--only", default="llm_decisions", choices=NAMES)
    args = parser.parse_args(argv)
    record = build(args.only)
    print(f"shipped {args.only}: {record['chosen']} ({record['rule']}) in {record['seconds']:.0f} s")


if __name__ == "__main__":
    main()


__all__ = ["LAMBDAS", "NAMES", "SETTINGS", "SHIPPED", "build", "shipped_trigger"]
