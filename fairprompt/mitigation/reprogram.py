r"""FairReprogram: a learned fairness trigger appended to every input of a frozen model.

Fairness reprogramming (Zhang et al., NeurIPS 2022) keeps the trained model completely fixed (backbone,
task prompt and head) and learns a small input-side trigger that removes group information from its
decisions.  :func:`reprogram` trains one trigger per lambda on a grid, returns the Pareto front of
accuracy against the chosen gap on the selection rows, and picks the operating point by a stated rule.

Triggers
--------
``soft`` (text)
    ``tokens`` continuous vectors (:class:`~fairprompt.prompts.SoftPrompt`, ``position="append"``): after the
    input's last real token, before the closing ``[SEP]``; the task prompt is still prepended.
``hard`` (text)
    ``tokens`` real vocabulary words, learned through a simplex-projected selector over the embedding
    matrix with a straight-through estimator: the forward pass inserts the embeddings of the selector's
    argmax words, the backward pass sends the embedding gradient to the selector (``grad @ E^T``), and
    after each step the selector's rows are projected back onto the probability simplex.  Candidate words
    are whole-word vocabulary entries (no special, ``[unused]`` or ``##`` tokens).  The trained trigger is
    those words; it is saved as a soft prompt holding their embedding rows, which is the same input.
``border`` (image)
    :class:`~fairprompt.prompts.PixelBorder`: the image is resized into the centre and a learned frame of
    ``width`` pixels fills the margin.
``patch`` (image)
    :class:`~fairprompt.prompts.PixelPatch`: a learned ``patch_size`` square overwrites one corner.
Pixel values stay in [0, 1] (sigmoid of logits).

Objective (``measure`` is ``demographic_parity`` or ``equalized_odds``)
-----------------------------------------------------------------------
``objective="adversary"``: min over the trigger, max over an adversary, of
``CE(task) - lambda * CE(adversary)``.  The adversary (a one-hidden-layer MLP, categorical over the
groups) predicts the group from the model's output probabilities (demographic parity) or from the
probabilities, the one-hot true label and their products (equalized odds).  Updates alternate: one
adversary step on the detached outputs, then one trigger step.  ``projection=True`` replaces the
trigger step by the gradient projection of Zhang, Lemoine and Mitchell (2018):
``g_task - proj_{g_adv}(g_task) - lambda * g_adv``.
``objective="surrogate"`` (the default; no adversary, often more stable): ``CE(task) + lambda * gap^2``,
where ``gap`` is the batch's differentiable gap on the soft decision
``d = sigmoid((z - logit(threshold)) / temperature)`` (``z`` the logit margin; with ``temperature = 1``
and threshold 0.5, ``d`` is the favourable probability; a smaller temperature brings ``d`` closer to the
thresholded decision the audit measures, so rows far from the threshold are left alone): the largest
minus the smallest group mean of ``d`` (demographic parity), or the sum of those gaps within each true
label (equalized odds: the true- and false-positive-rate gaps).

Selection
---------
Each lambda trains a fresh trigger (same seed, same initial value, same batch order) for ``epochs``
epochs on the tuning rows.  ``lambda = 0`` is the control: a trigger trained on the task loss alone,
so gains that come from the trigger's extra capacity are not counted as fairness.  Every trigger and
the untriggered model are evaluated on the selection rows (validation accuracy and the between-groups
gap: demographic parity difference, or equalized odds difference as fairlearn defines it).  The
operating point is the lambda > 0 with the smallest selection gap among those whose selection accuracy
is at most ``max_accuracy_drop`` below the untriggered model's (ties go to the smaller lambda).  When no
lambda > 0 qualifies, no fairness trigger is deployed: the most accurate point of the whole grid is
taken (usually the lambda = 0 control, which leaves accuracy where it was), ``rule_met`` is False and a
warning says so, rather than shipping a trigger that breaks the accuracy budget.
The test split is never seen here.

``tuning_split="train"`` (default) trains triggers on the training split and selects on the validation
split; ``"validation"`` trains on a seeded half of the validation split (stratified by group and label)
and selects on the other half, for tasks whose training split carries the very correlation the trigger
should remove (colored_digits).

A loss or gradient that is not finite stops that lambda's training with a message in
:attr:`ReprogramResult.warnings`; the trigger keeps its last good value.

The input model is never changed: text triggers go on :meth:`FrozenTextClassifier.adapter_copy`
(the same frozen backbone, copies of the task prompt and head, all non-trainable), image triggers on
:meth:`FrozenImageClassifier.with_prompts` (the same frozen backbone).  Only the trigger trains.
"""

from __future__ import annotations

