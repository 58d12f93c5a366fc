"""Training trainable prompts (and heads) on a frozen model, and batched prediction, through Accelerate.

Both go through Hugging Face Accelerate, so the same code runs on one CPU, one
GPU, or several processes started by ``accelerate launch`` / ``torchrun``
(torch.distributed underneath): batches are sharded across processes and
predictions gathered back in the original row order.

The stopping rule is stated and recorded: training stops when the validation
loss has not improved by more than ``min_delta`` for ``patience`` epochs
(default 3), or after ``max_epochs``; the parameters of the best validation
epoch are restored.  The history records per-epoch losses, the mean per-batch
gradient norm, and the norm of the full-training-set mean gradient at the
returned parameters (the convergence check reported as the "final mean
gradient norm").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

LOG = logging.getLogger("fairprompt")

Progress = Callable[[str, int, int], None]
Batch = dict[str, torch.Tensor]


class BatchSource(Protocol):
    """Rows that can be cut into batches: ``len`` and ``collate(indices) -> Batch``.

    A batch holds the model inputs plus ``labels`` (long), ``weights`` (float)
    and ``index`` (long, the row numbers).
    """

    def __len__(self) -> int: ...

    def collate(self, indices: Sequence[int]) -> Batch: ...

    def lengths(self) -> np.ndarray: ...


@dataclass(frozen=True)
class TrainConfig:
    """How a prompt (and head) is trained."""

    max_epochs: int = 20
    patience: int = 3
    min_delta: float = 1e-4
    batch_size: int = 32
    lr: float = 3e-2
    head_lr: float | None = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1:
            raise ValueError("max_epochs, patience and batch_size must be at least 1")
        if self.lr <= 0 or (self.head_lr is not None and self.head_lr <= 0):
            raise ValueError("learning rates must be positive")


@dataclass
class TrainHistory:
    """What happened during training (recorded in results.json)."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped_by: Literal["patience", "max_epochs"] = "max_epochs"
    stopping_rule: str = ""
    best_epoch: int = 0
    best_val_loss: float = math.inf
    final_mean_gradient_norm: float = math.nan
    seconds: float = 0.0
    train_rows: int = 0
    validation_rows: int = 0
    world_size: int = 1
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RowIndex(torch.utils.data.Dataset):
    """Row ``i`` is just ``i``; the source's ``collate`` turns a batch of row numbers into tensors."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def _loader(source: BatchSource, batches: list[list[int]]) -> torch.utils.data.DataLoader:
    """The pre-cut batches as a ``batch_sampler``, which Accelerate shards across processes (whole batches)."""
    return torch.utils.data.DataLoader(_RowIndex(len(source)), batch_sampler=batches, collate_fn=source.collate)


def _prepare_unpadded(accelerator, loader: torch.utils.data.DataLoader) -> torch.utils.data.DataLoader:
    """Shard for evaluation/prediction: each batch on exactly one process, none repeated to even the shards.

    (Accelerate's default ``even_batches`` repeats the first batches on processes that run short; right for
    lock-step DDP training, wrong for sums and predictions.)  The callers run no collective per batch, so
    processes may hold different numbers of batches, and combine their results once at the end.
    """
    even = accelerator.even_batches
    accelerator.even_batches = False
    try:
        return accelerator.prepare(loader)
    finally:
        accelerator.even_batches = even


def length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[list[int]]:
    """Row indices cut into batches of similar length (longest first), for padding-light inference."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size].tolist() for i in range(0, order.size, batch_size)]


def shuffled_batches(n: int, batch_size: int, *, generator: np.random.Generator,
                     lengths: np.ndarray | None = None) -> list[list[int]]:
    """Seeded random batches; with ``lengths``, rows are bucketed by length within chunks of 50 batches."""
    order = generator.permutation(n)
    if lengths is not None:
        chunk = batch_size * 50
        parts = [order[i:i + chunk] for i in range(0, n, chunk)]
        order = np.concatenate([p[np.argsort(-lengths[p], kind="stable")] for p in parts])
    batches = [order[i:i + batch_size].tolist() for i in range(0, n, batch_size)]
    return [batches[i] for i in generator.permutation(len(batches))]


def make_accelerator():
    """The Accelerate accelerator every training and prediction loop runs under (CPU unless CUDA is there)."""
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())


def _loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    per_row = nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="none")
    return (per_row * batch["weights"]).mean()


