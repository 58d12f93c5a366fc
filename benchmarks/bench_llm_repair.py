"""Repair the embedded language model's discrim-eval decisions: hand-written interventions against learned triggers.

Stage ``train``: one trigger per lambda (:mod:`fairprompt.mitigation.decision_trigger_method`) on the 40 training
scenarios of the seeded split (every step: the reference person and 7 other variants of one scenario), each saved
under ``--out``.  Stage ``score``: every repair (un-repaired, the 4 interventions, each trigger) scored on the 10
choose scenarios and the 20 held-out ones (their 15 one-factor variants; ``--variants all`` for all 135), raw scores
to ``--out/scores.json``.  Stage ``analyse``: :func:`fairprompt.decision_repair.compare_repairs` on those scores: the
best intervention and the trigger's lambda chosen on the choose scenarios, then everything on the held-out ones with
paired scenario-bootstrap CIs, into ``--json``.

Run alone: ``.venv/bin/python benchmarks/bench_llm_repair.py --stages train score analyse --lambdas 0 30 300
--steps 120 --out /tmp/llm_repair --json docs/benchmarks/llm_repair.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import log, peak_mb, write_json


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=["train", "score", "analyse"])
    parser.add_argument("--lambdas", nargs="+", type=float, default=[0.0, 30.0, 300.0])
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--tokens", type=int, default=5)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--variants", default="one_factor", choices=["one_factor", "all"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/llm_repair"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--shared", default="run alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    from fairprompt.decision_audit import PAPER_PROMPT, discrim_eval_rows
    from fairprompt.mitigation.decision_trigger_method.interventions import INTERVENTIONS
    from fairprompt.mitigation.decision_trigger_method.scoring import score_repairs
    from fairprompt.mitigation.decision_trigger_method.training import DecisionTriggerSettings, train_decision_trigger
    from fairprompt.models.causal_lm import FrozenCausalLM

    began_all = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    lm = FrozenCausalLM.load(prompt=PAPER_PROMPT)
    names = {lam: f"trigger_lambda_{lam:g}" for lam in args.lambdas}
    if "train" in args.stages:
        rows, subset = discrim_eval_rows(scenarios="train", variants="all")
        for lam in args.lambdas:
            settings = DecisionTriggerSettings(tokens=args.tokens, lam=lam, steps=args.steps, lr=args.lr)
            log(f"training lambda {lam:g} on {subset['rows']} rows of {len(subset['scenario_ids'])} scenarios")
            trained = train_decision_trigger(lm, rows=rows, settings=settings)
            torch.save(trained.trigger, args.out / f"{names[lam]}.pt")
            (args.out / f"{names[lam]}.json").write_text(json.dumps(trained.to_dict()))
            log(f"  {trained.seconds:.0f} s, {len(trained.losses)} steps, stopped by {trained.stopped}")
    if "score" in args.stages:
        triggers = {names[lam]: torch.load(args.out / f"{names[lam]}.pt") for lam in args.lambdas}
        record = {}
        for part in ("choose", "held_out"):
            rows, subset = discrim_eval_rows(scenarios=part, variants=args.variants)
            began = time.perf_counter()
            scores = score_repairs(lm, texts=rows["text"].tolist(), interventions=list(INTERVENTIONS.values()),
                                   triggers=triggers)
            record[part] = {"subset": subset, "seconds": time.perf_counter() - began,
                            "rows": rows.drop(columns="text").to_dict(orient="list"),
                            "scores": {k: v.tolist() for k, v in scores.items()}}
            log(f"scored {part}: {len(rows)} rows x {len(scores)} repairs in {record[part]['seconds']:.0f} s")
        (args.out / "scores.json").write_text(json.dumps(record))
    if "analyse" in args.stages:
        from fairprompt.decision_repair import compare_repairs_from_record

        record = json.loads((args.out / "scores.json").read_text())
        trainings = {names[lam]: json.loads((args.out / f"{names[lam]}.json").read_text()) for lam in args.lambdas}
        result = compare_repairs_from_record(record, trainings=trainings)
        result |= {"benchmark": "llm_repair", "shared": args.shared, "peak_rss_mb": peak_mb()}
        if args.json:
            write_json(result, args.json, start=began_all)
        log(json.dumps(result.get("summary"), indent=1))


if __name__ == "__main__":
    main()
