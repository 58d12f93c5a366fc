r"""FairReprogram: a learned fairness trigger appended to every input of a frozen model.

Fairness reprogramming (Zhang et al., NeurIPS 2022) keeps the trained model completely fixed (backbone, task
prompt and head) and learns a small input-side trigger that removes group information from its decisions.
:func:`reprogram` (settings: :class:`~fairprompt.mitigation.reprogram_method.config.ReprogramConfig`) trains
one trigger per lambda on a grid, returns the Pareto front of accuracy against the chosen gap on the
selection rows, and picks the operating point by a stated rule.

Triggers
--------
``soft`` (text)
    ``tokens`` continuous vectors (:class:`~fairprompt.prompts.SoftPrompt`, ``position="append"``): after the
    input's last real token, before the closing ``[SEP]``; the task prompt is still prepended.
``conditional`` (text)
    :class:`~fairprompt.prompts.ConditionalPrompt`: ``tokens`` vectors written per input by a small generator
    (attention pooling over the input's token embeddings, a ``bottleneck``, an up-projection added to a static
    soft trigger that it starts as), appended like ``soft``.  A fixed trigger can move a row's score only through
    the frozen attention, so on Adult it closes the gap mostly by lowering every score; a generator that reads the
    words can shift rows differently.  Its parameters must stay within ``parameter_budget`` of the model's
    (0.1% by default: 22,713 numbers on MiniLM; 5 tokens and bottleneck 8 train 20,744).
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
``anchor > 0`` adds the rate anchor to the fairness term: ``CE + lambda * (gap^2 + anchor * shift^2)``, ``shift``
the batch's mean favourable probability minus the untriggered model's on the same rows: the mean score may not
drift, so the gap cannot be closed by moving every score down (on Adult, without it, larger lambdas drive the
favourable rate towards zero).  Weighed by lambda with the gap, the anchor keeps its proportion along the grid,
and the lambda = 0 control is the plain trigger's.

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
A trigger whose decisions on the selection rows predict one class (:mod:`fairprompt.mitigation.guard`: every
row the same decision, or one group of ``group_column`` with both labels present getting one decision for at
least 99% of its rows) is marked (``one_class``, the reason in words) and never chosen; a warning names a point
the rule would have chosen without the guard.  If every trigger of the grid predicts one class, none is
usable: the rule's choice without the guard is kept all the same (``rule_met`` False) and a warning says so.
The test split is never seen here.

``selection="swap_flips"`` (text models, with ``swap_terms``) keeps the budget and the guard but minimises another
quantity: the share of selection rows naming an identity whose decision flips when their identity phrases are
swapped for another group's (one seeded swap per row, :class:`fairprompt.swaps.SwapTerms`).  It is for tasks whose
validation split carries the link the trigger should remove (identity_toxicity: identity terms co-occur with
toxicity in train and validation alike, so the validation gap reads the same for every lambda); the swaps need no
labels and no test-like rows.  Every point then also records ``swap_flip_rate``.

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

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from fairprompt.errors import FairpromptError
from fairprompt.mitigation.reprogram_method.config import IMAGE_TRIGGERS, TEXT_TRIGGERS, ReprogramConfig
from fairprompt.mitigation.reprogram_method.result import ReprogramResult
from fairprompt.mitigation.reprogram_method.selection import (
    RULE,
    RULE_SWAP_FLIPS,
    choose,
    evaluate,
    one_class_warnings,
    pareto_flags,
    probabilities,
    stratified_half,
    subsample,
    swap_flip_rate,
    take,
    text_group_array,
)
from fairprompt.mitigation.reprogram_method.training import train_trigger
from fairprompt.mitigation.reprogram_method.triggers import (
    Target,
    build,
    build_forward,
    check_generator_budget,
    check_image_trigger,
    check_text_trigger,
    model_modality,
    parameter_counts,
    saved_form,
)
from fairprompt.models.training import Progress

DEFAULT_CONFIG = ReprogramConfig()
"""The settings :func:`reprogram` uses when given none."""


def reprogram(
    *,
    model: Any,
    train_rows: Any,
    validation_rows: Any,
    train_groups: Sequence[Any],
    validation_groups: Sequence[Any],
    config: ReprogramConfig = DEFAULT_CONFIG,
    threshold: float = 0.5,
    required_groups: Sequence[Any] = (),
    batch_size: int = 128,
    group_column: str = "group",
    progress: Progress | None = None,
    counterfactual_rows: Any = None,
    validation_counterfactual_rows: Any = None,
) -> ReprogramResult:
    """Train a fairness trigger per lambda on a frozen model, and choose one (module docstring).

    ``model`` is a :class:`~fairprompt.models.text.FrozenTextClassifier` (rows: ``TextRows`` from its
    ``encode``) or a :class:`~fairprompt.models.image.FrozenImageClassifier` (rows: ``ImageRows``).
    ``train_groups`` / ``validation_groups`` give each row's group (of the sensitive column ``group_column``, named
    in the one-class marks).  ``required_groups`` (for example the
    groups of the test split) must each have members among the tuning rows, or a
    :class:`~fairprompt.errors.FairpromptError` names the missing one.  ``counterfactual_rows`` (needed when
    ``config.counterfactual > 0``): the training rows with their identity phrases swapped
    (:class:`fairprompt.swaps.SwapTerms`), row for row.  ``validation_counterfactual_rows`` (needed when
    ``config.selection == "swap_flips"``): the validation rows swapped the same way; each point then also records
    ``swap_flip_rate`` on the selection rows.  The input model is not changed.
    """
    start = time.perf_counter()
    modality = model_modality(model)
    kind = config.trigger or ("soft" if modality == "text" else "border")
    allowed = TEXT_TRIGGERS if modality == "text" else IMAGE_TRIGGERS
    if kind not in allowed:
        raise FairpromptError(f"reprogram.trigger {kind!r} is for {'image' if modality == 'text' else 'text'} models; "
                              f"a {modality} model takes {', '.join(allowed)}")
    if config.counterfactual > 0 and modality != "text":
        raise FairpromptError("reprogram.counterfactual swaps identity phrases in texts; an image model has none "
                              "(remove counterfactual)")
    if modality == "text":
        check_text_trigger(model, tokens=config.tokens)
        if kind == "conditional":
            check_generator_budget(model, config=config)
    else:
        check_image_trigger(kind=kind, image_size=int(model.input_size[0]), width=config.width,
                            patch_size=config.patch_size)
    if len(train_groups) != len(train_rows) or len(validation_groups) != len(validation_rows):
        raise FairpromptError(f"train_groups has {len(train_groups)} values for {len(train_rows)} training rows and "
                              f"validation_groups {len(validation_groups)} for {len(validation_rows)} validation rows; "
                              "give one group per row")
    if config.counterfactual > 0 and (counterfactual_rows is None or len(counterfactual_rows) != len(train_rows)):
        raise FairpromptError("reprogram.counterfactual needs the training rows with their identity phrases swapped "
                              "(counterfactual_rows), one per training row")
    if config.selection == "swap_flips":
        if modality != "text":
            raise FairpromptError("reprogram.selection: swap_flips swaps identity phrases in texts; an image model has "
                                  "none (use selection: gap)")
        if validation_counterfactual_rows is None or len(validation_counterfactual_rows) != len(validation_rows):
            raise FairpromptError("reprogram.selection: swap_flips needs the validation rows with their identity "
                                  "phrases swapped (validation_counterfactual_rows), one per validation row")
    train_g = text_group_array(train_groups, where="the training split")
    validation_g = text_group_array(validation_groups, where="the validation split")
    train_y, validation_y = np.asarray(train_rows.labels), np.asarray(validation_rows.labels)

    # tuning rows (train the triggers) and selection rows (choose one)
    if config.tuning_split == "train":
        fit_pos = subsample(train_g, train_y, config.max_rows, config.seed) if config.max_rows else np.arange(len(train_g))
        fit_rows, fit_g = take(train_rows, fit_pos), train_g[fit_pos]
        fit_swapped = None if counterfactual_rows is None else take(counterfactual_rows, fit_pos)
        select_rows, select_g = validation_rows, validation_g
        select_swapped = validation_counterfactual_rows
        how = "trained on the training split, chosen on the validation split"
    else:
        first, second = stratified_half(validation_g, validation_y, config.seed)
        if config.max_rows:
            first = first[subsample(validation_g[first], validation_y[first], config.max_rows, config.seed)]
        fit_rows, fit_g = take(validation_rows, first), validation_g[first]
        fit_swapped = None
        select_rows, select_g = take(validation_rows, second), validation_g[second]
        select_swapped = None if validation_counterfactual_rows is None else take(validation_counterfactual_rows, second)
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
    base_target = Target(model=model, trigger=nn.Identity(), forward=build_forward(model), modality=modality)
    def flips(target: Target) -> dict[str, float]:
        if select_swapped is None:
            return {}
        return {"swap_flip_rate": swap_flip_rate(target, select_rows, select_swapped, threshold=threshold,
                                                 batch_size=batch_size)}

    before = evaluate(base_target, select_rows, groups=select_g, threshold=threshold, measure=config.measure,
                       batch_size=batch_size, column=group_column) | flips(base_target)
    if config.selection == "swap_flips" and np.isnan(before["swap_flip_rate"]):
        raise FairpromptError(f"reprogram.selection: swap_flips found no identity phrase of swap_terms "
                              f"({config.swap_terms}) in the {len(select_rows)} selection rows, so no decision can "
                              "flip; use selection: gap, or swap terms that the texts contain")
    points: list[dict[str, Any]] = []
    targets: list[Target] = []
    warnings: list[str] = []
    reference = probabilities(base_target, fit_rows, batch_size)[:, 1] \
        if config.anchor > 0 and config.objective == "surrogate" else None
    for lam in config.lambdas:
        target = build(model, kind=kind, config=config)
        history, diverged = train_trigger(target, rows=fit_rows, codes=codes, n_groups=len(names), lam=float(lam),
                                           config=config, kind=kind, progress=progress, threshold=threshold,
                                           label=f"training the {kind} trigger, lambda {lam:g}", reference=reference,
                                           counterfactual_rows=fit_swapped)
        if diverged:
            warnings.append(diverged)
        metrics = evaluate(target, select_rows, groups=select_g, threshold=threshold, measure=config.measure,
                            batch_size=batch_size, column=group_column) | flips(target)
        points.append({"lambda": float(lam), **metrics, "history": history, "diverged": diverged,
                       "epoch_seconds": float(np.mean([h["seconds"] for h in history])) if history else None})
        targets.append(target)
    for point, flag in zip(points, pareto_flags(points)):
        point["pareto"] = flag
    key = "swap_flip_rate" if config.selection == "swap_flips" else "gap"
    index, met = choose(points, base_accuracy=before["accuracy"], max_accuracy_drop=config.max_accuracy_drop, key=key)
    for i, point in enumerate(points):
        point["chosen"] = i == index
    warnings += one_class_warnings(points, index=index, base_accuracy=before["accuracy"],
                                   max_accuracy_drop=config.max_accuracy_drop, key=key)
    if not met and not points[index]["one_class"]:
        warnings.append(f"no lambda > 0 kept the selection accuracy within {config.max_accuracy_drop:g} of the "
                        f"untriggered model's {before['accuracy']:.4f}"
                        + (" without predicting one class" if any(p["one_class"] for p in points) else "")
                        + f", so no fairness trigger met the rule; lambda {points[index]['lambda']:g}, the most accurate "
                        "of the grid, was taken")
    chosen = targets[index]
    saved, description = saved_form(chosen, kind=kind, model=model)
    chosen.model.requires_grad_(False)
    saved.requires_grad_(False)
    parameters = parameter_counts(model, chosen, kind=kind)
    config_dict = {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.__dict__.items()} | {"trigger": kind}
    return ReprogramResult(
        trigger_kind=kind, modality=modality, config=config_dict,
        rule=RULE_SWAP_FLIPS if config.selection == "swap_flips" else RULE, rule_met=met,
        chosen_lambda=float(points[index]["lambda"]), points=points, before=before,
        tuning={"how": how, "fit_rows": int(len(fit_rows)), "selection_rows": int(len(select_rows)), "groups": names,
                "group_column_values": len(names)},
        parameters=parameters, trigger_description=description, warnings=warnings,
        seconds=time.perf_counter() - start, triggered_model=chosen.model, trigger=saved,
        triggered_models=[t.model.eval() for t in targets],
    )


__all__ = ["reprogram"]