def _grad_norm(params: Sequence[nn.Parameter]) -> float:
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(p.grad.detach().float().pow(2).sum())
    return math.sqrt(total)


def train(
    *,
    model: nn.Module,
    forward: Callable[[nn.Module, Batch], torch.Tensor],
    param_groups: Sequence[dict[str, Any]],
    train_data: BatchSource,
    validation_data: BatchSource,
    config: TrainConfig,
    progress: Progress | None = None,
    description: str = "training the task prompt",
) -> TrainHistory:
    """Train the parameters in ``param_groups`` (everything else in ``model`` stays frozen).

    ``forward(model, batch) -> logits``.  Loss: the mean of weight x
    cross-entropy over a batch (weights come with the data, all 1 unless a
    mitigation re-weights rows).
    """
    accelerator = make_accelerator()
    params = [p for group in param_groups for p in group["params"]]
    for p in params:
        if not p.requires_grad:
            raise ValueError("every trained parameter must have requires_grad=True")
    optimizer = torch.optim.AdamW(param_groups, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    model, optimizer = accelerator.prepare(model, optimizer)
    validation_loader = _prepare_unpadded(
        accelerator, _loader(validation_data, length_sorted_batches(validation_data.lengths(), config.batch_size * 2)))
    history = TrainHistory(
        stopping_rule=f"validation loss not improved by more than {config.min_delta:g} for {config.patience} epochs, "
        f"or {config.max_epochs} epochs; the best validation epoch's parameters are kept",
        train_rows=len(train_data), validation_rows=len(validation_data), world_size=accelerator.num_processes,
    )
    best_state = [p.detach().clone() for p in params]
    start = time.perf_counter()
    stale = 0
    lengths = train_data.lengths()
    for epoch in range(1, config.max_epochs + 1):
        batches = shuffled_batches(len(train_data), config.batch_size, generator=rng, lengths=lengths)
        loader = accelerator.prepare(_loader(train_data, batches))
        model.train()
        losses, norms = [], []
        epoch_start = time.perf_counter()
        for step, batch in enumerate(loader):
            loss = _loss(forward(model, batch), batch)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            norms.append(_grad_norm(params))
            if config.grad_clip is not None:
                accelerator.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress:
                progress(f"{description} (epoch {epoch})", step + 1, len(loader))
        val_loss, val_accuracy, val_positive = _evaluate(accelerator, model, forward, validation_loader)
        train_loss = float(accelerator.reduce(torch.tensor(np.mean(losses), device=accelerator.device), "mean"))
        history.epochs.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                               "val_accuracy": val_accuracy, "val_positive_share": val_positive,
                               "mean_batch_grad_norm": float(np.mean(norms)),
                               "seconds": time.perf_counter() - epoch_start})
        if val_loss < history.best_val_loss - config.min_delta:
            history.best_val_loss, history.best_epoch, stale = val_loss, epoch, 0
            best_state = [p.detach().clone() for p in params]
        else:
            stale += 1
            if stale >= config.patience:
                history.stopped_by = "patience"
                break
    with torch.no_grad():
        for p, best in zip(params, best_state):
            p.copy_(best)
    history.final_mean_gradient_norm = mean_gradient_norm(
        accelerator=accelerator, model=model, forward=forward, params=params, data=train_data, batch_size=config.batch_size * 2,
        progress=progress,
    )
    history.seconds = time.perf_counter() - start
    warning = constant_predictor_warning(history)
    if warning is not None:
        history.warnings.append(warning)
        LOG.warning(warning)
    model.eval()
    return history


def constant_predictor_warning(history: TrainHistory) -> str | None:
    """What to say when the kept (best validation) epoch predicts one class for every validation row, else None."""
    best = next((e for e in history.epochs if e.get("epoch") == history.best_epoch), None)
    share = None if best is None else best.get("val_positive_share")
    if share is None or 0.0 < share < 1.0:
        return None
    decision = "positive (class 1)" if share >= 1.0 else "negative (class 0)"
    return (f"training ended in a constant predictor: at its kept epoch {history.best_epoch} every one of the "
            f"{history.validation_rows:,} validation rows is predicted {decision}. Check the class balance of the "
            "training rows (a rare class is easiest to ignore), give more training rows, try another learning rate "
            "(too high collapses, too low never leaves the start) or more epochs; the audit will mark the model "
            "degenerate")


