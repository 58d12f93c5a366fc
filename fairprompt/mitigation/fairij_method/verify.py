""":func:`verify`: does removing the chosen rows move F and U as FairIJ predicted?  Fine-tune the task prompt
and head from theta_hat for a fixed, stated number of epochs with the rows removed, beside a paired control
run (same seed, same batch order, nothing removed), and report predicted against actual changes (removal run
minus control run)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.fairij_method.result import FairIJResult, FairIJVerification
from fairprompt.mitigation.fairij_method.selection import evaluate
from fairprompt.models.training import Progress, TrainConfig, shuffled_batches

if TYPE_CHECKING:
    from fairprompt.models.text import FrozenTextClassifier, TextRows

DEFAULT_VERIFY_TRAINING = TrainConfig(lr=1e-2, head_lr=1e-2, batch_size=32, grad_clip=None)


def fine_tune(model: FrozenTextClassifier, rows: TextRows, weights: np.ndarray, *, epochs: int, config: TrainConfig,
               l2: float) -> int:
    """Fixed-length AdamW fine-tuning of the task prompt and head on ``mean(w CE) + (l2/2)|theta|^2`` (the scored
    objective; removal keeps the 1/n, as the IJ does); the batch order depends on the seed alone."""
    params = model.task_parameters()
    for parameter in params:
        parameter.requires_grad_(True)
    groups = [{"params": [params[0]], "lr": config.lr}, {"params": params[1:], "lr": config.head_lr or config.lr}]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    lengths = rows.lengths()
    device = params[0].device
    w = torch.as_tensor(weights, dtype=torch.float64)
    steps = 0
    model.train()
    for _ in range(epochs):
        for batch_rows in shuffled_batches(len(rows), config.batch_size, generator=rng, lengths=lengths):
            batch = rows.collate(batch_rows)
            logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
            per_row = torch.nn.functional.cross_entropy(logits.float(), batch["labels"].to(device), reduction="none")
            loss = (per_row * w[batch["index"]].to(device, per_row.dtype)).mean()
            if l2:
                loss = loss + 0.5 * l2 * sum((p.float() ** 2).sum() for p in params)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            steps += 1
    model.eval()
    for parameter in params:
        parameter.requires_grad_(False)
    return steps


def verify(
    *,
    model: FrozenTextClassifier,
    train_rows: TextRows,
    validation_rows: TextRows,
    validation_groups: Any,
    result: FairIJResult,
    epochs: int = 3,
    config: TrainConfig | None = None,
    alphas: Sequence[np.ndarray] | None = None,
    batch_size: int = 16,
    progress: Progress | None = None,
) -> FairIJVerification:
    """Fine-tune the task prompt and head from theta_hat for ``epochs`` epochs with rows removed, beside a control.

    Each set in ``alphas`` (default: the chosen one, ``result.alphas``) down-weights rows ``w_i -> w_i (1 - alpha_i)``;
    the control run removes nothing and uses the same seed and batch order, so the actual change is
    (removal run) - (control run) and the optimizer's own drift from theta_hat cancels.  Works on adapter copies;
    ``model`` is not changed.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise FairpromptError(f"fairij verify epochs must be an integer >= 1 but is {epochs!r}; e.g. 3")
    groups = np.asarray(validation_groups, dtype=object).reshape(-1)
    config = config or DEFAULT_VERIFY_TRAINING
    config = replace(config, seed=result.seed)
    sets = [np.asarray(a, dtype=np.float64).reshape(-1) for a in (alphas if alphas is not None else [result.alphas])]
    for a in sets:
        if a.shape[0] != len(train_rows):
            raise FairpromptError(f"a verify set has {a.shape[0]} weights for {len(train_rows)} training rows; pass one per row")
    l2 = float(result.influence.get("l2", 0.0))
    start = time.perf_counter()
    base_weights = np.asarray(train_rows.weights, dtype=np.float64)

    def run(weights: np.ndarray) -> tuple[dict[str, float], int]:
        copy = model.adapter_copy()
        steps = fine_tune(copy, train_rows, weights, epochs=epochs, config=config, l2=l2)
        return evaluate(copy, validation_rows, groups, result.measure, None, batch_size), steps

    baseline = evaluate(model, validation_rows, groups, result.measure, None, batch_size)
    control, steps = run(base_weights)
    checks = []
    for index, a in enumerate(sets):
        after, _ = run(base_weights * (1.0 - a))
        predicted = {"fairness": float(a @ result.influence_fairness), "utility": float(a @ result.influence_utility)}
        checks.append({"rows": int((a > 0).sum()), "weight_removed": float(a.sum()),
                       "predicted_dF": predicted["fairness"], "actual_dF": after["fairness"] - control["fairness"],
                       "predicted_dU": predicted["utility"], "actual_dU": after["utility"] - control["utility"]})
        checks[-1]["ratio_dF"] = (checks[-1]["actual_dF"] / predicted["fairness"]) if predicted["fairness"] else math.nan
        if progress:
            progress("fairij: verifying by paired fine-tuning", index + 1, len(sets))
    pearson = None
    if len(checks) >= 3:
        p = np.array([c["predicted_dF"] for c in checks])
        q = np.array([c["actual_dF"] for c in checks])
        if p.std() > 0 and q.std() > 0:
            pearson = float(np.corrcoef(p, q)[0, 1])
    return FairIJVerification(
        epochs=epochs, steps=steps, config=asdict(config), baseline=baseline, control=control,
        control_drift={k: control[k] - baseline[k] for k in baseline}, checks=checks, pearson_fairness=pearson,
        method=(f"warm-started AdamW fine-tuning of the task prompt and head from theta_hat for {epochs} epochs "
                f"({steps} steps, batch {config.batch_size}, lr {config.lr:g}/{config.head_lr or config.lr:g}, "
                f"l2 {l2:g}), removal = weight 0 with the 1/n kept; actual change = removal run minus a paired "
                "control run (same seed and batch order, nothing removed)"),
        seconds=time.perf_counter() - start,
    )


__all__ = ["DEFAULT_VERIFY_TRAINING", "fine_tune", "verify"]
