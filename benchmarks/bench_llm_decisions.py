"""The causal LM's decision path against a bare batched forward of the same prompts, and a discrim-eval audit.

Model: the embedded SmolLM2-135M-Instruct (Q4_1 dequantised, float32), the paper's protocol
(:data:`fairprompt.decision_audit.PAPER_PROMPT`).  Prompts: a discrim-eval subset (default the 20 held-out scenarios x
the 15 one-factor variants, 300 prompts, what ``audits/llm_decisions.yaml`` audits).

Timed, alternating, ``--repeats`` times each, median reported:
- fairprompt: ``FrozenCausalLM.scores(texts, batch_size)``: chat template, tokenise, length-sorted left-padded batches,
  ``inputs_embeds`` with position ids from the mask, the verbalizer's log-odds.
- bare: the same prompts tokenised beforehand, the same batches (same rows, same padding), fed to
  ``model(input_ids, attention_mask, position_ids)`` in a plain loop under ``torch.inference_mode``, keeping only the
  last position's logits: a lower bound (no templating, no tokenisation, no verbalizer).
The ratio fairprompt / bare is the overhead (target at most 1.15x); throughput in prompts/s and tokens/s.  Then the
whole discrim-eval audit of the subset (``discrim_eval_audit``: both wordings, 1,000 scenario resamples) once, with its
discrimination scores.

Run: ``.venv/bin/python benchmarks/bench_llm_decisions.py [--scenarios held_out] [--repeats 2]
[--json docs/benchmarks/llm_decisions.json] [--shared "..."]``.  The whole data set, the audit alone under the paper's
wording: ``--scenarios all --variants all --audit-only --wordings paper --json docs/benchmarks/llm_decisions_full.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from common import log, peak_mb, write_json


def _bare(lm, encoded: list[list[int]], order: np.ndarray, batch_size: int) -> np.ndarray:
    """The same left-padded batches through the base model; the last position's log-softmax of the first answers."""
    yes, no = lm.favourable_ids[0][0], lm.unfavourable_ids[0][0]
    out = np.empty(len(encoded))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            rows = [encoded[i] for i in chunk]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), lm.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, r in enumerate(rows):
                ids[j, width - len(r):] = torch.tensor(r)
                mask[j, width - len(r):] = 1
            positions = (mask.cumsum(1) - 1).clamp(min=0)
            logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]
            logp = torch.log_softmax(logits.float(), dim=-1)
            out[chunk] = (logp[:, yes] - logp[:, no]).numpy()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="held_out", choices=["train", "choose", "held_out", "all"])
    parser.add_argument("--variants", default="one_factor", choices=["one_factor", "all"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--audit-only", action="store_true",
                        help="skip the timed comparison with a bare forward; only the audit (the full-data-set run)")
    parser.add_argument("--wordings", default="both", choices=["both", "paper"],
                        help="score the alternative wording too (both), or only the paper's (half the cost)")
    parser.add_argument("--max-scenarios", type=int, default=None, help="the first N scenarios of the part (smoke runs)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--shared", default="nothing noted", help="what shared the cores during the run")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    from fairprompt.decision_audit import PAPER_PROMPT, discrim_eval_audit, discrim_eval_rows
    from fairprompt.models.causal_lm import FrozenCausalLM

    t = time.perf_counter()
    lm = FrozenCausalLM.load(prompt=PAPER_PROMPT)
    load_seconds = time.perf_counter() - t
    rows, subset = discrim_eval_rows(scenarios=args.scenarios, variants=args.variants,
                                     max_scenarios=args.max_scenarios)
    texts = rows["text"].tolist()
    encoded = lm.encode(texts)
    order = np.argsort([len(r) for r in encoded], kind="stable")
    tokens = int(sum(len(r) for r in encoded))
    log(f"{len(texts)} prompts, {tokens:,} tokens (mean {tokens / len(texts):.0f}); model loaded in {load_seconds:.1f} s")

    timings: dict[str, list[float]] = {"fairprompt": [], "bare": []}
    results: dict[str, np.ndarray] = {}
    for repeat in range(0 if args.audit_only else args.repeats):
        for name in ("fairprompt", "bare"):
            t = time.perf_counter()
            results[name] = (lm.scores(texts, batch_size=args.batch_size) if name == "fairprompt"
                             else _bare(lm, encoded, order, args.batch_size))
            timings[name].append(time.perf_counter() - t)
            log(f"repeat {repeat + 1}: {name} {timings[name][-1]:.1f} s")
    median = {k: statistics.median(v) for k, v in timings.items() if v}
    agreement = ratio = None
    if not args.audit_only:
        agreement = float(np.abs(results["fairprompt"] - results["bare"]).max())  # yes/no vs Yes/No summed: differs
        ratio = median["fairprompt"] / median["bare"]
        log(f"overhead fairprompt / bare: {ratio:.3f}x ({median['fairprompt']:.1f} s vs {median['bare']:.1f} s)")

    t = time.perf_counter()
    audit = discrim_eval_audit(lm, scenarios=args.scenarios, variants=args.variants, max_scenarios=args.max_scenarios,
                               batch_size=args.batch_size, **({"alternative": None} if args.wordings == "paper" else {}))
    audit_seconds = time.perf_counter() - t
    log(f"discrim-eval audit ({args.wordings} wording(s)): {audit_seconds:.1f} s; resolved: {audit.resolved() or 'none'}")
    out = {
        "benchmark": "llm_decisions", "model": lm.describe(), "subset": subset, "prompts": len(texts), "tokens": tokens,
        "batch_size": args.batch_size, "repeats": args.repeats, "load_seconds": load_seconds,
        "seconds": timings, "median_seconds": median, "overhead_ratio": ratio,
        "prompts_per_second": {k: len(texts) / v for k, v in median.items()},
        "tokens_per_second": {k: tokens / v for k, v in median.items()},
        "largest_score_difference_vs_bare_single_variant": agreement,
        "audit_only": args.audit_only, "wordings": args.wordings, "audit_seconds": audit_seconds,
        "audit_prompts_per_second": len(texts) * (2 if args.wordings == "both" else 1) / audit_seconds, "audit": audit.to_dict(),
        "host": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": "cpu",
                 "shared": args.shared, "peak_rss_mb_before_audit": peak_mb()},
    }
    write_json(out, args.json, start=start)


if __name__ == "__main__":
    main()