def _evaluate(accelerator, model: nn.Module, forward, loader) -> tuple[float, float, float]:
    """Weighted mean loss and accuracy, and the share of rows (unweighted) predicted class 1."""
    model = accelerator.unwrap_model(model)  # no DDP: shards may differ in length; one reduce at the end
    model.eval()
    # loss sum, correct, weight sum, rows predicted 1, rows
    total = torch.zeros(5, dtype=torch.float64, device=accelerator.device)
    with torch.inference_mode():
        for batch in loader:
            logits = forward(model, batch).float()
            per_row = nn.functional.cross_entropy(logits, batch["labels"], reduction="none") * batch["weights"]
            decision = logits.argmax(-1)
            correct = (decision == batch["labels"]).double()
            total += torch.stack([per_row.double().sum(), correct.sum(), batch["weights"].double().sum(),
                                  (decision == 1).double().sum(), torch.tensor(float(decision.numel()), dtype=torch.float64,
                                                                              device=accelerator.device)])
    total = accelerator.reduce(total, "sum")
    weight = max(float(total[2]), 1e-12)
    return float(total[0]) / weight, float(total[1]) / weight, float(total[3]) / max(float(total[4]), 1.0)


def mean_gradient_norm(*, accelerator, model: nn.Module, forward, params: Sequence[nn.Parameter], data: BatchSource,
                       batch_size: int, progress: Progress | None = None) -> float:
    """Norm of the gradient of the training objective (mean weighted loss over all rows) at the current parameters."""
    model = accelerator.unwrap_model(model)  # no DDP: local gradient sums over this shard, one reduce at the end
    model.eval()  # no dropout: the gradient of the objective itself
    loader = _prepare_unpadded(accelerator, _loader(data, length_sorted_batches(data.lengths(), batch_size)))
    sums = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    n = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    for step, batch in enumerate(loader):
        logits = forward(model, batch)
        per_row = nn.functional.cross_entropy(logits.float(), batch["labels"], reduction="none") * batch["weights"]
        grads = torch.autograd.grad(per_row.sum(), params, allow_unused=True)
        for s, g in zip(sums, grads):
            if g is not None:
                s += g.double()
        n += batch["labels"].numel()
        if progress:
            progress("checking convergence (full gradient)", step + 1, len(loader))
    total = accelerator.reduce(torch.cat([s.reshape(-1) for s in sums]), "sum")
    n = accelerator.reduce(n, "sum")
    return float(total.norm() / n)


def predict_logits(
    *,
    model: nn.Module,
    forward: Callable[[nn.Module, Batch], torch.Tensor],
    data: BatchSource,
    batch_size: int = 64,
    progress: Progress | None = None,
    description: str = "predicting",
    shard_log: list[int] | None = None,
) -> np.ndarray:
    """Logits for every row of ``data``, in row order, batched by length under ``torch.inference_mode``.

    Under several processes each process predicts its own batches (no batch is
    repeated to even the shards) and the (row index, logits) pairs are gathered
    once at the end; every process returns the full array.  ``shard_log``,
    when given, receives the row indices this process predicted.
    """
    from accelerate.utils import gather_object

    accelerator = make_accelerator()
    loader = _prepare_unpadded(accelerator, _loader(data, length_sorted_batches(data.lengths(), batch_size)))
    model = model.to(accelerator.device)
    model.eval()
    outputs, indices = [], []
    with torch.inference_mode():
        for step, batch in enumerate(loader):
            logits = forward(model, batch).float()
            if shard_log is not None:
                shard_log.extend(batch["index"].tolist())
            indices.append(batch["index"].cpu().numpy())
            outputs.append(logits.cpu().numpy())
            if progress:
                progress(description, step + 1, len(loader))
    local = [(np.concatenate(indices), np.concatenate(outputs))] if outputs else []
    parts = gather_object(local) if accelerator.num_processes > 1 else local  # shards differ in size: objects
    if not parts:
        return np.zeros((0, 0), dtype=np.float32)
    index = np.concatenate([i for i, _ in parts])
    logits = np.concatenate([x for _, x in parts])
    if index.size != len(data) or np.unique(index).size != len(data):
        raise RuntimeError(f"prediction gathered {np.unique(index).size} distinct of {len(data)} rows "
                           f"({index.size} predictions from {accelerator.num_processes} processes)")
    result = np.empty_like(logits)
    result[index] = logits
    return result
