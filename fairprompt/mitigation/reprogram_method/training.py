"""Training one fairness trigger at one lambda: task loss plus the fairness term (surrogate penalty, or the
adversary's loss, optionally with the projected gradient) and, when asked, the rate anchor; a loss or gradient
that is not finite stops the run at the trigger's last good value."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairprompt.mitigation.reprogram_method.config import ReprogramConfig
from fairprompt.mitigation.reprogram_method.objective import Adversary, adversary_features, surrogate_gap
from fairprompt.mitigation.reprogram_method.triggers import HardTrigger, Target
from fairprompt.models.training import Progress, shuffled_batches


def _snapshot(module: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _restore(module: nn.Module, values: Sequence[Tensor]) -> None:
    with torch.no_grad():
        for p, v in zip(module.parameters(), values):
            p.copy_(v)


def _finite(*tensors: Tensor | None) -> bool:
    return all(t is None or bool(torch.isfinite(t).all()) for t in tensors)


def _task_loss(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.float(), labels)


def train_trigger(target: Target, *, rows: Any, codes: np.ndarray, n_groups: int, lam: float, config: ReprogramConfig,
                   kind: str, progress: Progress | None, label: str, threshold: float = 0.5,
                   reference: np.ndarray | None = None,
                   counterfactual_rows: Any = None) -> tuple[list[dict[str, float]], str | None]:
    """Train ``target.trigger`` for ``config.epochs`` epochs at ``lam``; returns the history and a divergence message.

    ``reference`` (needed when ``config.anchor > 0``): the untriggered model's P(favourable) of every row; the rate
    anchor adds ``anchor * (mean_batch p - mean_batch reference)^2`` to the fairness term (so it is weighed by
    ``lam`` too, and the lambda = 0 control trains on the task loss alone).  ``counterfactual_rows`` (needed when
    ``config.counterfactual > 0``): ``rows`` with their identity phrases swapped, row for row; the counterfactual
    term adds ``counterfactual * mean_batch (p - p_swapped)^2`` to the fairness term."""
    if config.anchor > 0 and reference is None:
        raise ValueError("reprogram.anchor > 0 needs the untriggered model's probabilities (reference)")
    if config.counterfactual > 0 and (counterfactual_rows is None or len(counterfactual_rows) != len(rows)):
        raise ValueError("reprogram.counterfactual > 0 needs the swapped rows, one per training row")
    reference_t = None if reference is None else torch.as_tensor(np.asarray(reference), dtype=torch.float32)
    params = [p for p in target.trigger.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.learning_rate(kind))
    adversary = adversary_optimizer = None
    if config.objective == "adversary":
        width = 2 if config.measure == "demographic_parity" else 2 + 2 + 4
        torch.manual_seed(config.seed)
        adversary = Adversary(inputs=width, hidden=config.adversary_hidden, groups=n_groups)
        adversary_optimizer = torch.optim.Adam(adversary.parameters(), lr=config.adversary_lr)
    codes_t = torch.as_tensor(codes, dtype=torch.long)
    threshold_logit = math.log(threshold / (1.0 - threshold))
    rng = np.random.default_rng(config.seed)
    lengths = rows.lengths()
    history: list[dict[str, float]] = []
    good = _snapshot(target.trigger)
    target.model.train()
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        batches = shuffled_batches(len(rows), config.batch_size, generator=rng, lengths=lengths)
        task_sum = fair_sum = 0.0
        for step, index in enumerate(batches):
            batch = rows.collate(index)
            labels, group = batch["labels"], codes_t[batch["index"]]
            logits = target.forward(target.model, batch).float()
            task = _task_loss(logits, labels)
            probabilities = torch.softmax(logits, dim=1)
            if adversary is not None:
                features = adversary_features(probabilities, labels, measure=config.measure)
                adversary_loss = F.cross_entropy(adversary(features.detach()), group)
                adversary_optimizer.zero_grad(set_to_none=True)
                adversary_loss.backward()
                adversary_optimizer.step()
                fairness = F.cross_entropy(adversary(features), group)
                if config.projection:
                    g_task = torch.autograd.grad(task, params, retain_graph=True)
                    g_adv = torch.autograd.grad(fairness, params)
                    flat_t = torch.cat([g.reshape(-1) for g in g_task])
                    flat_a = torch.cat([g.reshape(-1) for g in g_adv])
                    along = (flat_t @ flat_a) / flat_a.pow(2).sum().clamp_min(1e-20) * flat_a
                    direction = flat_t - along - lam * flat_a
                    objective = task.detach() - lam * fairness.detach()
                    offset = 0
                    for p in params:
                        p.grad = direction[offset:offset + p.numel()].view_as(p).clone()
                        offset += p.numel()
                else:
                    objective = task - lam * fairness
            else:
                soft_decision = torch.sigmoid((logits[:, 1] - logits[:, 0] - threshold_logit) / config.temperature)
                fairness = surrogate_gap(soft_decision, labels=labels, codes=group, n_groups=n_groups,
                                         measure=config.measure).pow(2)
                if config.anchor > 0 and reference_t is not None:
                    shift = probabilities[:, 1].mean() - reference_t[batch["index"]].mean()
                    fairness = fairness + config.anchor * shift.pow(2)
                if config.counterfactual > 0 and lam > 0:  # the control (lambda 0) would weigh it by 0: skip it
                    swapped = torch.softmax(target.forward(target.model, counterfactual_rows.collate(index)).float(), 1)
                    fairness = fairness + config.counterfactual * (probabilities[:, 1] - swapped[:, 1]).pow(2).mean()
                objective = task + lam * fairness
            if not config.projection:
                optimizer.zero_grad(set_to_none=True)
                if objective.requires_grad:
                    objective.backward()
            if not (_finite(objective) and _finite(*[p.grad for p in params])):
                _restore(target.trigger, good)
                target.model.eval()
                return history, (f"lambda {lam:g}: the loss became {float(objective.detach()):.4g} (not finite) "
                                 f"at epoch {epoch}, "
                                 f"step {step + 1}; training stopped and the trigger keeps its last good value "
                                 "(try a smaller reprogram.lr)")
            optimizer.step()
            if isinstance(target.trigger, HardTrigger):
                target.trigger.project()
            good = _snapshot(target.trigger)
            task_sum += float(task.detach())
            fair_sum += float(fairness.detach())
            if progress:
                progress(f"{label} (epoch {epoch})", step + 1, len(batches))
        history.append({"epoch": epoch, "task_loss": task_sum / len(batches), "fairness_loss": fair_sum / len(batches),
                        "seconds": time.perf_counter() - start})
    target.model.eval()
    return history, None


__all__ = ["train_trigger"]
