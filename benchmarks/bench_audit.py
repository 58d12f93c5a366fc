"""Prediction overhead of fairprompt's audit path against a bare loop of the same forward passes, same run.

Model: the frozen all-MiniLM-L6-v2 encoder with the adult_income task prompt (the shipped or
cached one when present, else an untrained prompt of the same shape: the cost of a forward pass
does not depend on the prompt's values).  Data: N Adult rows (default 2,000) written as text the
way audits/adult_income.yaml does.

Timed, alternating, ``--repeats`` times each, median reported:
- fairprompt: ``model.predict_proba(texts)``, the path ``fairprompt audit`` takes: tokenize,
  length-sorted batches of 64, an Accelerate-prepared DataLoader, ``torch.inference_mode``,
  ``gather_for_metrics``, rows put back in order, softmax.
- bare loop: the same batches (same rows, same padding), tokenized beforehand, fed to the same
  ``model(input_ids, attention_mask)`` in a plain ``for`` loop under ``torch.inference_mode``.
  A lower bound: no tokenization, no data loader, no gathering.
The ratio fairprompt / bare is the overhead (target at most 1.15x).  Also printed: the wall time
of the whole ``fairprompt audit`` of the spec with the test split cut to N rows (cached prompt,
1000 bootstrap resamples, report rendering), and the peak resident memory of this process.

Run: ``.venv/bin/python benchmarks/bench_audit.py [--rows 2000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _model_and_texts(rows: int):
    import yaml

    from fairprompt.models.adapt import find_task_prompt
    from fairprompt.models.text import FrozenTextClassifier
    from fairprompt.spec import parse_spec
    from fairprompt.tasks import load_task

    raw = yaml.safe_load((ROOT / "audits" / "adult_income.yaml").read_text())
    raw["model"]["splits"]["test"] = rows  # the test size does not move the training rows, so the key is unchanged
    spec = parse_spec(raw, source="adult_income.yaml")
    task = load_task(spec)
    key = task.task_prompt_key()
    found = find_task_prompt(key)
    if found is not None:
        model, origin = FrozenTextClassifier.load(found), f"trained task prompt ({found.parent.name}/{key[:12]})"
    else:
        model = FrozenTextClassifier.with_task_prompt(num_virtual_tokens=spec.model.task_prompt.tokens, init="random", seed=0)
        origin = "untrained task prompt of the same shape (no cached prompt found)"
    return model, task.pick(task.splits.test), origin, spec.model.batch_size


def _bare(model, batches) -> np.ndarray:
    outputs = []
    with torch.inference_mode():
        for ids, mask in batches:
            outputs.append(model(input_ids=ids, attention_mask=mask))
    return torch.cat(outputs).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-cli", action="store_true", help="do not time the whole fairprompt audit")
    args = parser.parse_args()
    from fairprompt.models.training import length_sorted_batches

    model, texts, origin, batch_size = _model_and_texts(args.rows)
    model.eval()
    rows = model.encode(texts)
    batches = []
    for indices in length_sorted_batches(rows.lengths(), batch_size):
        b = rows.collate(indices)
        batches.append((b["input_ids"], b["attention_mask"]))
    print(f"model: frozen all-MiniLM-L6-v2 + {origin}")
    print(f"rows: {len(texts):,}, batches of {batch_size}, mean tokens {rows.lengths().mean():.1f}, "
          f"torch threads {torch.get_num_threads()}")
    model.predict_proba(texts[:batch_size], batch_size=batch_size)  # warm-up (threads, allocator)
    ours, bare = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        probs = model.predict_proba(texts, batch_size=batch_size)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        logits = _bare(model, batches)
        bare.append(time.perf_counter() - start)
    order = np.concatenate([np.asarray(i) for i in length_sorted_batches(rows.lengths(), batch_size)])
    reference = torch.softmax(torch.from_numpy(logits), -1).numpy()
    diff = float(np.abs(probs[order] - reference).max())
    t_ours, t_bare = statistics.median(ours), statistics.median(bare)
    print(f"fairprompt predict_proba: {t_ours:7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"bare forward loop:        {t_bare:7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in bare)})")
    print(f"overhead ratio: {t_ours / t_bare:.3f}x (target <= 1.15x); max |prob difference| {diff:.2e}")
    print(f"throughput: {len(texts) / t_ours:.0f} rows/s (fairprompt), {len(texts) / t_bare:.0f} rows/s (bare)")
    if not args.skip_cli:
        import yaml

        raw = yaml.safe_load((ROOT / "audits" / "adult_income.yaml").read_text())
        raw["model"]["splits"]["test"] = args.rows
        with tempfile.TemporaryDirectory() as scratch:
            spec_path = Path(scratch) / "adult_income.yaml"
            spec_path.write_text(yaml.safe_dump(raw))
            from fairprompt import pipeline
            from fairprompt.spec import load_spec

            start = time.perf_counter()
            result = pipeline.run(load_spec(spec_path), out_dir=Path(scratch) / "out")
            wall = time.perf_counter() - start
        print(f"whole `fairprompt audit` of adult_income with {args.rows:,} test rows "
              f"(prompt from {result.results['model']['training']['source']}, 1000 resamples, report): {wall:.1f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MB")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