import base64
import copy
import io
import math
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairprompt.errors import FairpromptError
from fairprompt.models.training import Progress, length_sorted_batches, predict_logits, shuffled_batches

TriggerKind = Literal["soft", "hard", "border", "patch"]
Objective = Literal["adversary", "surrogate"]
Measure = Literal["demographic_parity", "equalized_odds"]
TuningSplit = Literal["train", "validation"]
TEXT_TRIGGERS: tuple[str, ...] = ("soft", "hard")
IMAGE_TRIGGERS: tuple[str, ...] = ("border", "patch")
TRIGGERS: tuple[str, ...] = (*TEXT_TRIGGERS, *IMAGE_TRIGGERS)
OBJECTIVES: tuple[str, ...] = ("adversary", "surrogate")
MEASURES: tuple[str, ...] = ("demographic_parity", "equalized_odds")
DEFAULT_LR: dict[str, float] = {"soft": 0.03, "hard": 0.05, "border": 0.1, "patch": 0.1}
TRIGGER_STEM = "trigger"
RECORD_FILE = "reprogram.json"
RULE = ("the lambda > 0 with the smallest selection-split gap among those whose selection accuracy is at most "
        "max_accuracy_drop below the untriggered model's (ties: the smaller lambda); if none qualifies, the most "
        "accurate lambda of the grid, usually the lambda = 0 control (rule_met: false)")


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class ReprogramConfig:
    """How a fairness trigger is trained and chosen (see the module docstring)."""

    trigger: TriggerKind | None = None          # None: soft for text models, border for image models
    tokens: int = 5                              # soft / hard: trigger length
    width: int = 4                               # border: frame width in pixels
    patch_size: int = 8                          # patch: side of the square
    corner: str = "bottom_right"                 # patch: where it goes
    measure: Measure = "demographic_parity"
    objective: Objective = "surrogate"
    projection: bool = False                     # adversary only: Zhang et al. (2018) gradient projection
    lambdas: tuple[float, ...] = (0.0, 1.0, 4.0, 16.0)
    max_accuracy_drop: float = 0.02              # the operating-point rule's accuracy budget (selection split)
    epochs: int = 3
    batch_size: int = 64
    lr: float | None = None                      # None: DEFAULT_LR for the trigger kind
    adversary_lr: float = 1e-2
    adversary_hidden: int = 32
    temperature: float = 1.0                     # surrogate: the gap is on sigmoid((margin - threshold logit) / T)
    tuning_split: TuningSplit = "train"
    max_rows: int | None = None                  # at most this many tuning rows (seeded, stratified subsample)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trigger is not None and self.trigger not in TRIGGERS:
            raise FairpromptError(f"reprogram.trigger is {self.trigger!r}; use one of {', '.join(TRIGGERS)}")
        if self.measure not in MEASURES:
            raise FairpromptError(f"reprogram.measure is {self.measure!r}; use demographic_parity or equalized_odds")
        if self.objective not in OBJECTIVES:
            raise FairpromptError(f"reprogram.objective is {self.objective!r}; use adversary or surrogate")
        if self.projection and self.objective != "adversary":
            raise FairpromptError("reprogram.projection needs objective: adversary (it projects the adversary's gradient)")
        check_lambdas(self.lambdas)
        for key in ("tokens", "width", "patch_size", "epochs", "batch_size", "adversary_hidden"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FairpromptError(f"reprogram.{key} must be an integer >= 1 but is {value!r}")
        if self.max_rows is not None and (not isinstance(self.max_rows, int) or self.max_rows < 10):
            raise FairpromptError(f"reprogram.max_rows must be an integer >= 10 or null but is {self.max_rows!r}")
        if not 0.0 <= self.max_accuracy_drop <= 1.0:
            raise FairpromptError(f"reprogram.max_accuracy_drop is {self.max_accuracy_drop!r}; use a share in [0, 1] (0.02 = 2 points)")
        for key in ("lr", "adversary_lr", "temperature"):
            value = getattr(self, key)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise FairpromptError(f"reprogram.{key} must be a finite number > 0 but is {value!r}")
        if self.tuning_split not in ("train", "validation"):
            raise FairpromptError(f"reprogram.tuning_split is {self.tuning_split!r}; use train or validation")

    def learning_rate(self, kind: str) -> float:
        return float(self.lr) if self.lr is not None else DEFAULT_LR[kind]


def check_lambdas(lambdas: Sequence[float]) -> None:
    """Refuse an empty lambda grid, or one with a negative or non-finite value."""
    values = list(lambdas)
    if not values:
        raise FairpromptError("reprogram.lambdas is empty; give one or more lambdas >= 0, e.g. [0, 1, 4, 16] "
                              "(0 is the control)")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise FairpromptError(f"reprogram.lambdas holds {value!r}; every lambda must be a finite number >= 0")


# ------------------------------------------------------------------------------------------- hard trigger
def word_candidates(tokenizer: Any) -> np.ndarray:
    """Vocabulary ids of whole words a hard trigger may use: alphabetic, no special/[unused]/## entries."""
    vocab = tokenizer.get_vocab()
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [i for token, i in vocab.items()
           if i not in special and token.isascii() and token.isalpha() and not token.startswith("##")]
    if not ids:
        raise FairpromptError("the tokenizer has no whole-word vocabulary entries for a hard trigger; use trigger: soft")
    return np.asarray(sorted(ids), dtype=np.int64)


def _project_simplex(rows: Tensor) -> Tensor:
    """Euclidean projection of each row onto the probability simplex (Duchi et al. 2008)."""
    sorted_, _ = torch.sort(rows, dim=1, descending=True)
    cumulative = sorted_.cumsum(dim=1) - 1.0
    index = torch.arange(1, rows.shape[1] + 1, device=rows.device, dtype=rows.dtype)
    condition = sorted_ - cumulative / index > 0
    rho = condition.to(rows.dtype).cumsum(dim=1).argmax(dim=1, keepdim=True)  # last index where it holds
    theta = cumulative.gather(1, rho) / (rho + 1).to(rows.dtype)
    return (rows - theta).clamp_min(0.0)


class HardTrigger(nn.Module):
    """``n`` vocabulary words chosen by a simplex-projected selector [n, candidates] (straight-through)."""

    def __init__(self, *, embeddings: Tensor, candidates: np.ndarray, tokens: int, seed: int) -> None:
        super().__init__()
        self.register_buffer("matrix", embeddings.detach()[torch.as_tensor(candidates)].clone(), persistent=False)
        self.register_buffer("candidate_ids", torch.as_tensor(candidates), persistent=False)
        start = torch.randperm(len(candidates), generator=torch.Generator().manual_seed(seed))[:tokens]
        selector = torch.zeros(tokens, len(candidates))
        selector[torch.arange(tokens), start] = 1.0
        self.selector = nn.Parameter(selector)

    def token_ids(self) -> Tensor:
        return self.candidate_ids[self.selector.detach().argmax(dim=1)]

    def embeddings(self) -> Tensor:
        hard = F.one_hot(self.selector.argmax(dim=1), self.selector.shape[1]).to(self.selector.dtype)
        weights = hard + (self.selector - self.selector.detach())  # straight-through: value exactly hard, gradient soft
        return weights @ self.matrix

    def insert(self, *, inputs_embeds: Tensor, attention_mask: Tensor, **_: Any):
        from fairprompt.prompts import insert_tokens

        return insert_tokens(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                             tokens=self.embeddings().unsqueeze(0), position="append")

    @torch.no_grad()
    def project(self) -> None:
        self.selector.copy_(_project_simplex(self.selector))


# ------------------------------------------------------------------------------------------ objectives
def _group_means(values: Tensor, codes: Tensor, n_groups: int, mask: Tensor | None = None) -> Tensor:
    """Mean of ``values`` per group present in the batch (groups absent from it are skipped)."""
    weight = torch.ones_like(values) if mask is None else mask.to(values.dtype)
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, codes, values * weight)
    counts = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, codes, weight)
    present = counts > 0
    return sums[present] / counts[present]


def surrogate_gap(p: Tensor, *, labels: Tensor, codes: Tensor, n_groups: int, measure: str) -> Tensor:
    """The batch's differentiable gap on the favourable probability ``p`` (module docstring)."""
    if measure == "demographic_parity":
        means = _group_means(p, codes, n_groups)
        return means.max() - means.min() if means.numel() > 1 else p.sum() * 0.0
    total = p.sum() * 0.0
    for label in (0, 1):
        means = _group_means(p, codes, n_groups, labels == label)
        if means.numel() > 1:
            total = total + (means.max() - means.min())
    return total


def adversary_features(probabilities: Tensor, labels: Tensor, *, measure: str) -> Tensor:
    """What the adversary sees: the output probabilities, plus (equalized odds) the label and products."""
    if measure == "demographic_parity":
        return probabilities
    onehot = F.one_hot(labels, probabilities.shape[1]).to(probabilities.dtype)
    products = (probabilities.unsqueeze(2) * onehot.unsqueeze(1)).flatten(1)
    return torch.cat([probabilities, onehot, products], dim=1)


class Adversary(nn.Module):
    """Predicts the group (categorical) from :func:`adversary_features`."""

    def __init__(self, *, inputs: int, hidden: int, groups: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, groups))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


# ------------------------------------------------------------------------------------------ evaluation
def gap(*, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, measure: str) -> float:
    """Between-groups gap as fairlearn defines it: demographic parity difference (max - min selection rate)
    or equalized odds difference (the larger of the TPR and FPR differences); groups without rows skipped."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)

    def spread(mask: np.ndarray) -> float:
        rates = [y_pred[mask & (groups == g)].mean() for g in np.unique(groups) if (mask & (groups == g)).any()]
        return float(max(rates) - min(rates)) if len(rates) > 1 else 0.0

    if measure == "demographic_parity":
        return spread(np.ones(y_true.shape, dtype=bool))
    return max(spread(y_true == 1), spread(y_true == 0))


@dataclass
class _Target:
    """What training and evaluation need of a model, whatever its modality."""

    model: nn.Module                                  # the triggered copy (frozen parts shared)
    trigger: nn.Module                                # the trainable module inside it
    forward: Callable[[nn.Module, dict[str, Tensor]], Tensor]
    modality: Literal["text", "image"]


def _probabilities(target: _Target, rows: Any, batch_size: int) -> np.ndarray:
    logits = predict_logits(model=target.model, forward=target.forward, data=rows, batch_size=batch_size)
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def _evaluate(target: _Target, rows: Any, *, groups: np.ndarray, threshold: float, measure: str,
              batch_size: int) -> dict[str, float]:
    p = _probabilities(target, rows, batch_size)[:, 1]
    y = np.asarray(rows.labels)
    pred = (p >= threshold).astype(np.int8)
    return {"accuracy": float((pred == y).mean()), "gap": gap(y_true=y, y_pred=pred, groups=groups, measure=measure),
            "demographic_parity_difference": gap(y_true=y, y_pred=pred, groups=groups, measure="demographic_parity"),
            "equalized_odds_difference": gap(y_true=y, y_pred=pred, groups=groups, measure="equalized_odds")}


# --------------------------------------------------------------------------------------------- results
@dataclass
class ReprogramResult:
    """What :func:`reprogram` trained and chose; ``to_dict`` is results.json-ready."""

    trigger_kind: str
    modality: str
    config: dict[str, Any]
    rule: str
    rule_met: bool
    chosen_lambda: float
    points: list[dict[str, Any]]          # per lambda: selection metrics, pareto, chosen, history, diverged
    before: dict[str, float]              # the untriggered model on the selection rows
    tuning: dict[str, Any]                # rows used to train and to select, and how they were drawn
    parameters: dict[str, Any]            # trainable counts and shares
    trigger_description: dict[str, Any]   # words (hard), image (border/patch), shape
    warnings: list[str]
    seconds: float
    triggered_model: nn.Module = field(repr=False)
    trigger: nn.Module = field(repr=False)   # the saved form: SoftPrompt, PixelBorder or PixelPatch
    artifacts: dict[str, str] = field(default_factory=dict)
    triggered_models: list[nn.Module] = field(default_factory=list, repr=False)  # per point (the control too)

    @property
    def chosen(self) -> dict[str, Any]:
        return next(p for p in self.points if p["chosen"])

    def pareto_front(self) -> list[dict[str, Any]]:
        return [p for p in self.points if p["pareto"]]

    def save(self, directory: str | Path) -> dict[str, str]:
        """Write the chosen trigger (``trigger.safetensors`` + ``trigger.json``); returns the paths."""
        from fairprompt.prompts import save_prompt

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.artifacts["trigger"] = str(save_prompt(self.trigger, directory / TRIGGER_STEM))
        return dict(self.artifacts)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable({
            "trigger_kind": self.trigger_kind, "modality": self.modality, "config": self.config, "rule": self.rule,
            "rule_met": self.rule_met, "chosen_lambda": self.chosen_lambda, "points": self.points,
            "before": self.before, "tuning": self.tuning, "parameters": self.parameters,
            "trigger": self.trigger_description, "warnings": self.warnings, "seconds": self.seconds,
            "artifacts": self.artifacts,
        })


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def pareto_flags(points: Sequence[dict[str, Any]]) -> list[bool]:
    """True for points no other point beats on both selection accuracy (higher) and gap (lower)."""
    flags = []
    for p in points:
        dominated = any(q is not p and q["accuracy"] >= p["accuracy"] and q["gap"] <= p["gap"]
                        and (q["accuracy"] > p["accuracy"] or q["gap"] < p["gap"]) for q in points)
        flags.append(not dominated)
    return flags


def choose(points: Sequence[dict[str, Any]], *, base_accuracy: float, max_accuracy_drop: float) -> tuple[int, bool]:
    """Index of the operating point by :data:`RULE`, and whether the rule was met."""
    candidates = [i for i, p in enumerate(points) if p["lambda"] > 0] or list(range(len(points)))
    eligible = [i for i in candidates if points[i]["accuracy"] >= base_accuracy - max_accuracy_drop - 1e-12]
    if eligible:
        return min(eligible, key=lambda i: (points[i]["gap"], points[i]["lambda"])), True
    return max(range(len(points)), key=lambda i: (points[i]["accuracy"], -points[i]["lambda"])), False


# ---------------------------------------------------------------------------------------------- building
def _text_target(model: Any, *, kind: str, config: ReprogramConfig) -> tuple[_Target, dict[str, Any]]:
    from fairprompt.models.text import _forward
    from fairprompt.prompts import SoftPrompt, SoftPromptConfig

    check_text_trigger(model, tokens=config.tokens)
    triggered = model.adapter_copy()
    for parameter in triggered.parameters():
        parameter.requires_grad_(False)
    dim = int(model.encoder.config.hidden_size)
    info: dict[str, Any] = {}
    if kind == "soft":
        trigger: nn.Module = SoftPrompt.initialise(
            SoftPromptConfig(n_tokens=config.tokens, dim=dim, position="append", init="vocab", seed=config.seed),
            embeddings=model.base.get_input_embeddings())
    else:
        candidates = word_candidates(model.tokenizer)
        trigger = HardTrigger(embeddings=model.base.get_input_embeddings().weight, candidates=candidates,
                              tokens=config.tokens, seed=config.seed)
        info["candidate_words"] = int(candidates.size)
    trigger.requires_grad_(True)
    triggered.prompts.append(trigger)
    return _Target(model=triggered, trigger=trigger, forward=_forward, modality="text"), info


def check_text_trigger(model: Any, *, tokens: int) -> None:
    """Refuse a trigger that, with the task prompt and the longest input, exceeds the backbone's positions."""
    limit = getattr(model.encoder.config, "max_position_embeddings", None)
    task = int(model.peft_model.peft_config["default"].num_virtual_tokens) if model.peft_model is not None else 0
    if limit is not None and tokens + int(task) + int(model.max_length) > int(limit):
        room = int(limit) - int(task) - int(model.max_length)
        raise FairpromptError(
            f"reprogram.tokens is {tokens}, but with the {task} task-prompt tokens and inputs of up to {model.max_length} "
            f"tokens the sequence would need {tokens + int(task) + int(model.max_length)} positions and {model.backbone} "
            f"takes at most {limit}; use at most {max(room, 0)} trigger tokens (or a smaller model.text.max_length)")


def check_image_trigger(*, kind: str, image_size: int, width: int, patch_size: int) -> None:
    """Refuse a border wider than half the image, or a patch larger than it."""
    if kind == "border" and 2 * width >= image_size:
        raise FairpromptError(f"reprogram.width is {width} pixels, at least half of the {image_size}-pixel image, so no "
                              f"image would be left inside the border; use a width below {(image_size + 1) // 2}")
    if kind == "patch" and patch_size > image_size:
        raise FairpromptError(f"reprogram.patch_size is {patch_size}, larger than the {image_size}-pixel image; "
                              f"use at most {image_size}")


def _image_target(model: Any, *, kind: str, config: ReprogramConfig) -> tuple[_Target, dict[str, Any]]:
    from fairprompt.prompts import PixelBorder, PixelBorderConfig, PixelPatch, PixelPatchConfig

    size = int(model.input_size[0])
    check_image_trigger(kind=kind, image_size=size, width=config.width, patch_size=config.patch_size)
    if kind == "border":
        trigger: nn.Module = PixelBorder(PixelBorderConfig(image_size=size, width=config.width, seed=config.seed))
    else:
        trigger = PixelPatch(PixelPatchConfig(image_size=size, size=config.patch_size, corner=config.corner,  # type: ignore[arg-type]
                                              seed=config.seed))
    existing = [copy.deepcopy(p).requires_grad_(False) for p in model.prompts]
    trigger.requires_grad_(True)
    triggered = model.with_prompts([*existing, trigger])
    return _Target(model=triggered, trigger=trigger, forward=lambda net, batch: net(batch["images"]), modality="image"), {}


def _modality(model: Any) -> str:
    from fairprompt.models.image import FrozenImageClassifier
    from fairprompt.models.text import FrozenTextClassifier

    if isinstance(model, FrozenTextClassifier):
        return "text"
    if isinstance(model, FrozenImageClassifier):
        return "image"
    raise FairpromptError(f"reprogram needs a FrozenTextClassifier or FrozenImageClassifier, not {type(model).__name__}")


def _build(model: Any, *, kind: str, config: ReprogramConfig) -> _Target:
    return (_text_target if _modality(model) == "text" else _image_target)(model, kind=kind, config=config)[0]


# ---------------------------------------------------------------------------------------------- training
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


def _train_trigger(target: _Target, *, rows: Any, codes: np.ndarray, n_groups: int, lam: float, config: ReprogramConfig,
                   kind: str, progress: Progress | None, label: str,
                   threshold: float = 0.5) -> tuple[list[dict[str, float]], str | None]:
    """Train ``target.trigger`` for ``config.epochs`` epochs at ``lam``; returns the history and a divergence message."""
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
                objective = task + lam * fairness
            if not config.projection:
                optimizer.zero_grad(set_to_none=True)
                if objective.requires_grad:
                    objective.backward()
            if not (_finite(objective) and _finite(*[p.grad for p in params])):
                _restore(target.trigger, good)
                target.model.eval()
                return history, (f"lambda {lam:g}: the loss became {float(objective.detach()):.4g} (not finite) at epoch {epoch}, "
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


# ------------------------------------------------------------------------------------------------- rows
def _stratified_half(groups: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row positions into two seeded halves, stratified by (group, label)."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    keys = np.char.add(groups.astype(str), np.char.add("\x1f", labels.astype(str)))
    for key in np.unique(keys):
        members = rng.permutation(np.flatnonzero(keys == key))
        cut = (members.size + 1) // 2
        first.append(members[:cut])
        second.append(members[cut:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def _subsample(groups: np.ndarray, labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most ``limit`` row positions, a seeded draw stratified by (group, label)."""
    if groups.size <= limit:
        return np.arange(groups.size)
    rng = np.random.default_rng(seed)
    keys = np.char.add(groups.astype(str), np.char.add("\x1f", labels.astype(str)))
    chosen, spare = [], []
    for key in np.unique(keys):
        members = rng.permutation(np.flatnonzero(keys == key))
        take = min(max(1, round(limit * members.size / groups.size)), members.size)
        chosen.append(members[:1])          # every (group, label) keeps at least one row
        spare.append(members[1:take])
    first = np.concatenate(chosen)
    rest = rng.permutation(np.concatenate(spare))[: max(limit - first.size, 0)]
    return np.sort(np.concatenate([first, rest]))


def _text_group_array(values: Sequence[Any], *, where: str) -> np.ndarray:
    array = np.asarray([None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values],
                       dtype=object)
    if any(v is None for v in array):
        raise FairpromptError(f"the group of some rows in {where} is missing; reprogram needs a group for every row: "
                              "fill them, or choose another group column")
    return array.astype(str)


# ------------------------------------------------------------------------------------------------- main
def reprogram(
    *,
    model: Any,
    train_rows: Any,
    validation_rows: Any,
    train_groups: Sequence[Any],
    validation_groups: Sequence[Any],
    config: ReprogramConfig = ReprogramConfig(),
    threshold: float = 0.5,
    required_groups: Sequence[Any] = (),
    batch_size: int = 128,
    progress: Progress | None = None,
) -> ReprogramResult:
    """Train a fairness trigger per lambda on a frozen model, and choose one (module docstring).

    ``model`` is a :class:`~fairprompt.models.text.FrozenTextClassifier` (rows: ``TextRows`` from its
    ``encode``) or a :class:`~fairprompt.models.image.FrozenImageClassifier` (rows: ``ImageRows``).
    ``train_groups`` / ``validation_groups`` give each row's group.  ``required_groups`` (for example the
    groups of the test split) must each have members among the tuning rows, or a
    :class:`~fairprompt.errors.FairpromptError` names the missing one.  The input model is not changed.
    """
    start = time.perf_counter()
    modality = _modality(model)
    kind = config.trigger or ("soft" if modality == "text" else "border")
    allowed = TEXT_TRIGGERS if modality == "text" else IMAGE_TRIGGERS
    if kind not in allowed:
        raise FairpromptError(f"reprogram.trigger {kind!r} is for {'image' if modality == 'text' else 'text'} models; "
                              f"a {modality} model takes {' or '.join(allowed)}")
    if modality == "text":
        check_text_trigger(model, tokens=config.tokens)
    else:
        check_image_trigger(kind=kind, image_size=int(model.input_size[0]), width=config.width,
                            patch_size=config.patch_size)
    if len(train_groups) != len(train_rows) or len(validation_groups) != len(validation_rows):
        raise FairpromptError(f"train_groups has {len(train_groups)} values for {len(train_rows)} training rows and "
                              f"validation_groups {len(validation_groups)} for {len(validation_rows)} validation rows; "
                              "give one group per row")
    train_g = _text_group_array(train_groups, where="the training split")
    validation_g = _text_group_array(validation_groups, where="the validation split")
    train_y, validation_y = np.asarray(train_rows.labels), np.asarray(validation_rows.labels)

    # tuning rows (train the triggers) and selection rows (choose one)
    if config.tuning_split == "train":
        fit_pos = _subsample(train_g, train_y, config.max_rows, config.seed) if config.max_rows else np.arange(len(train_g))
        fit_rows, fit_g = _take(train_rows, fit_pos), train_g[fit_pos]
        select_rows, select_g = validation_rows, validation_g
        how = "trained on the training split, chosen on the validation split"
    else:
        first, second = _stratified_half(validation_g, validation_y, config.seed)
        if config.max_rows:
            first = first[_subsample(validation_g[first], validation_y[first], config.max_rows, config.seed)]
        fit_rows, fit_g = _take(validation_rows, first), validation_g[first]
        select_rows, select_g = _take(validation_rows, second), validation_g[second]
        how = "trained on a seeded half of the validation split, chosen on the other half (stratified by group and label)"
    names = sorted(set(fit_g.tolist()))
    for needed, where in ((select_g, "the selection rows"), (np.asarray([str(g) for g in required_groups]), "the test split")):
        for value in sorted(set(needed.tolist())):
            if value not in names:
                raise FairpromptError(
                    f"group {value!r} (in {where}) has no members in the tuning split ({len(fit_g)} rows); the trigger "
                    "cannot learn about it: use a larger tuning split (reprogram.max_rows, tuning_split) or another group")
    if len(names) < 2:
        raise FairpromptError(f"the tuning split has a single group ({names[0]!r}); reprogram needs two groups or more")
    codes = np.searchsorted(np.asarray(names), fit_g)

    # the untriggered model, then one trigger per lambda
    base_target = _Target(model=model, trigger=nn.Identity(), forward=_build_forward(model), modality=modality)
    before = _evaluate(base_target, select_rows, groups=select_g, threshold=threshold, measure=config.measure,
                       batch_size=batch_size)
    points: list[dict[str, Any]] = []
    triggers: list[nn.Module] = []
    targets: list[_Target] = []
    warnings: list[str] = []
    for lam in config.lambdas:
        target = _build(model, kind=kind, config=config)
        history, diverged = _train_trigger(target, rows=fit_rows, codes=codes, n_groups=len(names), lam=float(lam),
                                           config=config, kind=kind, progress=progress, threshold=threshold,
                                           label=f"training the {kind} trigger, lambda {lam:g}")
        if diverged:
            warnings.append(diverged)
        metrics = _evaluate(target, select_rows, groups=select_g, threshold=threshold, measure=config.measure,
                            batch_size=batch_size)
        points.append({"lambda": float(lam), **metrics, "history": history, "diverged": diverged,
                       "epoch_seconds": float(np.mean([h["seconds"] for h in history])) if history else None})
        targets.append(target)
    for point, flag in zip(points, pareto_flags(points)):
        point["pareto"] = flag
    index, met = choose(points, base_accuracy=before["accuracy"], max_accuracy_drop=config.max_accuracy_drop)
    for i, point in enumerate(points):
        point["chosen"] = i == index
    if not met:
        warnings.append(f"no lambda > 0 kept the selection accuracy within {config.max_accuracy_drop:g} of the "
                        f"untriggered model's {before['accuracy']:.4f}, so no fairness trigger met the rule; lambda "
                        f"{points[index]['lambda']:g}, the most accurate of the grid, was taken")
    chosen = targets[index]
    saved, description = _saved_form(chosen, kind=kind, model=model)
    chosen.model.requires_grad_(False)
    saved.requires_grad_(False)
    parameters = _parameter_counts(model, chosen, kind=kind)
    config_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()} | {"trigger": kind}
    return ReprogramResult(
        trigger_kind=kind, modality=modality, config=config_dict, rule=RULE, rule_met=met,
        chosen_lambda=float(points[index]["lambda"]), points=points, before=before,
        tuning={"how": how, "fit_rows": int(len(fit_rows)), "selection_rows": int(len(select_rows)), "groups": names,
                "group_column_values": len(names)},
        parameters=parameters, trigger_description=description, warnings=warnings,
        seconds=time.perf_counter() - start, triggered_model=chosen.model, trigger=saved,
        triggered_models=[t.model.eval() for t in targets],
    )


def _build_forward(model: Any) -> Callable[[nn.Module, dict[str, Tensor]], Tensor]:
    if _modality(model) == "text":
        from fairprompt.models.text import _forward

        return _forward
    return lambda net, batch: net(batch["images"])


def _take(rows: Any, positions: np.ndarray) -> Any:
    """The rows at ``positions`` (TextRows or ImageRows), as the same type."""
    positions = np.asarray(positions, dtype=np.int64)
    if hasattr(rows, "input_ids"):
        from fairprompt.models.text import TextRows

        return TextRows([rows.input_ids[i] for i in positions], np.asarray(rows.labels)[positions],
                        np.asarray(rows.weights)[positions], rows.pad_id)
    return type(rows)(rows.images[positions], np.asarray(rows.labels)[positions])


def _png_data_uri(image: np.ndarray, *, scale: int = 4) -> str:
    from PIL import Image

    picture = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _saved_form(target: _Target, *, kind: str, model: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The chosen trigger as a loadable prompt module, and how the report shows it."""
    from fairprompt.prompts import SoftPrompt, SoftPromptConfig

    trigger = target.trigger
    if kind == "hard":
        assert isinstance(trigger, HardTrigger)
        ids = trigger.token_ids()
        words = model.tokenizer.convert_ids_to_tokens(ids.tolist())
        weight = model.base.get_input_embeddings().weight.detach()[ids].to(torch.float32)
        saved = SoftPrompt(SoftPromptConfig(n_tokens=len(words), dim=weight.shape[1], position="append"), weight=weight)
        # the deployed model carries the saved words, exactly as trained (straight-through forward = these rows)
        target.model.prompts[-1] = saved
        return saved, {"kind": "hard", "words": words, "token_ids": ids.tolist(), "text": " ".join(words)}
    if kind == "soft":
        weight = trigger.weight.detach()
        matrix = model.base.get_input_embeddings().weight.detach()
        nearest = torch.cdist(weight, matrix).argmin(dim=1)
        return trigger, {"kind": "soft", "tokens": int(weight.shape[0]), "dim": int(weight.shape[1]),
                         "nearest_words": model.tokenizer.convert_ids_to_tokens(nearest.tolist()),
                         "norms": [float(v) for v in weight.norm(dim=1)]}
    image = trigger.render()
    return trigger, {"kind": kind, "image_png": _png_data_uri(image), "image_size": list(image.shape[:2]),
                     "config": trigger.config_dict()}


def _parameter_counts(model: Any, target: _Target, *, kind: str) -> dict[str, Any]:
    from fairprompt.models.frozen import total_parameters

    trained = sum(p.numel() for p in target.trigger.parameters())
    backbone = total_parameters(model.encoder if hasattr(model, "encoder") else model.backbone)
    whole = total_parameters(model)
    out = {"trigger_trainable": int(trained), "backbone": int(backbone), "model_total": int(whole),
           "trainable_share_of_model": trained / whole if whole else None}
    if kind == "hard":
        out["deployed_trigger_tokens"] = int(target.trigger.selector.shape[0]) if isinstance(target.trigger, HardTrigger) \
            else int(sum(p.shape[0] for p in target.trigger.parameters()))
        out["note"] = ("the selector over the candidate words is what trains (a relaxation); the deployed trigger is "
                       f"{out['deployed_trigger_tokens']} vocabulary words")
    return out


def load_trigger(model: Any, path: str | Path) -> Any:
    """The frozen ``model`` with a saved trigger attached for inference (a copy; ``model`` is unchanged)."""
    from fairprompt.prompts import check_fits, load_prompt

    trigger = load_prompt(path)
    trigger.requires_grad_(False)
    if _modality(model) == "text":
        check_fits(trigger, dim=int(model.encoder.config.hidden_size))
        triggered = model.adapter_copy()
        triggered.prompts.append(trigger)
        return triggered
    check_fits(trigger, image_size=int(model.input_size[0]), channels=3)
    return model.with_prompts([*model.prompts, trigger])


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`reprogram`: the submodule and the function share the name
    ``fairprompt.mitigation.reprogram``, and whichever of them that name is bound to, calling it runs it."""

    def __call__(self, **kwargs: Any) -> ReprogramResult:
        return reprogram(**kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["Adversary", "HardTrigger", "ReprogramConfig", "ReprogramResult", "adversary_features", "check_image_trigger",
           "check_lambdas", "check_text_trigger", "choose", "gap", "load_trigger", "pareto_flags", "reprogram",
           "surrogate_gap", "word_candidates"]
